"""The comparison runner: variants x splits x seeds through the same training code as ``fit``.

Every run is ``video_eleatt.training.run.run_training`` (the code path of ``video-eleatt fit``
and ``test``) with the base training config(s), the variant's model options, the split and the
seed. Every variant uses the same data options, hence the same feature cache and, per seed, the
same data order (the data module derives its randomness from the seed alone).

Layout of ``output_dir``::

    compare_config.yaml                   the comparison config as parsed (reproduces it)
    report.md, results.csv, summary.csv, comparisons.csv, per_class.csv, figures/*.png
    runs/<variant>/split-<split>/seed-<seed>/
        run_spec.json                     what the run is (checked when resuming)
        config.yaml, checkpoints/, history.csv, train_summary.json, test_<ckpt>/ (training's)
        result.json                       written last: the run is finished (see results.py)
        failure.json                      the error of the last failed attempt
        log.txt                           output of the run (parallel mode)

Resuming: a run with ``result.json`` is not repeated; a run whose fit finished is only tested;
an interrupted one continues from ``checkpoints/last.ckpt``.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from queue import Queue
from typing import Any, Literal

import yaml

from video_eleatt.compare.report import ReportOutcome, ReportPlan, write_report
from video_eleatt.compare.results import RESULT_FILE, RunResult, read_result, write_result
from video_eleatt.compare.stats import Summary
from video_eleatt.config_files import ConfigNameError, find_config, match_shipped

RUNS_DIR = "runs"
SPEC_FILE = "run_spec.json"
FAILURE_FILE = "failure.json"
LOG_FILE = "log.txt"
CONFIG_DUMP = "compare_config.yaml"
DEFAULT_SPLIT = "default"  # split label when the base config's own split is used
# Options a variant may not change: they decide the features and the data order.
SHARED_SECTIONS = ("data", "seed_everything", "trainer", "checkpoint", "ckpt_path")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


class ComparisonError(ValueError):
    """The comparison cannot run as configured (the message names the problem and the fix)."""


@dataclass
class VariantSpec:
    """One arm of the comparison.

    Attributes:
        model: Options of the training config's ``model`` section (``cell``,
            ``num_eleatt_layers``, ``num_plain_layers``, ``hidden_size``, ``gate_activation``,
            ``lr``, ...), applied over the base config.
        label: Name in the report (default: the variant's key).
        baseline: The variant this one is compared with, when not the comparison's baseline
            (e.g. an EleAtt-LSTM against an LSTM baseline in the same comparison).
    """

    model: dict[str, Any] = field(default_factory=dict)
    label: str | None = None
    baseline: str | None = None


@dataclass
class CompareConfig:
    """A comparison: which variants, on which splits and seeds, trained how.

    Attributes:
        base_config: Training config file(s) (``video-eleatt fit --config`` format); later files
            override earlier ones. They set data (cache, dataset), trainer and model defaults.
        name: Title of the report.
        baseline: The variant every other variant is compared with.
        variants: Variant key -> options. Default: the base config's stack with m = 0
            (``baseline_gru``) and with every layer gated (``eleatt_gru``).
        seeds: Seeds; each run of a variant is paired with the baseline run of the same seed.
        splits: Dataset splits (e.g. ``["1", "2", "3"]``); default: the base config's split.
        output_dir: Where runs and the report go.
        trainer: Trainer options for every run (e.g. ``{max_epochs: 30}``), over the base.
            Every run trains on one device (``devices: 1``); see ``devices`` for several GPUs.
        data: Data options for every run (e.g. ``{cache: features/x, num_workers: 4}``).
        test_checkpoint: Checkpoint tested: ``best`` (best val top-1), ``last``, or ``auto``:
            best when the validation videos are not the test videos, else last (choosing the
            epoch on the test videos would inflate the result).
        parallel: Runs at once (1: one after another in this process; N > 1: N worker
            processes).
        devices: GPU indices for one process per device (sets ``parallel`` to their number;
            each run sees only its device via ``CUDA_VISIBLE_DEVICES``).
        measure_inference: Time the trained model on the test set (sequences/s).
        alpha: Significance level of the paired tests.
        confidence: Coverage of the bootstrap confidence intervals.
        num_resamples: Bootstrap resamples.
        report_only: Do not train; rebuild the report from the finished runs.
    """

    base_config: list[str] = field(default_factory=list)
    name: str = "baseline vs EleAtt"
    baseline: str = "baseline_gru"
    variants: dict[str, VariantSpec] | None = None
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])
    splits: list[str | int] | None = None
    output_dir: str = "runs/compare"
    trainer: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    test_checkpoint: Literal["auto", "best", "last"] = "auto"
    parallel: int = 1
    devices: list[int] | None = None
    measure_inference: bool = True
    alpha: float = 0.05
    confidence: float = 0.95
    num_resamples: int = 10_000
    report_only: bool = False


@dataclass
class RunSpec:
    """Everything one run needs (JSON-serialisable: it is handed to worker processes).

    Attributes:
        variant: Variant key.
        split: Split label (``"default"``: the base config's own split).
        seed: Seed.
        run_dir: Run directory.
        configs: Training config files, then the variant's options as a dict.
        overrides: Dotted keys applied last (seed, split, shared trainer/data options).
        test_checkpoint: "auto", "best" or "last".
        measure_inference: Whether to time inference.
    """

    variant: str
    split: str
    seed: int
    run_dir: str
    configs: list[Any]
    overrides: dict[str, Any]
    test_checkpoint: str = "auto"
    measure_inference: bool = True

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.variant, self.split, self.seed)

    def identity(self) -> dict[str, Any]:
        """What must not change when a run is resumed."""
        return {
            "variant": self.variant,
            "split": self.split,
            "seed": self.seed,
            "configs": [_config_identity(item) for item in self.configs],
            "overrides": self.overrides,
            "test_checkpoint": self.test_checkpoint,
        }


def _config_identity(item: Any) -> Any:
    if isinstance(item, dict):
        return item
    path = _base_config_file(item) or Path(item)
    # Parsed, so that editing comments does not invalidate finished runs.
    content = yaml.safe_load(path.read_text()) if path.is_file() else None
    return {"file": str(item), "content": content}


# ----------------------------------------------------------------------------- the plan


def load_base_config(paths: Sequence[str]) -> dict[str, Any]:
    """The base training configs merged (later files win, nested sections merged)."""
    if not paths:
        raise ComparisonError(
            "base_config is empty: give the training config(s) every run starts from, e.g. "
            "base_config: [configs/jhmdb/eleatt_gru.yaml]"
        )
    merged: dict[str, Any] = {}
    for path in paths:
        try:
            file = find_config(path, what="base_config")
        except ConfigNameError as err:
            raise ComparisonError(
                f"base_config {path!r} does not exist; give the path of a training config "
                f"(the YAML you would pass to `video-eleatt fit --config`) or a shipped "
                f"config's name ({err})"
            ) from err
        try:
            content = yaml.safe_load(file.read_text()) or {}
        except yaml.YAMLError as err:
            raise ComparisonError(f"base_config {path!r} is not valid YAML: {err}") from err
        if not isinstance(content, dict):
            raise ComparisonError(f"base_config {path!r} must hold a mapping, got {content!r}")
        merged = _merge(merged, _load_section_files(content, file.parent))
    return merged


def _base_config_file(item: str) -> Path | None:
    """The file of a ``base_config`` entry (a path on disk, else a shipped config), or None."""
    try:
        return find_config(item)
    except ConfigNameError:
        return None


def _load_section_files(content: dict[str, Any], directory: Path) -> dict[str, Any]:
    """Sections given as a file (``model: ../models/gru_1x512.yaml``) read in, as
    jsonargparse does: relative to the including file's folder, else to the working folder,
    else the shipped config of that name (``video_eleatt.config_files``)."""
    resolved = dict(content)
    for key, value in content.items():
        if isinstance(value, str) and value.endswith((".yaml", ".yml")):
            shipped = [find_config(value)] if len(match_shipped(value)) == 1 else []
            for candidate in (directory / value, Path(value), *shipped):
                if candidate.is_file():
                    section = yaml.safe_load(candidate.read_text()) or {}
                    if isinstance(section, dict):
                        resolved[key] = section
                    break
    return resolved


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def default_variants(base: dict[str, Any]) -> dict[str, VariantSpec]:
    """Baseline (m = 0, n = k) and EleAtt (m = k, n = 0) for the base config's k layers.

    The cell type comes from the base config (GRU by default); keys are
    ``baseline_<cell>`` and ``eleatt_<cell>``.
    """
    model = base.get("model") or {}
    cell = str(model.get("cell", "gru"))
    layers = int(model.get("num_eleatt_layers", 1)) + int(model.get("num_plain_layers", 0))
    name = {"gru": "GRU", "lstm": "LSTM", "rnn": "sRNN"}.get(cell, cell)
    return {
        f"baseline_{cell}": VariantSpec(
            model={"num_eleatt_layers": 0, "num_plain_layers": layers},
            label=f"Baseline {name} ({layers} layer{'s' if layers > 1 else ''})",
        ),
        f"eleatt_{cell}": VariantSpec(
            model={"num_eleatt_layers": layers, "num_plain_layers": 0},
            label=f"EleAtt-{name} ({layers} layer{'s' if layers > 1 else ''})",
        ),
    }


def resolve_variants(config: CompareConfig, base: dict[str, Any]) -> dict[str, VariantSpec]:
    """The variants of ``config`` (or the defaults), checked.

    Raises:
        ComparisonError: no baseline among them, a bad name, a variant that changes the data.
    """
    variants = dict(config.variants) if config.variants else default_variants(base)
    variants = {
        key: value if isinstance(value, VariantSpec) else VariantSpec(**dict(value))
        for key, value in variants.items()
    }
    if config.variants is None and config.baseline not in variants:
        cell = str((base.get("model") or {}).get("cell", "gru"))
        config.baseline = f"baseline_{cell}"
    for key, variant in variants.items():
        if not NAME_PATTERN.match(key):
            raise ComparisonError(
                f"variant name {key!r} is not usable as a folder name; use letters, digits and "
                "_ . + - (e.g. eleatt_gru_2layers)"
            )
        shared = [name for name in variant.model if name in SHARED_SECTIONS or "." in name]
        if shared:
            raise ComparisonError(
                f"variant {key!r} sets {shared} under `model`; a variant only sets model options "
                "(cell, num_eleatt_layers, num_plain_layers, hidden_size, gate_activation, lr, "
                "...). Data, trainer and seed are shared by every variant: set them in the "
                "comparison's `data` / `trainer` so all variants see the same features and data "
                "order"
            )
    if config.baseline not in variants:
        raise ComparisonError(
            f"baseline {config.baseline!r} is not one of the variants {sorted(variants)}; every "
            "variant is compared with the baseline: add it to `variants` or set `baseline` to "
            "one of them"
        )
    for key, variant in variants.items():
        if variant.baseline is not None and (
            variant.baseline not in variants or variant.baseline == key
        ):
            raise ComparisonError(
                f"variant {key!r} is compared with {variant.baseline!r}, which is "
                f"{'itself' if variant.baseline == key else 'not one of the variants'}; name "
                f"another variant of {sorted(variants)} (or drop `baseline` to use "
                f"{config.baseline!r})"
            )
    if len(variants) < 2:
        raise ComparisonError(
            f"only one variant ({config.baseline!r}): nothing to compare; add at least one "
            "variant besides the baseline"
        )
    return variants


def split_labels(config: CompareConfig) -> list[str]:
    """The splits as strings (``["default"]`` when the base config's split is used)."""
    if not config.splits:
        return [DEFAULT_SPLIT]
    labels = [str(split) for split in config.splits]
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise ComparisonError(f"splits {duplicates} are listed twice in {labels}")
    return labels


def plan_runs(config: CompareConfig) -> tuple[list[RunSpec], dict[str, VariantSpec]]:
    """All runs of the comparison, seed-major (so an interrupted comparison has paired runs).

    Raises:
        ComparisonError: for an unusable config (the message says what to change).
    """
    base = load_base_config(config.base_config)
    variants = resolve_variants(config, base)
    if not config.seeds:
        raise ComparisonError("seeds is empty; give at least one seed (5 are recommended)")
    if len(set(config.seeds)) != len(config.seeds):
        raise ComparisonError(f"seeds {config.seeds} hold duplicates")
    splits = split_labels(config)
    output_dir = Path(config.output_dir)
    devices = config.trainer.get("devices", 1)
    if devices not in (1, "1") and not (isinstance(devices, list) and len(devices) == 1):
        raise ComparisonError(
            f"trainer.devices {devices!r}: each comparison run trains on one device (a "
            "multi-process run would relaunch the whole comparison in every process); to use "
            "several GPUs, run one run per GPU with `devices: [0, 1, ...]`"
        )
    # One device per run, whatever the base config says ("auto" would start DDP on every GPU).
    shared = _flatten({"trainer": {"devices": 1, "num_nodes": 1, **config.trainer}})
    shared.update(_flatten({"data": config.data}))
    runs = []
    for seed in config.seeds:
        for split in splits:
            for key, variant in variants.items():
                overrides = dict(shared)
                overrides["seed_everything"] = int(seed)
                if split != DEFAULT_SPLIT:
                    overrides["data.split"] = split
                runs.append(
                    RunSpec(
                        variant=key,
                        split=split,
                        seed=int(seed),
                        run_dir=str(run_directory(output_dir, key, split, seed)),
                        configs=[*config.base_config, {"model": dict(variant.model)}],
                        overrides=overrides,
                        test_checkpoint=config.test_checkpoint,
                        measure_inference=config.measure_inference,
                    )
                )
    return runs, variants


def run_directory(output_dir: Path, variant: str, split: str, seed: int) -> Path:
    """``<output_dir>/runs/<variant>/split-<split>/seed-<seed>``."""
    return Path(output_dir) / RUNS_DIR / variant / f"split-{split}" / f"seed-{seed}"


def _flatten_all(value: Any, prefix: str = "") -> dict[str, Any]:
    """Every leaf of nested dicts and lists, keyed by its dotted path (for messages)."""
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = ((str(i), item) for i, item in enumerate(value))
    else:
        return {prefix: value}
    flat: dict[str, Any] = {}
    for key, item in items:
        flat.update(_flatten_all(item, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and "class_path" not in value:
            flat.update(_flatten(value, name + "."))  # an empty section adds nothing
        else:
            flat[name] = value
    return flat


# ----------------------------------------------------------------------------- one run


def check_run_spec(spec: RunSpec) -> None:
    """Write ``run_spec.json`` on first use; refuse to resume a run made with other options.

    Raises:
        ComparisonError: naming what changed and the fix.
    """
    run_dir = Path(spec.run_dir)
    path = run_dir / SPEC_FILE
    identity = json.loads(json.dumps(spec.identity()))
    if path.is_file():
        recorded = json.loads(path.read_text())
        if recorded != identity:
            old, new = _flatten_all(recorded), _flatten_all(identity)
            changed = [
                f"{key}: {old.get(key, '(unset)')!r} -> {new.get(key, '(unset)')!r}"
                for key in sorted(set(old) | set(new))
                if old.get(key) != new.get(key)
            ]
            shown = "; ".join(changed[:5]) + (
                f"; ... ({len(changed)} in all)" if changed[5:] else ""
            )
            raise ComparisonError(
                f"{run_dir} was made with other options ({shown}); "
                "its results would not match this config. Delete that folder to rerun it, or "
                "use another output_dir for the new comparison"
            )
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(identity, indent=1) + "\n")


def execute_run(spec: RunSpec, log: Callable[[str], None] | None = None) -> RunResult:
    """Train (or resume), test and time one run; write and return its result.

    A run with ``result.json`` is returned as is; a finished fit is only tested.

    Raises:
        ComparisonError: the run directory belongs to another configuration.
        Exception: whatever training raised (the caller records it).
    """
    from video_eleatt.training.run import read_summary

    log = log or _say
    run_dir = Path(spec.run_dir)
    finished = read_result(run_dir)
    check_run_spec(spec)
    if finished is not None:
        return finished
    (run_dir / FAILURE_FILE).unlink(missing_ok=True)
    summary = read_summary(run_dir)
    if summary is None:
        resuming = (run_dir / "checkpoints" / "last.ckpt").is_file()
        log(f"{_name(spec)}: {'resuming from last.ckpt' if resuming else 'training'}")
        started = time.perf_counter()
        summary = _train(spec.configs, spec.overrides, run_dir, "fit", "last")
        if summary.get("status") != "finished":
            raise RuntimeError(
                f"fit did not finish (status {summary.get('status')!r}); rerun the comparison "
                "to resume it from its last checkpoint"
            )
        log(f"{_name(spec)}: trained in {time.perf_counter() - started:.1f} s")
    tag = choose_test_checkpoint(spec.test_checkpoint, summary)
    metrics = _train(
        run_dir / "config.yaml",
        {"trainer.devices": 1, "trainer.num_nodes": 1, "verbose": False},
        run_dir,
        "test",
        tag,
    )
    speed = None
    if spec.measure_inference:
        speed = measure_inference_speed(run_dir, metrics.get("checkpoint"), metrics.get("device"))
    result = build_result(spec, summary, metrics, tag, speed)
    write_result(run_dir, result)
    top5 = "n/a" if result.test_top5 is None else f"{result.test_top5:.4f}"
    log(
        f"{_name(spec)}: test top-1 {result.test_top1:.4f}, top-5 {top5}, mean class accuracy "
        f"{result.test_mean_class_accuracy:.4f} ({tag} checkpoint)"
    )
    return result


def _train(*args: Any) -> dict[str, Any]:
    """``run_training`` with this process's own command line hidden from LightningCLI (it
    warns when ``sys.argv`` holds arguments besides the ones it is given)."""
    from video_eleatt.training.run import run_training

    saved = sys.argv
    sys.argv = saved[:1]
    try:
        return run_training(*args)
    finally:
        sys.argv = saved


def _name(spec: RunSpec) -> str:
    return f"{spec.variant} split {spec.split} seed {spec.seed}"


def _say(message: str) -> None:
    print(f"compare: {message}", file=sys.stderr, flush=True)


def choose_test_checkpoint(setting: str, summary: dict[str, Any]) -> str:
    """``best`` or ``last`` for ``setting`` (see ``CompareConfig.test_checkpoint``)."""
    if setting in ("best", "last"):
        return setting
    subsets = ((summary.get("data") or {}).get("subsets")) or {}
    val_subset = str((subsets.get("val") or {}).get("subset", ""))
    # The data module describes subsets as "'<name>' (note)"; 'test' validates when the split
    # has no val subset (UCF101, HMDB51, JHMDB, NTU).
    if val_subset.startswith("'test'") or not summary.get("best_model_path"):
        return "last"
    return "best"


def build_result(
    spec: RunSpec,
    summary: dict[str, Any],
    metrics: dict[str, Any],
    checkpoint_tag: str,
    inference_speed: dict[str, Any] | None,
) -> RunResult:
    """A :class:`RunResult` from training's ``train_summary.json`` and test ``metrics.json``."""
    history = [
        {key: value for key, value in row.items() if value is not None}
        for row in summary.get("history") or []
    ]
    protocol = dict(metrics.get("protocol") or {})
    protocol["checkpoint"] = checkpoint_tag
    protocol["test_subset"] = (metrics.get("subset") or {}).get("subset")
    protocol["validation_subset"] = (
        ((summary.get("data") or {}).get("subsets") or {}).get("val") or {}
    ).get("subset")
    counts = summary.get("parameter_counts") or {}
    return RunResult(
        variant=spec.variant,
        split=spec.split,
        seed=spec.seed,
        test_top1=float(metrics["top1"]),
        test_top5=None if metrics.get("top5") is None else float(metrics["top5"]),
        test_mean_class_accuracy=float(metrics["mean_class_accuracy"]),
        test_loss=metrics.get("loss"),
        per_class_accuracy=list(metrics.get("per_class_accuracy") or []),
        confusion_matrix=list(metrics.get("confusion_matrix") or []),
        class_names=list(metrics.get("class_names") or []),
        history=history,
        parameter_count=int(counts.get("total", 0)),
        parameter_counts={k: int(v) for k, v in counts.items()},
        train_time_per_epoch_s=summary.get("train_time_per_epoch_s"),
        inference_sequences_per_s=(inference_speed or {}).get("sequences_per_s"),
        num_test_videos=int(metrics.get("num_videos") or 0),
        cache_dir=str(metrics.get("cache_dir") or ""),
        cache_fingerprint=str(metrics.get("cache_fingerprint") or ""),
        model_config=dict(summary.get("model") or {}),
        test_protocol=protocol,
        run_dir=str(spec.run_dir),
        device=str(metrics.get("device") or ""),
        extra={
            "epochs": summary.get("epochs"),
            "best_val_top1": summary.get("best_model_score"),
            "tested_checkpoint": metrics.get("checkpoint"),
            "test_loop_videos_per_s": metrics.get("inference_videos_per_s"),
            "inference": inference_speed,
            "dataset": metrics.get("dataset"),
        },
    )


def measure_inference_speed(
    run_dir: str | Path,
    checkpoint: str | None,
    device_name: str | None = None,
    min_seconds: float = 0.5,
    max_passes: int = 20,
) -> dict[str, Any] | None:
    """Sequences per second of the trained model over the test set, in eval mode.

    The test batches (as the test loop makes them: same batch size, clips and padding) are
    loaded into memory first, so only the model is timed; one warm-up batch, then whole passes
    over the test set until ``min_seconds`` have elapsed (CUDA synchronised).

    Returns:
        ``{"sequences_per_s", "num_videos", "passes", "seconds", "batch_size", "device"}``, or
        None (with a message) when the run's data or checkpoint cannot be loaded here.
    """
    import torch

    from video_eleatt.training.module import ActionClassifier

    if not checkpoint:
        return None
    try:
        datamodule = _test_datamodule(Path(run_dir) / "config.yaml")
        device = torch.device(
            "cuda"
            if (device_name or "").startswith("cuda") and torch.cuda.is_available()
            else "cpu"
        )
        module = ActionClassifier.load_from_checkpoint(
            checkpoint, map_location=device, weights_only=True
        ).eval()
    except Exception as err:  # the result is still valid without the timing
        _say(f"{run_dir}: inference not timed ({type(err).__name__}: {err})")
        return None
    batches = []
    for batch in datamodule.test_dataloader():
        batches.append(
            {
                "features": batch["features"].to(device),
                "lengths": batch["lengths"].to(device),
            }
        )
    num_videos = sum(int(batch["features"].shape[0]) for batch in batches)

    def synchronise() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    passes = 0
    with torch.inference_mode():
        module.video_log_probs(batches[0])  # warm-up (allocations, kernel selection)
        synchronise()
        started = time.perf_counter()
        while True:
            for batch in batches:
                module.video_log_probs(batch)
            synchronise()
            passes += 1
            elapsed = time.perf_counter() - started
            if elapsed >= min_seconds or passes >= max_passes:
                break
    return {
        "sequences_per_s": num_videos * passes / elapsed,
        "num_videos": num_videos,
        "passes": passes,
        "seconds": elapsed,
        "batch_size": datamodule.eval_batch_size,
        "device": str(device),
    }


def _test_datamodule(config_path: Path) -> Any:
    from video_eleatt.datasets import DatasetSpec
    from video_eleatt.training.data import FeatureDataModule

    config = yaml.safe_load(config_path.read_text())
    data = dict(config.get("data") or {})
    if isinstance(data.get("dataset"), dict):
        data["dataset"] = DatasetSpec(**data["dataset"])
    data["num_workers"] = 0
    os.environ.setdefault("PL_GLOBAL_SEED", str(config.get("seed_everything", 0)))
    datamodule = FeatureDataModule(**data)
    datamodule.setup("test")
    return datamodule


# ----------------------------------------------------------------------------- all runs


@dataclass
class ComparisonOutcome:
    """What :func:`run_comparison` did.

    Attributes:
        report: The report outcome (files, problems, verdicts).
        trained: Runs trained or tested in this invocation.
        skipped: Runs already finished before (not repeated).
        failed: Run key -> error message.
    """

    report: ReportOutcome
    trained: list[tuple[str, str, int]]
    skipped: list[tuple[str, str, int]]
    failed: dict[tuple[str, str, int], str]


# Errors that would repeat identically for every run: stop instead of failing N times.
def _is_config_error(err: BaseException) -> bool:
    from jsonargparse import ArgumentError

    from video_eleatt.training.errors import TrainingError

    return isinstance(err, (ComparisonError, TrainingError, ArgumentError))


def run_comparison(
    config: CompareConfig, config_text: str | None = None, log: Callable[[str], None] | None = None
) -> ComparisonOutcome:
    """Run (or resume) every run of the comparison, then write the report.

    Args:
        config: The comparison.
        config_text: The config as YAML, saved as ``compare_config.yaml``.
        log: Progress messages (default: stderr).

    Returns:
        What ran, what was skipped, what failed, and the report.

    Raises:
        ComparisonError: the config cannot run; or a run failed because of its configuration
            (the report is written first with what exists).
    """
    log = log or _say
    if config.devices:
        config.parallel = len(config.devices)
    if config.parallel < 1:
        raise ComparisonError(f"parallel must be >= 1, got {config.parallel}")
    runs, variants = plan_runs(config)
    output_dir = Path(config.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    if config_text is not None:
        (output_dir / CONFIG_DUMP).write_text(config_text)
    if len(config.seeds) < 2:
        log(
            f"warning: {len(config.seeds)} seed per split: the report can state differences but "
            "no p-value or confidence interval from a single pair per split; use >= 5 seeds"
        )

    skipped = [spec.key for spec in runs if (Path(spec.run_dir) / RESULT_FILE).is_file()]
    todo = [spec for spec in runs if spec.key not in set(skipped)]
    for spec in runs:
        if spec.key in set(skipped):
            check_run_spec(spec)
    if skipped:
        log(f"{len(skipped)} of {len(runs)} runs already finished: not repeated")
    failed: dict[tuple[str, str, int], str] = {}
    trained: list[tuple[str, str, int]] = []
    fatal: BaseException | None = None
    if not config.report_only and todo:
        if config.parallel == 1:
            for number, spec in enumerate(todo, 1):
                log(f"[{number}/{len(todo)}] {_name(spec)}")
                try:
                    execute_run(spec, log)
                    trained.append(spec.key)
                except Exception as err:
                    failed[spec.key] = _record_failure(spec, err)
                    log(f"{_name(spec)} FAILED: {failed[spec.key]}")
                    if _is_config_error(err):
                        fatal = err
                        break
        else:
            trained, failed = _run_parallel(todo, config, log)
    report = write_comparison_report(config, runs, variants, failed)
    if fatal is not None:
        raise ComparisonError(
            f"{_name(next(s for s in todo if s.key in failed))} failed because of its "
            f"configuration, so the others would too; fix it and rerun (finished runs are "
            f"kept): {fatal}"
        ) from fatal
    return ComparisonOutcome(report=report, trained=trained, skipped=skipped, failed=failed)


def _record_failure(spec: RunSpec, err: BaseException) -> str:
    message = f"{type(err).__name__}: {err}".strip()
    run_dir = Path(spec.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / FAILURE_FILE).write_text(
        json.dumps({"error": message, "traceback": traceback.format_exc()}, indent=1) + "\n"
    )
    return message.splitlines()[0] if message else type(err).__name__


def _run_parallel(
    todo: list[RunSpec], config: CompareConfig, log: Callable[[str], None]
) -> tuple[list[tuple[str, str, int]], dict[tuple[str, str, int], str]]:
    """N worker processes (one per device when ``devices`` is set), each running one run."""
    slots: Queue[int | None] = Queue()
    for slot in config.devices or [None] * config.parallel:
        slots.put(slot)
    threads_per_run = max(1, (os.cpu_count() or 1) // config.parallel)
    trained: list[tuple[str, str, int]] = []
    failed: dict[tuple[str, str, int], str] = {}
    lock = threading.Lock()
    counter = iter(range(1, len(todo) + 1))

    def work(spec: RunSpec) -> None:
        device = slots.get()
        try:
            with lock:
                number = next(counter)
            where = f" on cuda:{device}" if device is not None else ""
            log(f"[{number}/{len(todo)}] {_name(spec)}{where} (log: {spec.run_dir}/{LOG_FILE})")
            environment = dict(os.environ)
            environment["OMP_NUM_THREADS"] = str(threads_per_run)
            if device is not None:
                environment["CUDA_VISIBLE_DEVICES"] = str(device)
            run_dir = Path(spec.run_dir)
            run_dir.mkdir(parents=True, exist_ok=True)
            spec_path = run_dir / "worker_spec.json"
            spec_path.write_text(json.dumps(asdict(spec)))
            with (run_dir / LOG_FILE).open("a") as handle:
                code = subprocess.call(
                    [sys.executable, "-m", "video_eleatt.compare.runner", str(spec_path)],
                    stdout=handle,
                    stderr=subprocess.STDOUT,
                    env=environment,
                )
            with lock:
                if (run_dir / RESULT_FILE).is_file():
                    trained.append(spec.key)
                    log(f"{_name(spec)}: finished")
                else:
                    failure = run_dir / FAILURE_FILE
                    message = (
                        json.loads(failure.read_text())["error"].splitlines()[0]
                        if failure.is_file()
                        else f"worker exited with code {code} (see {run_dir / LOG_FILE})"
                    )
                    failed[spec.key] = message
                    log(f"{_name(spec)} FAILED: {message}")
        finally:
            slots.put(device)

    with ThreadPoolExecutor(max_workers=config.parallel) as pool:
        list(pool.map(work, todo))
    return trained, failed


def worker_main(argv: list[str]) -> int:
    """``python -m video_eleatt.compare.runner <worker_spec.json>``: one run in its own process."""
    spec = RunSpec(**json.loads(Path(argv[0]).read_text()))
    threads = os.environ.get("OMP_NUM_THREADS")
    # the first line of the run's log.txt: which GPU this process was given
    print(
        f"compare worker: {_name(spec)}, CUDA_VISIBLE_DEVICES="
        f"{os.environ.get('CUDA_VISIBLE_DEVICES', '(unset)')}, {threads or 'default'} threads",
        flush=True,
    )
    if threads:
        import torch

        torch.set_num_threads(int(threads))
    try:
        execute_run(spec)
    except Exception as err:
        _record_failure(spec, err)
        traceback.print_exc()
        return 1
    return 0


def collect_results(
    runs: Sequence[RunSpec],
) -> tuple[list[RunResult], dict[tuple[str, str, int], str]]:
    """Finished results and recorded failures of the planned runs."""
    results, failures = [], {}
    for spec in runs:
        result = read_result(spec.run_dir)
        if result is not None:
            results.append(result)
            continue
        failure = Path(spec.run_dir) / FAILURE_FILE
        if failure.is_file():
            failures[spec.key] = json.loads(failure.read_text())["error"].splitlines()[0]
    return results, failures


def write_comparison_report(
    config: CompareConfig,
    runs: Sequence[RunSpec],
    variants: dict[str, VariantSpec],
    failed: dict[tuple[str, str, int], str] | None = None,
) -> ReportOutcome:
    """The report of whatever runs have finished (missing ones are listed)."""
    results, failures = collect_results(runs)
    failures.update(failed or {})
    base_configs = {}
    for path in config.base_config:
        file = _base_config_file(path)
        base_configs[path] = file.read_text() if file is not None else "(file not found)"
    shared = {"trainer": config.trainer, "data": config.data}
    notes = []
    if any(shared.values()):
        notes.append(f"Options applied to every run over the base config: {json.dumps(shared)}")
    plan = ReportPlan(
        name=config.name,
        baseline=config.baseline,
        variants=[config.baseline, *[key for key in variants if key != config.baseline]],
        splits=split_labels(config),
        seeds=list(config.seeds),
        labels={key: variant.label or key for key, variant in variants.items()},
        references={key: v.baseline for key, v in variants.items() if v.baseline is not None},
        variant_configs={
            key: {"model": variant.model}
            | ({"compared_with": variant.baseline} if variant.baseline else {})
            for key, variant in variants.items()
        },
        base_configs=base_configs,
        failures=failures,
        notes=notes,
        alpha=config.alpha,
        confidence=config.confidence,
        num_resamples=config.num_resamples,
    )
    return write_report(results, plan, config.output_dir)


def format_summary(outcome: ComparisonOutcome) -> str:
    """The lines printed at the end of ``video-eleatt compare``."""
    report = outcome.report
    lines = [
        f"compare: {len(outcome.trained)} run(s) done now, {len(outcome.skipped)} already "
        f"finished, {len(outcome.failed)} failed, {len(report.missing_runs)} missing"
    ]
    rows = [row for row in report.summary if row["split"] == "all"] or report.summary
    if rows:
        width = max(len(str(row["label"])) for row in rows)
        lines.append(f"  {'variant':<{width}}  split    test top-1 (%)         runs")
        for row in rows:
            top1 = Summary(row["top1_mean_pct"], row["top1_std_pct"], row["top1_n"])
            lines.append(
                f"  {row['label']:<{width}}  {row['split']:<7}  {top1.format():<21}  "
                f"{row['num_runs']}"
            )
    lines += [f"  {sentence}" for sentence in report.verdicts.values()]
    lines += [f"  problem: {problem}" for problem in report.problems]
    lines.append(f"report: {report.output_dir / 'report.md'}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(worker_main(sys.argv[1:]))
