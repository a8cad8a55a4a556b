"""``video-eleatt fit|validate|test|predict``: the Lightning CLI over cached features.

The run-directory layout and the Python entry point for programs (:func:`run_training`) are in
:mod:`video_eleatt.training.run`. ``predict --checkpoint <video>`` (raw videos) is routed by
the top-level ``video_eleatt.cli`` and never reaches this module.
"""

from __future__ import annotations

import sys

from video_eleatt.datasets import DatasetError
from video_eleatt.features import CacheError
from video_eleatt.training.errors import TrainingError
from video_eleatt.training.run import run_cli


def main(argv: list[str]) -> int:
    """``video-eleatt fit|validate|test|predict [options]``; ``argv[0]`` is the verb."""
    argv = list(argv)
    verb = argv[0] if argv else "fit"
    try:
        run_cli(argv, exit_on_error=True)
    except SystemExit as exit_:
        code = exit_.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except (TrainingError, CacheError, DatasetError) as err:
        print(f"video-eleatt {verb}: error: {err}", file=sys.stderr)
        return 2
    return 0
