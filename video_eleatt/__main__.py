"""``python -m video_eleatt`` is the same as the ``video-eleatt`` command."""

import sys

from video_eleatt.cli import main

if __name__ == "__main__":
    sys.exit(main())
