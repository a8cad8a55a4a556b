"""The plan of a comparison: its config, its variants and runs, and each run's identity.

A comparison (:class:`CompareConfig`) is variants x splits x seeds over base training
config(s). :func:`plan_runs` turns it into :class:`RunSpec` records, one per run directory;
:mod:`video_eleatt.compare.runner` executes them. The base configs are composed by training's
own parser (:func:`video_eleatt.training.run.compose_fit_config`: several files, sub-config
files, shipped names), so the plan sees exactly what ``video-eleatt fit`` would.

>>> config, text = parse_compare_config(["--config", "configs/compare/jhmdb_gru.yaml"])
>>> runs, variants = plan_runs(config)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from jsonargparse import ArgumentError, ArgumentParser

from video_eleatt.compare.options import dataclass_parser, parse_dataclass
from video_eleatt.config_files import ConfigNameError, find_config
from video_eleatt.training.errors import TrainingError
from video_eleatt.training.run import compose_fit_config

RUNS_DIR = "runs"
SPEC_FILE = "run_spec.json"
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
        alpha: Significance level of the paired tests; every interval is at level
            ``1 - alpha``, so that an interval and its test always agree.
        target_difference_pts: The difference of interest, in points of accuracy: the report
            states the power to detect it and the seeds needed to (default 2, the size of the
            paper's RGB gains).
        num_resamples: Bootstrap resamples (BCa, shown from 30 paired runs on).
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
    target_difference_pts: float = 2.0
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

    @property
    def name(self) -> str:
        """``<variant> split <split> seed <seed>``, for messages."""
        return f"{self.variant} split {self.split} seed {self.seed}"

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
    path = base_config_file(item) or Path(item)
    # Parsed, so that editing comments does not invalidate finished runs.
    content = yaml.safe_load(path.read_text()) if path.is_file() else None
    identity = {"file": str(item), "content": content}
    includes = _included_configs(content, path.parent, set())
    if includes:
        identity["includes"] = includes
    return identity


def _included_configs(content: Any, folder: Path, seen: set[Path]) -> list[list[Any]]:
    """``[name, parsed content]`` of every YAML file a config names, recursively, in order.

    A string value ending in ``.yaml``/``.yml`` anywhere in ``content`` that names a file --
    relative to the config's ``folder`` (how ``model: ../models/x.yaml`` is read) or to the
    working folder (how ``data.cache: configs/extract/x.yaml`` is) -- is read in, so that
    editing a sub-config changes the identity of the runs made with it.
    """
    found: list[list[Any]] = []
    values = [content]
    while values:
        value = values.pop(0)
        if isinstance(value, dict):
            values[:0] = list(value.values())
        elif isinstance(value, list):
            values[:0] = value
        elif isinstance(value, str) and value.endswith((".yaml", ".yml")):
            candidate = next((p for p in (folder / value, Path(value)) if p.is_file()), None)
            if candidate is None or candidate.resolve() in seen:
                continue
            seen.add(candidate.resolve())
            included = yaml.safe_load(candidate.read_text())
            found.append([value, included])
            found.extend(_included_configs(included, candidate.parent, seen))
    return found


def _without_includes(identity: dict[str, Any]) -> dict[str, Any]:
    """``identity`` as runs recorded it before included configs were part of it."""
    configs = [
        {k: v for k, v in item.items() if k != "includes"} if isinstance(item, dict) else item
        for item in identity.get("configs", [])
    ]
    return {**identity, "configs": configs}


# ----------------------------------------------------------------------------- the plan


def compose_base_config(
    base_config: Sequence[str], overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The base training configs composed with the options shared by every run, as training's
    parser composes them (later files win; ``model: ../models/x.yaml`` read in; defaults
    filled in); nothing is built.

    Raises:
        ComparisonError: no base config, one that does not exist, or a composition that
            ``video-eleatt fit`` would refuse (unknown option, bad YAML, ...).
    """
    if not base_config:
        raise ComparisonError(
            "base_config is empty: give the training config(s) every run starts from, e.g. "
            "base_config: [configs/jhmdb/eleatt_gru.yaml]"
        )
    for path in base_config:
        try:
            find_config(path, what="base_config")
        except ConfigNameError as err:
            raise ComparisonError(
                f"base_config {path!r} does not exist; give the path of a training config "
                f"(the YAML you would pass to `video-eleatt fit --config`) or a shipped "
                f"config's name ({err})"
            ) from err
    try:
        return compose_fit_config(list(base_config), overrides)
    except (TrainingError, ArgumentError) as err:
        raise ComparisonError(
            f"base_config {list(base_config)} with the options shared by every run "
            f"{dict(overrides or {})} is not a training config `video-eleatt fit` accepts: {err}"
        ) from err


def base_config_file(item: str) -> Path | None:
    """The file of a ``base_config`` entry (a path on disk, else a shipped config), or None."""
    try:
        return find_config(item)
    except ConfigNameError:
        return None


def default_variants(base: dict[str, Any]) -> dict[str, VariantSpec]:
    """Baseline (m = 0, n = k) and EleAtt (m = k, n = 0) for the base config's k layers.

    Args:
        base: The composed base config (:func:`compose_base_config`).

    The cell type comes from the base config (GRU by default); keys are
    ``baseline_<cell>`` and ``eleatt_<cell>``.
    """
    model = base["model"]
    cell = str(model["cell"])
    layers = int(model["num_eleatt_layers"]) + int(model["num_plain_layers"])
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
        cell = str(base["model"]["cell"])
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
    base = compose_base_config(config.base_config, shared)
    variants = resolve_variants(config, base)
    if not config.seeds:
        raise ComparisonError("seeds is empty; give at least one seed (5 are recommended)")
    if len(set(config.seeds)) != len(config.seeds):
        raise ComparisonError(f"seeds {config.seeds} hold duplicates")
    splits = split_labels(config)
    output_dir = Path(config.output_dir)
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
        if recorded != identity and recorded == _without_includes(identity):
            # Recorded before the contents of included configs were part of a run's identity:
            # it matches as it did then, and they are recorded from now on.
            path.write_text(json.dumps(identity, indent=1) + "\n")
            return
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


# ----------------------------------------------------------------------------- parsing


def build_compare_parser() -> ArgumentParser:
    """The parser of ``video-eleatt compare`` (every :class:`CompareConfig` field)."""
    return dataclass_parser(
        "video-eleatt compare",
        "Train baseline and EleAtt variants over seeds (and splits) with the same training "
        "code as `fit`, then write a report with paired statistics and figures. Rerunning "
        "skips finished runs and resumes interrupted ones.",
        "comparison YAML",
        CompareConfig,
    )


def parse_compare_config(argv: Sequence[str]) -> tuple[CompareConfig, str]:
    """A comparison from command-line arguments (``["--config", "x.yaml", "--seeds", ...]``).

    Returns:
        ``(config, config_text)``: the config and its YAML as parsed (what
        ``compare_config.yaml`` records).

    Raises:
        jsonargparse.ArgumentError: unknown or mistyped options, unreadable YAML.
    """
    parser = build_compare_parser()
    config, namespace = parse_dataclass(parser, list(argv), CompareConfig)
    return config, parser.dump(namespace, skip_none=False)
