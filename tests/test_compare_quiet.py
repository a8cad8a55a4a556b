"""The two third-party lines are filtered by their exact text; other warnings still show."""

from __future__ import annotations

import logging
import warnings

import lightning_utilities.core.rank_zero as rank_zero_module
from pytorch_lightning.utilities import rank_zero_info

from video_eleatt.quiet import (
    LIGHTNING_TIPS,
    PYTREE_DEPRECATION,
    third_party_noise_filtered,
)
from video_eleatt.training.metrics import warn_if_no_top5


def test_pytree_deprecation_dropped_project_warnings_kept():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with third_party_noise_filtered():
            warnings.warn(PYTREE_DEPRECATION, FutureWarning, stacklevel=1)
            warnings.warn(PYTREE_DEPRECATION + " (reworded)", FutureWarning, stacklevel=1)
            warn_if_no_top5(3)  # the project's own warning
        warnings.warn(PYTREE_DEPRECATION, FutureWarning, stacklevel=1)  # outside: shown
    messages = [str(w.message) for w in caught]
    assert messages.count(PYTREE_DEPRECATION) == 1
    assert PYTREE_DEPRECATION + " (reworded)" in messages
    assert any("top-5 accuracy is not computed" in m for m in messages)


class ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_lightning_tips_dropped_other_info_kept():
    logger = rank_zero_module.log  # where rank_zero_info writes
    handler = ListHandler()
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        with third_party_noise_filtered():
            for tip in sorted(LIGHTNING_TIPS):
                rank_zero_info(tip)
            rank_zero_info("GPU available: False, used: False")
        rank_zero_info(sorted(LIGHTNING_TIPS)[0])  # outside: shown
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert handler.messages == ["GPU available: False, used: False", sorted(LIGHTNING_TIPS)[0]]
