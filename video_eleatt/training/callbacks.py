"""Callbacks that write a run's files: config, per-epoch history, evaluation and predictions.

See ``video_eleatt.training.run`` for the run-directory layout they fill.
"""

from __future__ import annotations

import csv
import json
import math
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.cli import SaveConfigCallback

from video_eleatt.fileio import atomic_write_text, json_safe
from video_eleatt.progress import progress_bar
from video_eleatt.training.data import say
from video_eleatt.training.metrics import per_class_accuracy, save_confusion_matrix
from video_eleatt.training.online import save_early_recognition

HISTORY_FILE = "history.csv"
HISTORY_COLUMNS = (
    "epoch",
    "step",
    "train_loss",
    "train_top1",
    "val_loss",
    "val_top1",
    "val_top5",
    "val_mean_class_accuracy",
    "lr",
    "epoch_time_s",
    "val_time_s",
)
METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.jsonl"
PREDICT_TOP_K = 5


class RunConfigCallback(SaveConfigCallback):
    """Saves the parsed config (``config.yaml``) into the run's output directory.

    ``fit`` writes ``<run_dir>/config.yaml``; the evaluation verbs write it into their own
    output folder. Whether an existing run may be overwritten is decided by the CLI before
    anything starts (a resumed fit rewrites it with the same content).
    """

    def __init__(self, *args: Any, output_dir: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.output_dir = output_dir

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.already_saved:
            return
        if trainer.is_global_zero:
            directory = Path(self.output_dir or trainer.default_root_dir)
            directory.mkdir(parents=True, exist_ok=True)
            self.parser.save(
                self.config,
                str(directory / self.config_filename),
                skip_none=False,
                overwrite=True,
                multifile=self.multifile,
            )
        self.already_saved = True


class EpochHistory(Callback):
    """One row per training epoch in ``history.csv`` (columns ``HISTORY_COLUMNS``).

    Losses and accuracies are the epoch's values (train: running over the epoch with dropout
    active; val: the full validation subset after the epoch). ``epoch_time_s`` is the
    training part of the epoch, ``val_time_s`` the validation part (seconds, wall clock);
    ``lr`` is the learning rate the epoch ran with. The rows are part of the checkpoint, so a
    resumed run rewrites the file with exactly the epochs its checkpoint had seen.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.rows: list[dict[str, Any]] = []
        self._epoch_started = 0.0
        self._val_started = 0.0
        self._val_seconds = 0.0
        self._validated = False
        self._lr: float | None = None

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._epoch_started = time.perf_counter()
        self._val_seconds = 0.0
        self._validated = False
        self._lr = (
            float(trainer.optimizers[0].param_groups[0]["lr"]) if trainer.optimizers else None
        )

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._val_started = time.perf_counter()

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._val_seconds += time.perf_counter() - self._val_started
            self._validated = True

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        metrics = trainer.callback_metrics

        def value(name: str) -> float | None:
            item = metrics.get(name)
            return None if item is None else float(item)

        elapsed = time.perf_counter() - self._epoch_started
        row: dict[str, Any] = {
            "epoch": trainer.current_epoch,
            "step": trainer.global_step,
            "train_loss": value("train/loss"),
            "train_top1": value("train/top1"),
            "lr": self._lr,
            "epoch_time_s": elapsed - self._val_seconds,
            "val_time_s": self._val_seconds if self._validated else None,
        }
        for name in ("loss", "top1", "top5", "mean_class_accuracy"):
            row[f"val_{name}"] = value(f"val/{name}") if self._validated else None
        self.rows = [r for r in self.rows if r["epoch"] < row["epoch"]] + [row]
        if trainer.is_global_zero:
            self.write()

    def write(self) -> None:
        """Rewrites the whole file (atomic)."""
        lines = [",".join(HISTORY_COLUMNS)]
        for row in self.rows:
            lines.append(",".join(_csv_value(row.get(column)) for column in HISTORY_COLUMNS))
        atomic_write_text(self.path, "\n".join(lines) + "\n")

    def state_dict(self) -> dict[str, Any]:
        return {"rows": [dict(row) for row in self.rows]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rows = [dict(row) for row in state_dict.get("rows", [])]


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def read_history(path: str | Path) -> list[dict[str, float | int | None]]:
    """Rows of a ``history.csv``: ints for epoch/step, floats elsewhere, None for blanks."""
    rows = []
    with open(path, newline="") as handle:
        for raw in csv.DictReader(handle):
            row: dict[str, float | int | None] = {}
            for key, text in raw.items():
                if text in ("", None):
                    row[key] = None
                elif key in ("epoch", "step"):
                    row[key] = int(text)
                else:
                    row[key] = float(text)
            rows.append(row)
    return rows


class EvaluationWriter(Callback):
    """After ``validate``/``test``: ``metrics.json``, the confusion matrix (CSV, PNG) and
    ``per_class_accuracy.csv`` in ``output_dir``; prints the metrics with the protocol."""

    def __init__(self, output_dir: str | Path, checkpoint: str | None) -> None:
        self.output_dir = Path(output_dir)
        self.checkpoint = checkpoint
        self.results: dict[str, Any] | None = None

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.state.fn == "validate":
            self._write(trainer, pl_module)

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._write(trainer, pl_module)

    def _write(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        evaluation = getattr(pl_module, "last_evaluation", None)
        if evaluation is None:
            return
        datamodule = trainer.datamodule
        data = datamodule.describe() if hasattr(datamodule, "describe") else {}
        class_names = data.get("class_names") or [
            str(i) for i in range(evaluation["confusion_matrix"].shape[0])
        ]
        confusion = evaluation["confusion_matrix"]
        role = "val" if evaluation["stage"] == "val" else "test"
        seconds = evaluation["forward_seconds"]
        results = {
            "stage": trainer.state.fn.value if hasattr(trainer.state.fn, "value") else "",
            "checkpoint": self.checkpoint,
            **evaluation["metrics"],
            "num_videos": evaluation["num_videos"],
            "subset": (data.get("subsets") or {}).get(role),
            "protocol": data.get("protocol"),
            "per_class_accuracy": per_class_accuracy(confusion),
            "class_names": class_names,
            "confusion_matrix": confusion.tolist(),
            "cache_dir": data.get("cache_dir"),
            "cache_fingerprint": data.get("cache_fingerprint"),
            "dataset": data.get("dataset"),
            "world_size": trainer.world_size,
            # Per process: videos it evaluated / its forward time (exact on one device).
            "inference_videos_per_s": (
                evaluation["num_videos"] / trainer.world_size / seconds if seconds > 0 else None
            ),
            "device": _device_name(pl_module),
        }
        early = evaluation.get("early_recognition")
        if early is not None:
            results["early_recognition"] = early
        self.results = json_safe(results)
        if not trainer.is_global_zero:
            return
        atomic_write_text(self.output_dir / METRICS_FILE, json.dumps(self.results, indent=1))
        save_confusion_matrix(confusion, class_names, self.output_dir)
        if early is not None:
            save_early_recognition(early, self.output_dir)
            points = ", ".join(
                f"{p} % {100 * v:.1f}"
                for p, v in zip(early["percent_observed"], early["top1"])
                if p in (20, 50, 80, 100)
            )
            say(
                f"  early recognition (top-1 with part of each video seen): {points}; "
                f"area {100 * early['area']:.1f} %"
            )
        metrics = evaluation["metrics"]
        top5 = "n/a (fewer than 5 classes)" if metrics["top5"] is None else f"{metrics['top5']:.4f}"
        say(
            f"{results['stage']}: {evaluation['num_videos']} videos, subset "
            f"{(results['subset'] or {}).get('subset')}; protocol: "
            f"{(results['protocol'] or {}).get('description')}\n"
            f"  top1 (micro accuracy) {metrics['top1']:.4f}   top5 {top5}   "
            f"mean class accuracy (macro recall) {metrics['mean_class_accuracy']:.4f}   "
            f"loss {metrics['loss']:.4f}\n  written to {self.output_dir}"
        )
        if trainer.world_size > 1:
            say(
                "  note: with several processes the DistributedSampler repeats a few videos to "
                "even out the shards; run the final test on one device for exact numbers"
            )


class PredictionWriter(Callback):
    """After ``predict``: ``predictions.jsonl``, one line per video in dataset order:
    ``{"rel_path", "label", "label_name", "top_k": [{"class_id", "class_name", "prob"}],
    "probs": [C floats]}``; ``label`` is null for unlabelled videos."""

    def __init__(self, output_dir: str | Path, top_k: int = PREDICT_TOP_K) -> None:
        self.path = Path(output_dir) / PREDICTIONS_FILE
        self.top_k = top_k
        self._rows: list[dict[str, Any]] = []
        self.results: dict[str, Any] | None = None

    def on_predict_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._rows = []

    def on_predict_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        class_names = getattr(trainer.datamodule, "class_names", None)
        probs = outputs["probs"]  # (B, C)
        k = min(self.top_k, probs.shape[1])
        top = probs.topk(k, dim=1)
        for row, rel_path in enumerate(outputs["rel_paths"]):
            label = int(outputs["labels"][row])
            label = None if label < 0 else label

            def name(class_id: int | None) -> str | None:
                if class_id is None:
                    return None
                return class_names[class_id] if class_names else str(class_id)

            self._rows.append(
                {
                    "rel_path": rel_path,
                    "label": label,
                    "label_name": name(label),
                    "top_k": [
                        {"class_id": int(c), "class_name": name(int(c)), "prob": float(p)}
                        for p, c in zip(top.values[row], top.indices[row])
                    ],
                    "probs": [float(p) for p in probs[row]],
                }
            )

    def on_predict_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        rows = self._rows
        if trainer.world_size > 1 and torch.distributed.is_initialized():
            gathered: list[Any] = [None] * trainer.world_size
            torch.distributed.all_gather_object(gathered, rows)
            rows = [row for part in gathered for row in part]
        order = {key: i for i, key in enumerate(trainer.datamodule.datasets["predict"].keys)}
        unique = {row["rel_path"]: row for row in rows}
        rows = sorted(unique.values(), key=lambda row: order.get(row["rel_path"], 0))
        self.results = {"predictions": str(self.path), "num_videos": len(rows)}
        if trainer.is_global_zero:
            text = "".join(json.dumps(row) + "\n" for row in rows)
            atomic_write_text(self.path, text)
            say(f"predict: wrote {len(rows)} videos' class probabilities to {self.path}")


class ProgressLines(Callback):
    """Progress as plain lines, for when the output is a log file or a pipe, not a terminal.

    Lightning's live bar (on standard output) would write thousands of carriage-return updates
    into the log, so the CLI turns it off there and adds this callback instead
    (:func:`video_eleatt.progress.progress_bar`): one line every ``interval_s`` seconds or
    every 10 % of the work, with the values Lightning's bar shows, and a last line at the end.
    ``fit`` counts optimizer steps over the whole run, ``validate``/``test``/``predict`` their
    videos::

        fit: 240/800 steps (30.0 %), 12.1 steps/s, 46 s left [epoch 3, train/loss_step 0.82]
    """

    def __init__(self, interval_s: float = 10.0, stream: IO[str] | None = None) -> None:
        self.interval_s = interval_s
        self.stream = stream
        self.bar: Any = None
        self._first_step = 0

    def _open(self, trainer: pl.Trainer, total: float, desc: str, unit: str) -> None:
        if trainer.is_global_zero:
            known = total if math.isfinite(total) else None
            self.bar = progress_bar(
                None if known is None else int(known),
                desc,
                unit=unit,
                stream=self.stream if self.stream is not None else sys.stderr,
                interval_s=self.interval_s,
            )

    def _close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._first_step = trainer.global_step  # a resumed run counts from its checkpoint
        total = trainer.estimated_stepping_batches - trainer.global_step
        self._open(trainer, total, "fit", "step")

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if self.bar is None:
            return
        shown = [f"epoch {trainer.current_epoch}"]
        shown += [
            f"{name} {value:.4g}" if isinstance(value, (int, float)) else f"{name} {value}"
            for name, value in trainer.progress_bar_metrics.items()
        ]
        self.bar.set_postfix_str(", ".join(shown))
        self.bar.update(trainer.global_step - self._first_step - self.bar.n)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._close()

    def _evaluation_start(self, trainer: pl.Trainer, dataloaders: Any, verb: str) -> None:
        loaders = dataloaders if isinstance(dataloaders, (list, tuple)) else [dataloaders]
        try:
            total: float = sum(len(loader.dataset) for loader in loaders)
        except (AttributeError, TypeError):  # a loader without a sized dataset
            total = math.inf
        self._open(trainer, total, verb, "video")

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.state.fn == "validate":  # during fit the fit line goes on
            self._evaluation_start(trainer, trainer.val_dataloaders, "validate")

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._evaluation_start(trainer, trainer.test_dataloaders, "test")

    def on_predict_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._evaluation_start(trainer, trainer.predict_dataloaders, "predict")

    def _evaluation_batch_end(
        self, trainer: pl.Trainer, pl_module: Any, outputs: Any, batch: Any, *args: Any
    ) -> None:
        if self.bar is not None and trainer.state.fn != "fit":
            self.bar.update(len(batch["lengths"]) if isinstance(batch, Mapping) else 1)

    on_validation_batch_end = on_test_batch_end = on_predict_batch_end = _evaluation_batch_end

    def _evaluation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.state.fn != "fit":
            self._close()

    on_validation_end = on_test_end = on_predict_end = _evaluation_end


def _device_name(pl_module: pl.LightningModule) -> str:
    device = pl_module.device
    if device.type == "cuda":
        return f"{device} {torch.cuda.get_device_name(device)}"
    return str(device)
