"""Thin wrapper: ``python scripts/compare.py --config configs/compare/<name>.yaml`` is
``video-eleatt compare --config configs/compare/<name>.yaml`` (same options)."""

from __future__ import annotations

import sys

from video_eleatt.compare.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
