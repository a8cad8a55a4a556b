"""What one finished comparison run records, and how it is read back.

Each run directory holds ``result.json``; its presence marks the run as finished (the runner
writes it atomically, last). The report is built from these files alone, so it can be rebuilt
(``video-eleatt compare --report_only true``) without torch or the feature cache.

Accuracies are fractions in [0, 1]; the report shows them as percentages.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from video_eleatt.fileio import json_safe

RESULT_FILE = "result.json"
RESULT_FORMAT_VERSION = 1

# Per-epoch history columns the figures use; others are kept but not drawn.
HISTORY_COLUMNS = ("epoch", "train_loss", "train_top1", "val_loss", "val_top1", "epoch_time_s")


@dataclass
class RunResult:
    """The outcome of one (variant, split, seed) run.

    Attributes:
        variant: Variant name from the comparison config (e.g. ``"eleatt_gru"``).
        split: Dataset split (``"1"``, ``"cs"``, ...; ``"-"`` for datasets without splits).
        seed: Seed of the run (initialisation and data order).
        test_top1: Test top-1 accuracy (micro: correct videos / all videos).
        test_top5: Test top-5 accuracy (None when the dataset has fewer than 5 classes).
        test_mean_class_accuracy: Mean over classes of per-class recall (macro).
        test_loss: Test cross-entropy (None when not logged).
        per_class_accuracy: Recall per class id; None for a class absent from the test set.
        confusion_matrix: Counts, rows = true class, columns = predicted class.
        class_names: Class names, index = class id.
        history: One dict per epoch (keys of ``HISTORY_COLUMNS`` where logged).
        parameter_count: Trainable parameters of the sequence classifier.
        parameter_counts: Per-layer counts plus ``"total"``.
        train_time_per_epoch_s: Mean wall time of a training epoch (seconds).
        inference_sequences_per_s: Test-set videos classified per second in eval mode
            (forward only, batches as in testing, data already loaded).
        num_test_videos: Test videos evaluated.
        cache_dir: The feature cache the run read.
        cache_fingerprint: Hash of the cache's ``config.json`` (same features <=> same hash).
        model_config: The exact model options of the run.
        test_protocol: How test videos were scored (clips, pooling), as recorded by training.
        test_predictions: Per test video, in test order: ``rel_paths`` (its key in the
            feature cache), ``labels`` and ``predicted`` (class ids, the top-1 prediction of
            the tested checkpoint); empty for runs recorded before predictions were stored.
        run_dir: Directory of the run (config.yaml, checkpoints, metrics).
        device: Where it ran (e.g. ``"cpu"``, ``"cuda:0 NVIDIA H100"``).
        extra: Anything else worth keeping (free form).
    """

    variant: str
    split: str
    seed: int
    test_top1: float
    test_top5: float | None
    test_mean_class_accuracy: float
    test_loss: float | None = None
    per_class_accuracy: list[float | None] = field(default_factory=list)
    confusion_matrix: list[list[int]] = field(default_factory=list)
    class_names: list[str] = field(default_factory=list)
    history: list[dict[str, float]] = field(default_factory=list)
    parameter_count: int = 0
    parameter_counts: dict[str, int] = field(default_factory=dict)
    train_time_per_epoch_s: float | None = None
    inference_sequences_per_s: float | None = None
    num_test_videos: int = 0
    cache_dir: str = ""
    cache_fingerprint: str = ""
    model_config: dict[str, Any] = field(default_factory=dict)
    test_protocol: dict[str, Any] = field(default_factory=dict)
    test_predictions: dict[str, list] = field(default_factory=dict)
    run_dir: str = ""
    device: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def correct_by_video(self) -> dict[str, bool]:
        """Test video key -> whether the run's top-1 prediction was right ({} when not stored)."""
        predictions = self.test_predictions or {}
        return {
            path: int(label) == int(predicted)
            for path, label, predicted in zip(
                predictions.get("rel_paths") or [],
                predictions.get("labels") or [],
                predictions.get("predicted") or [],
            )
        }

    @property
    def key(self) -> tuple[str, str, int]:
        """``(variant, split, seed)``."""
        return (self.variant, self.split, self.seed)

    def to_json(self) -> dict[str, Any]:
        """JSON-safe dict (NaN/inf become None, as JSON has no NaN)."""
        payload = json_safe(asdict(self))
        payload["format_version"] = RESULT_FORMAT_VERSION
        return payload

    @classmethod
    def from_json(cls, payload: dict[str, Any], source: str = "<dict>") -> RunResult:
        """Inverse of :meth:`to_json`; unknown keys go to ``extra``."""
        known = {f.name for f in fields(cls)}
        required = ("variant", "split", "seed", "test_top1", "test_mean_class_accuracy")
        missing = [name for name in required if name not in payload]
        if missing:
            raise ValueError(
                f"{source} is not a run result: missing {missing}; it should be written by "
                "video_eleatt.compare.runner (delete it to rerun that run)"
            )
        values = {k: v for k, v in payload.items() if k in known}
        extra = dict(values.pop("extra", {}) or {})
        extra.update({k: v for k, v in payload.items() if k not in known and k != "format_version"})
        values["split"] = str(values["split"])
        values["seed"] = int(values["seed"])
        return cls(**values, extra=extra)


def write_result(run_dir: str | Path, result: RunResult) -> Path:
    """Write ``result.json`` atomically (temporary file, then rename): the run's done marker."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    target = run_dir / RESULT_FILE
    temporary = target.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(result.to_json(), indent=1) + "\n")
    os.replace(temporary, target)
    return target


def read_result(run_dir: str | Path) -> RunResult | None:
    """The run's result, or None when the run has not finished (no ``result.json``)."""
    path = Path(run_dir) / RESULT_FILE
    if not path.is_file():
        return None
    try:
        payload = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); delete it to rerun that run") from err
    return RunResult.from_json(payload, source=str(path))
