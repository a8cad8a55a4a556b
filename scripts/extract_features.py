"""Extract per-frame CNN features: a thin wrapper around ``video-eleatt extract``.

python scripts/extract_features.py --config configs/extract/ucf101_resnet50.yaml
"""

import sys

from video_eleatt.cli import main

if __name__ == "__main__":
    sys.exit(main(["extract", *sys.argv[1:]]))
