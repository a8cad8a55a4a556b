"""Third-party log lines that give a user nothing to act on, filtered by their exact text.

Only these messages are dropped; every other warning and log line, the project's own
included, still shows. A library that rewords one of them shows it again, which is the safe
way round.

Every Lightning CLI run goes through it (:func:`video_eleatt.training.run.run_cli`: ``fit``,
``validate``, ``test``, ``predict``, and the comparison's runs).

>>> with third_party_noise_filtered():
...     pass  # run_training(...) here prints neither line
"""

from __future__ import annotations

import contextlib
import logging
import re
import warnings
from collections.abc import Iterator

# torch.utils._pytree, triggered by Lightning's own pytree helpers (FutureWarning).
PYTREE_DEPRECATION = (
    "`isinstance(treespec, LeafSpec)` is deprecated, "
    "use `isinstance(treespec, TreeSpec) and treespec.is_leaf()` instead."
)
# Lightning's advertisements, logged at INFO by rank_zero_info when a Trainer is built.
LIGHTNING_TIPS = frozenset(
    {
        "💡 Tip: For seamless cloud logging and experiment tracking, try installing "
        "[litlogger](https://pypi.org/project/litlogger/) to enable LitLogger, which logs "
        "metrics and artifacts automatically to the Lightning Experiments platform.",
        "💡 Tip: For seamless cloud uploads and versioning, try installing "
        "[litmodels](https://pypi.org/project/litmodels/) to enable LitModelCheckpoint, which "
        "syncs automatically with the Lightning model registry.",
    }
)
# The loggers rank_zero_info writes to (lightning_utilities' module logger, which Lightning
# renames on import).
TIP_LOGGERS = (
    "lightning_utilities.core.rank_zero",
    "lightning_fabric.utilities.rank_zero",
    "pytorch_lightning.utilities.rank_zero",
    "lightning.fabric.utilities.rank_zero",
    "lightning.pytorch.utilities.rank_zero",
)


class DropMessages(logging.Filter):
    """Drops log records whose formatted message is one of ``messages``, exactly."""

    def __init__(self, messages: frozenset[str]) -> None:
        super().__init__()
        self.messages = messages

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() not in self.messages


@contextlib.contextmanager
def third_party_noise_filtered() -> Iterator[None]:
    """Within the block, the ``_pytree`` deprecation warning and Lightning's tips are not
    shown; everything else is."""
    drop = DropMessages(LIGHTNING_TIPS)
    loggers = [logging.getLogger(name) for name in TIP_LOGGERS]
    for logger in loggers:
        logger.addFilter(drop)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message=re.escape(PYTREE_DEPRECATION) + r"\Z", category=FutureWarning
            )
            yield
    finally:
        for logger in loggers:
            logger.removeFilter(drop)
