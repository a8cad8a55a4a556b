"""Training runs in-process: the Lightning CLI over cached features, for programs.

Run directory (``trainer.default_root_dir``, set per config; ``run_dir`` in :func:`run_training`)::

    <run_dir>/config.yaml                 the fit config, complete (reproduces the run)
    <run_dir>/checkpoints/last.ckpt       end of every epoch (resume with --ckpt_path last)
    <run_dir>/checkpoints/best-epoch=NNN.ckpt   best val/top1 so far (one file)
    <run_dir>/history.csv                 one row per epoch (see callbacks.HISTORY_COLUMNS)
    <run_dir>/train_summary.json          written when fit ends normally: best/last paths and
                                          score, epochs, steps, parameters, data, protocol
    <run_dir>/tensorboard/                TensorBoard events (all fit invocations)
    <run_dir>/csv_logs/version_N/         Lightning's CSVLogger, one folder per invocation
    <run_dir>/<verb>_<ckpt>/              validate/test/predict with --ckpt_path best|last|file
        config.yaml                       (e.g. test_best/, test_last/, predict_best/)
        metrics.json                      validate/test: top1, top5, mean_class_accuracy, loss,
                                          per_class_accuracy, confusion_matrix, protocol, ...
        confusion_matrix.csv|.png, per_class_accuracy.csv
        early_recognition.csv|.png        test: top-1 with 10..100 % of each video observed
                                          (also in metrics.json; training.online)
        predictions.jsonl                 predict: probabilities and top-5 per video

This module is the library side (the comparison runner and other programs call
:func:`run_training`); ``video_eleatt.training.cli`` is the command line over it.
"""

from __future__ import annotations

import io
import json
import sys
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import yaml
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger
from pytorch_lightning.plugins.io import TorchCheckpointIO
from pytorch_lightning.trainer.states import TrainerStatus

from video_eleatt.config_files import ConfigNameError, resolve_config_args
from video_eleatt.fileio import (
    atomic_write_bytes,
    atomic_write_text,
    json_safe,
    write_failure_reason,
)
from video_eleatt.progress import is_terminal
from video_eleatt.quiet import third_party_noise_filtered
from video_eleatt.training.callbacks import (
    EpochHistory,
    EvaluationWriter,
    PredictionWriter,
    ProgressLines,
    RunConfigCallback,
)
from video_eleatt.training.data import FeatureDataModule, say
from video_eleatt.training.errors import TrainingError
from video_eleatt.training.module import ActionClassifier

HISTORY_NAME = "history.csv"
SUMMARY_NAME = "train_summary.json"
CHECKPOINT_DIR = "checkpoints"
VERBS = ("fit", "validate", "test", "predict")

# Trainer defaults of every run (paper: gradients clipped at 1; loss curves to ~80 epochs).
TRAINER_DEFAULTS: dict[str, Any] = {
    "gradient_clip_val": 1.0,
    "gradient_clip_algorithm": "norm",
    "max_epochs": 80,
    "default_root_dir": "runs/default",
    "log_every_n_steps": 10,
}
CHECKPOINT_DEFAULTS: dict[str, Any] = {
    "checkpoint.monitor": "val/top1",
    "checkpoint.mode": "max",
    "checkpoint.save_top_k": 1,
    # last.ckpt has its own callback: Lightning 2.6 refreshes save_last only in epochs
    # where the monitored metric improved.
    "checkpoint.save_last": False,
    "checkpoint.filename": "best-{epoch:03d}",
    # Saved after the epoch's history row and learning-rate step: a resume is exact.
    "checkpoint.save_on_train_epoch_end": True,
}


class EleAttCLI(LightningCLI):
    """LightningCLI for :class:`ActionClassifier` on :class:`FeatureDataModule`."""

    def __init__(self, args: list[str], exit_on_error: bool = True) -> None:
        self.results: dict[str, Any] = {}
        # Only the requested verb's parser is built (each takes ~0.2 s to introspect).
        self.verbs = [args[0]] if args and args[0] in VERBS else list(VERBS)
        parser_kwargs: dict[str, Any] = {"exit_on_error": exit_on_error, "prog": "video-eleatt"}
        parser_kwargs.update({verb: {"exit_on_error": exit_on_error} for verb in self.verbs})
        super().__init__(
            model_class=ActionClassifier,
            datamodule_class=FeatureDataModule,
            save_config_callback=RunConfigCallback,
            trainer_defaults=dict(TRAINER_DEFAULTS),
            seed_everything_default=0,
            parser_kwargs=parser_kwargs,
            args=args,
            auto_configure_optimizers=False,
        )

    def subcommands(self) -> dict[str, set[str]]:  # type: ignore[override]
        return {
            verb: skip for verb, skip in LightningCLI.subcommands().items() if verb in self.verbs
        }

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments("data.feature_dim", "model.input_size", apply_on="instantiate")
        parser.link_arguments("data.num_classes", "model.num_classes", apply_on="instantiate")
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults(CHECKPOINT_DEFAULTS)

    def _parse_ckpt_path(self) -> None:
        # LightningCLI would replace the configured model options by those stored in a
        # checkpoint file. Here the config decides, and a checkpoint that does not fit it
        # is an error naming the differences (ActionClassifier.on_load_checkpoint).
        return

    def before_instantiate_classes(self) -> None:
        verb = self.subcommand
        config = self.config[verb]
        self.run_dir = Path(config.trainer.default_root_dir)
        self.checkpoint_dir = Path(config.checkpoint.dirpath or self.run_dir / CHECKPOINT_DIR)
        config.checkpoint.dirpath = str(self.checkpoint_dir)
        self.ckpt_path = resolve_checkpoint(
            verb, config.get("ckpt_path"), self.run_dir, self.checkpoint_dir
        )
        if verb == "fit":
            self.output_dir = self.run_dir
        else:
            self.output_dir = self.run_dir / f"{verb}_{checkpoint_tag(self.ckpt_path)}"
        self.save_config_kwargs = {"output_dir": str(self.output_dir)}

    def instantiate_trainer(self, **kwargs: Any) -> Any:
        verb = self.subcommand
        trainer_config = self._get(self.config_init, "trainer", default={})
        if trainer_config.get("logger") in (None, True):
            if verb == "fit":
                kwargs["logger"] = [
                    CSVLogger(str(self.run_dir), name="csv_logs"),
                    TensorBoardLogger(
                        str(self.run_dir),
                        name="tensorboard",
                        version="",
                        default_hp_metric=False,
                    ),
                ]
            else:
                kwargs["logger"] = [CSVLogger(str(self.output_dir), name="", version="")]
        if verb == "fit":
            self.run_callback = EpochHistory(self.run_dir / HISTORY_NAME)
        elif verb == "predict":
            self.run_callback = PredictionWriter(self.output_dir)
        else:
            self.run_callback = EvaluationWriter(self.output_dir, self.ckpt_path)
        callbacks = trainer_config.get("callbacks") or []
        if not isinstance(callbacks, list):
            callbacks = [callbacks]
        kwargs["callbacks"] = [*callbacks, self.run_callback]
        if trainer_config.get("enable_progress_bar") is not False and not is_terminal(sys.stdout):
            # Lightning's live bar writes to standard output; in a log file or a pipe it would be
            # thousands of carriage-return updates: plain lines on standard error instead.
            kwargs["enable_progress_bar"] = False
            kwargs["callbacks"].append(ProgressLines())
        if not trainer_config.get("plugins"):
            kwargs["plugins"] = [AtomicCheckpointIO()]
        if verb == "fit":
            # Appended after the configurable best-checkpoint callback, so last.ckpt records
            # that callback's state of the same epoch.
            self.trainer_defaults["callbacks"] = [last_checkpoint_callback(self.checkpoint_dir)]
        return super().instantiate_trainer(**kwargs)

    def _before_verb(self) -> None:
        config = self.config_init[self.subcommand]
        config["ckpt_path"] = self.ckpt_path
        if config.get("weights_only") is None:
            # Checkpoints of this project hold only tensors and plain data.
            config["weights_only"] = True
        if self.ckpt_path:
            say(f"{self.subcommand}: checkpoint {self.ckpt_path}")

    before_fit = before_validate = before_test = before_predict = _before_verb

    def after_fit(self) -> None:
        trainer = self.trainer
        summary = fit_summary(trainer, self.model, self.datamodule, self.run_callback)
        summary["run_dir"] = str(self.run_dir)
        summary["seed"] = self.config["fit"].get("seed_everything")
        self.results = json_safe(summary)
        if trainer.is_global_zero and summary["status"] == "finished":
            atomic_write_text(self.run_dir / SUMMARY_NAME, json.dumps(self.results, indent=1))
        if summary["status"] == "finished":
            best = summary.get("best_model_score")
            say(
                f"fit: {summary['epochs']} epochs, {summary['global_step']} steps; "
                f"best val/top1 {best if best is None else f'{best:.4f}'} at "
                f"{summary['best_model_path']}; run directory {self.run_dir}"
            )

    def after_validate(self) -> None:
        self.results = self.run_callback.results or {}

    after_test = after_validate

    def after_predict(self) -> None:
        self.results = self.run_callback.results or {}


# --------------------------------------------------------------------------- checkpoints


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written with :func:`video_eleatt.fileio.atomic_write_bytes`.

    Lightning's own writer stages the file in the system's temporary folder and moves it into
    place, which is a copy (not atomic) when that folder is on another file system, with no
    fsync: a kill or power cut during the copy leaves a truncated ``last.ckpt`` and the next
    ``fit`` cannot resume. Here a reader sees the previous checkpoint or the whole new one.
    Paths with a scheme (``s3://...``) keep Lightning's writer.

    Raises:
        TrainingError: the checkpoint cannot be written (names the file and the reason).
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None or "://" in str(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        try:
            atomic_write_bytes(path, buffer.getbuffer())
        except OSError as err:
            raise TrainingError(
                f"cannot write checkpoint {path}: {write_failure_reason(err)} "
                f"({type(err).__name__}: {err}); the previous checkpoint there is unchanged. "
                "Free space or choose another trainer.default_root_dir"
            ) from err


def last_checkpoint_callback(checkpoint_dir: str | Path) -> ModelCheckpoint:
    """Writes ``<checkpoint_dir>/last.ckpt`` at the end of every training epoch."""
    return ModelCheckpoint(
        dirpath=str(checkpoint_dir),
        filename="last",
        monitor=None,
        save_top_k=1,
        save_on_train_epoch_end=True,
        enable_version_counter=False,
    )


def resolve_checkpoint(
    verb: str, ckpt_path: str | None, run_dir: Path, checkpoint_dir: Path
) -> str | None:
    """The checkpoint file a verb loads, or None.

    ``fit``: None starts fresh (refused when the run directory already holds a run);
    ``"last"`` resumes from ``<checkpoint_dir>/last.ckpt``, or starts fresh when there is
    none yet (so a runner can always pass it). Evaluation verbs need ``best``, ``last`` or a
    file.

    Raises:
        TrainingError: naming the directory and the fix.
    """
    if ckpt_path is None:
        if verb != "fit":
            raise TrainingError(
                f"{verb} needs a checkpoint: pass --ckpt_path best (best val/top1), "
                f"--ckpt_path last, or a .ckpt file (looked in {checkpoint_dir})"
            )
        existing = sorted(checkpoint_dir.glob("*.ckpt")) if checkpoint_dir.is_dir() else []
        if existing or (run_dir / "config.yaml").exists():
            raise TrainingError(
                f"the run directory {run_dir} already holds a run "
                f"({', '.join(p.name for p in existing[:3]) or 'config.yaml'}); resume it with "
                "--ckpt_path last, or start a new run in another directory "
                "(--trainer.default_root_dir), or delete it"
            )
        return None
    if ckpt_path == "last":
        last = checkpoint_dir / "last.ckpt"
        if last.is_file():
            return str(last)
        if verb == "fit":
            say(f"fit: no {last} to resume from; starting a new run")
            return None
        raise TrainingError(f"no {last}: train first (`video-eleatt fit ...`) or pass a file")
    if ckpt_path == "best":
        return str(find_best_checkpoint(checkpoint_dir))
    if not Path(ckpt_path).is_file():
        raise TrainingError(
            f"--ckpt_path {ckpt_path!r} is not a file; give best, last or a .ckpt path"
        )
    return str(ckpt_path)


def find_best_checkpoint(checkpoint_dir: str | Path) -> Path:
    """The best checkpoint of a run: what ``last.ckpt`` records as best, else the only
    ``best-*.ckpt``.

    Raises:
        TrainingError: when there is none or it is ambiguous.
    """
    checkpoint_dir = Path(checkpoint_dir)
    last = checkpoint_dir / "last.ckpt"
    if last.is_file():
        states = torch.load(last, map_location="cpu", weights_only=True, mmap=True).get(
            "callbacks", {}
        )
        for key, state in states.items():
            path = state.get("best_model_path") if key.startswith("ModelCheckpoint") else None
            if path and Path(path).is_file():
                return Path(path)
    candidates = sorted(checkpoint_dir.glob("best*.ckpt")) if checkpoint_dir.is_dir() else []
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise TrainingError(
            f"no best checkpoint in {checkpoint_dir}: train first (`video-eleatt fit ...`) "
            "with validation, or pass --ckpt_path last or a file"
        )
    raise TrainingError(
        f"several best checkpoints in {checkpoint_dir} ({[p.name for p in candidates]}); "
        "pass one of them as --ckpt_path"
    )


def checkpoint_tag(ckpt_path: str | None) -> str:
    """Folder suffix for an evaluation: ``best``, ``last`` or the checkpoint's file stem."""
    if ckpt_path is None:
        return "init"
    stem = Path(ckpt_path).stem
    if stem.startswith("best"):
        return "best"
    if stem.startswith("last"):
        return "last"
    return stem


def fit_summary(trainer: Any, model: Any, datamodule: Any, history: Any) -> dict[str, Any]:
    """What a finished ``fit`` produced (JSON-safe apart from tensors)."""
    callback = trainer.checkpoint_callback
    rows = list(getattr(history, "rows", []))
    epoch_times = [row["epoch_time_s"] for row in rows if row.get("epoch_time_s") is not None]
    finished = trainer.state.status == TrainerStatus.FINISHED and not trainer.interrupted
    return {
        "status": "finished" if finished else "interrupted",
        "epochs": trainer.current_epoch,
        "global_step": trainer.global_step,
        "best_model_path": getattr(callback, "best_model_path", None) or None,
        "best_model_score": getattr(callback, "best_model_score", None),
        "monitor": getattr(callback, "monitor", None),
        "last_model_path": getattr(callback, "last_model_path", None) or None,
        "train_time_per_epoch_s": sum(epoch_times) / len(epoch_times) if epoch_times else None,
        "model": {k: v for k, v in dict(model.hparams).items() if not k.startswith("_")},
        "parameter_counts": model.classifier.parameter_counts(),
        "data": datamodule.describe() if hasattr(datamodule, "describe") else None,
        "world_size": trainer.world_size,
        "history": rows,
    }


# --------------------------------------------------------------------------- entry points


def _cli_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (list, dict, tuple)):
        return json.dumps(value)
    return str(value)


def build_args(
    verb: str,
    config: str | Path | Mapping[str, Any] | Sequence[str | Path | Mapping[str, Any]] | None,
    overrides: Mapping[str, Any] | Sequence[str] | None = None,
    run_dir: str | Path | None = None,
    ckpt_path: str | Path | None = None,
) -> list[str]:
    """The command-line arguments :func:`run_training` passes to the CLI."""
    if verb not in VERBS:
        raise ValueError(f"verb {verb!r}: expected one of {VERBS}")
    args = [verb]
    configs = config if isinstance(config, (list, tuple)) else ([] if config is None else [config])
    for item in configs:
        if isinstance(item, Mapping):
            args += ["--config", yaml.safe_dump(dict(item), sort_keys=False)]
        else:
            args += ["--config", str(item)]
    if isinstance(overrides, Mapping):
        args += [f"--{key}={_cli_value(value)}" for key, value in overrides.items()]
    elif overrides:
        args += [str(item) for item in overrides]
    if run_dir is not None:
        args += [f"--trainer.default_root_dir={run_dir}"]
    if ckpt_path is not None:
        args += [f"--ckpt_path={ckpt_path}"]
    return args


def run_training(
    config: str | Path | Mapping[str, Any] | Sequence[str | Path | Mapping[str, Any]] | None,
    overrides: Mapping[str, Any] | Sequence[str] | None = None,
    run_dir: str | Path | None = None,
    verb: str = "fit",
    ckpt_path: str | Path | None = None,
) -> dict[str, Any]:
    """Runs one verb in-process, exactly as the command line would, and returns its results.

    Args:
        config: one or several config files (later ones override earlier ones) or dicts with
            the same content as a config file.
        overrides: dotted keys to values (``{"model.hidden_size": 128, "seed_everything": 3}``)
            or command-line strings (``["--data.split=2"]``); applied after ``config``.
        run_dir: the run directory (``trainer.default_root_dir``); applied last.
        verb: "fit", "validate", "test" or "predict".
        ckpt_path: "last" (fit: resume if there is one, else start), "best", or a file;
            required by the evaluation verbs.

    Returns:
        fit: the content of ``train_summary.json`` (``status``, ``best_model_path``,
        ``best_model_score``, ``history`` rows, ``parameter_counts``, ``data``, ...);
        validate/test: the content of ``metrics.json``; predict: ``{"predictions": path,
        "num_videos": n}``.

    Raises:
        TrainingError: bad config values, cache, dataset split or checkpoint.
        jsonargparse.ArgumentError: unknown or mistyped options (no ``SystemExit``).

    >>> summary = run_training("configs/jhmdb/eleatt_gru_split1.yaml", {"seed_everything": 1},
    ...                        "runs/jhmdb/s1/seed1", "fit", "last")  # doctest: +SKIP
    >>> metrics = run_training("runs/jhmdb/s1/seed1/config.yaml", verb="test",
    ...                        ckpt_path="best")  # doctest: +SKIP
    """
    args = build_args(verb, config, overrides, run_dir, ckpt_path)
    try:
        # Config names and shipped references (the comparison's base_config) become paths.
        args = resolve_config_args(args)
    except ConfigNameError as err:
        raise TrainingError(str(err)) from err
    return run_cli(args, exit_on_error=False).results


def run_cli(args: list[str], exit_on_error: bool) -> EleAttCLI:
    """Runs the Lightning CLI on ``args`` (``args[0]`` the verb) and returns it, done."""
    with warnings.catch_warnings(), third_party_noise_filtered():
        # Not for users of this CLI: args equal to the command line (or a program's own
        # arguments); a checkpoint's fit-time callbacks absent in validate/test/predict.
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
        warnings.filterwarnings("ignore", message="Be aware that when using `ckpt_path`")
        return EleAttCLI(args, exit_on_error=exit_on_error)


class _ParseOnlyCLI(EleAttCLI):
    """:class:`EleAttCLI` that stops once its arguments are parsed: no seed is set, nothing is
    instantiated, nothing runs."""

    def _set_seed(self) -> None:  # LightningCLI would seed this process's generators
        return

    def before_instantiate_classes(self) -> None:
        return

    def instantiate_classes(self) -> None:
        return

    def _run_subcommand(self, subcommand: str) -> None:
        return


def compose_fit_config(
    config: str | Path | Mapping[str, Any] | Sequence[str | Path | Mapping[str, Any]] | None,
    overrides: Mapping[str, Any] | Sequence[str] | None = None,
) -> dict[str, Any]:
    """The fit config that ``config`` and ``overrides`` compose to, as plain data.

    Composed by the parser ``fit`` uses, so exactly as ``run_training(config, overrides)``
    would see it: several config files (later ones win), sub-config files
    (``model: ../models/gru_1x512.yaml``), shipped config names, and every default filled in.
    Nothing is built: no model, data module or trainer (a ``data.cache`` that names an
    extract config stays that path).

    Returns:
        ``{"model": {...}, "data": {...}, "trainer": {...}, "checkpoint": {...},
        "seed_everything": ..., ...}`` without jsonargparse's bookkeeping keys (``config``,
        ``__path__``).

    Raises:
        TrainingError: a config name that is no file and no shipped config.
        jsonargparse.ArgumentError: unknown or mistyped options, unreadable YAML.

    >>> compose_fit_config("jhmdb/gru_split1")["model"]["hidden_size"]  # doctest: +SKIP
    512
    """
    args = build_args("fit", config, overrides)
    try:
        args = resolve_config_args(args)
    except ConfigNameError as err:
        raise TrainingError(str(err)) from err
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
        cli = _ParseOnlyCLI(args, exit_on_error=False)
    return _plain_config(cli.config["fit"].as_dict())


def _plain_config(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: _plain_config(item)
            for key, item in value.items()
            if key not in ("config", "__path__")
        }
    if isinstance(value, list):
        return [_plain_config(item) for item in value]
    return value


def read_summary(run_dir: str | Path) -> dict[str, Any] | None:
    """``train_summary.json`` of a run, or None when its fit has not finished."""
    path = Path(run_dir) / SUMMARY_NAME
    return json.loads(path.read_text()) if path.is_file() else None


def read_evaluation(run_dir: str | Path, verb: str = "test", tag: str = "best") -> dict[str, Any]:
    """``metrics.json`` of ``<run_dir>/<verb>_<tag>/``."""
    return json.loads((Path(run_dir) / f"{verb}_{tag}" / "metrics.json").read_text())
