"""``video-eleatt demo``: the main job, offline, on the generated demo dataset.

One command runs the whole system on real encoded videos, under the current folder (or
``--output_dir``), from any folder: its configs are the package's (``configs/demo/*.yaml``; a
copy in the working folder wins, see ``video_eleatt.config_files``)::

    generate   data/demo/motion/            UCF101-layout H.264 clips (skipped when complete)
    extract    data/demo/features/motion/   per-frame resnet18 features (RANDOM weights)
    compare    runs/demo/                   Baseline-GRU vs EleAtt-GRU over seeds, report.md
    attention  runs/demo/attention/         first-layer attention of one EleAtt run

Every stage is resumable and writes atomically (the generator renames a finished folder into
place, the cache writes one file per video, the comparison keeps finished runs), so a rerun
reuses what exists and an interrupted run continues. Every option that changes what is
computed (``--quick``, dataset size, epochs, seeds, weights, device) names its own folders
(:func:`folder_tags`), so no two option sets mix or overwrite each other's report.

The command is :func:`video_eleatt.demo.cli.demo_main`; from Python:

>>> run_demo(DemoOptions())  # doctest: +SKIP
>>> run_demo(DemoOptions(quick=True))  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from video_eleatt.compare.attention_run import AttentionConfig, AttentionOutcome, run_attention
from video_eleatt.compare.plan import ComparisonError, parse_compare_config
from video_eleatt.compare.rows import SummaryRow
from video_eleatt.compare.runner import run_comparison
from video_eleatt.config_files import ConfigNameError, find_config
from video_eleatt.demo.machine import describe_machine
from video_eleatt.demo.options import DemoOptions
from video_eleatt.demo.synth import DemoDataError, generate_dataset
from video_eleatt.demo.synth_config import SynthConfig
from video_eleatt.features import CacheError
from video_eleatt.features.backbones import file_sha256
from video_eleatt.features.config import parse_extract_config
from video_eleatt.features.extract import run_extraction
from video_eleatt.features.layout import read_config
from video_eleatt.fileio import atomic_write_text, json_safe, write_failure_reason
from video_eleatt.progress import progress_bar

# Below --output_dir (default: the current folder): the data, and the comparison's folder
# (runs/demo, or runs/demo_<tags> for options that change the results).
DATA_DIR = Path("data") / "demo"
RUNS_DIR = Path("runs")
RUNS_NAME = "demo"
# Read from the working folder when there (a checkout, an edited copy), else from the package.
EXTRACT_CONFIG = "configs/demo/extract.yaml"
COMPARE_CONFIG = "configs/demo/compare.yaml"
SEEDS_TAG_MAX = 16  # longer seed lists are named by their count and a hash
SUMMARY_FILE = "demo_summary.json"
DATASET_NAME = "motion"

# --quick: the same stages at smoke-test size (about a minute on 2 cores; the accuracies
# mean nothing). timm's 96-d test_resnet at 64x64 instead of resnet18 at 112x112.
QUICK_VIDEOS_PER_CLASS = 4
QUICK_SEEDS = [0, 1]
QUICK_EPOCHS = 2
QUICK_BACKBONE: dict[str, Any] = {
    "name": "test_resnet",
    "model_kwargs": {"pretrained_cfg_overlay": {"input_size": [3, 64, 64], "crop_pct": 1.0}},
}
QUICK_FRAMES = 6
# Extraction precision unless --precision says otherwise: the same on every machine (see
# DemoOptions.precision).
DEFAULT_PRECISION = "float32"


class DemoError(RuntimeError):
    """A stage of the demo cannot run (the message says why and the fix)."""


@dataclass
class DemoPlan:
    """Where every stage reads and writes, resolved from :class:`DemoOptions`."""

    root: Path
    data_dir: Path
    dataset_root: Path
    features_root: Path
    output_dir: Path
    extract_config: Path
    compare_config: Path
    synth: Any  # SynthConfig
    extract_args: list[str]
    compare_args: list[str]
    tag: str


# ----------------------------------------------------------------------------- the plan


def demo_config(path: str) -> Path:
    """A demo config: ``path`` in the working folder when it is there (a checkout, or a copy
    made with ``video-eleatt configs copy demo``), else the package's own.

    Raises:
        DemoError: neither exists (a broken installation).
    """
    try:
        return find_config(path)
    except ConfigNameError as err:
        raise DemoError(
            f"{err}. The package's configs are missing: reinstall video_eleatt"
        ) from err


def _read_yaml(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text()) or {}


def seeds_tag(seeds: Sequence[int]) -> str:
    """Folder tag of a seed list: ``s0-4`` for 0..4, ``s1.3-5`` for 1, 3, 4, 5; a long list
    is ``s<count>x<hash>``. The order of the seeds does not matter (same runs, same report).

    >>> seeds_tag([0, 1, 2, 3, 4]), seeds_tag([7, 1, 3, 4])
    ('s0-4', 's1.3-4.7')
    """
    values = sorted(set(int(seed) for seed in seeds))
    ranges: list[str] = []
    start = previous = values[0]
    for value in [*values[1:], None]:
        if value is not None and value == previous + 1:
            previous = value
            continue
        ranges.append(str(start) if start == previous else f"{start}-{previous}")
        if value is not None:
            start = previous = value
    tag = "s" + ".".join(ranges)
    if len(tag) > SEEDS_TAG_MAX:
        digest = hashlib.sha256(json.dumps(values).encode()).hexdigest()[:6]
        tag = f"s{len(values)}x{digest}"
    return tag


def folder_tags(
    options: DemoOptions, default_videos: int, default_seeds: Sequence[int]
) -> tuple[list[str], list[str]]:
    """The parts that name the dataset folder and the comparison folder for ``options``.

    Every option that changes the results adds a part, so two option sets never share a
    folder: ``quick`` and ``v<N>`` (videos per class) name the dataset and the runs;
    ``e<N>`` (epochs), the seeds (:func:`seeds_tag`), ``pretrained``,
    ``weights-<sha256[:8]>`` (of the weights file's bytes: another file or an edited one is
    another folder, the same file elsewhere is the same), ``cuda`` and an extraction
    precision other than float32 (``bfloat16``, ``auto``) name the runs (the feature cache's
    own folder is named by its precision already). Options that only change the speed
    (``parallel``, ``num_workers``) and ``attention`` add none.

    Args:
        default_videos: Clips per class when ``videos_per_class`` is not given.
        default_seeds: Seeds when ``seeds`` is not given.

    Returns:
        (dataset parts, run parts); both empty for the default options.
    """
    dataset_parts = ["quick"] if options.quick else []
    if options.videos_per_class and options.videos_per_class != default_videos:
        dataset_parts.append(f"v{options.videos_per_class}")
    run_parts = list(dataset_parts)
    if options.epochs:
        run_parts.append(f"e{options.epochs}")
    if options.seeds and sorted(options.seeds) != sorted(default_seeds):
        run_parts.append(seeds_tag(options.seeds))
    if options.pretrained:
        run_parts.append("pretrained")
    if options.backbone_weights:
        run_parts.append(f"weights-{file_sha256(options.backbone_weights)[:8]}")
    if options.device == "cuda":
        run_parts.append("cuda")
    if options.precision != DEFAULT_PRECISION:
        run_parts.append(options.precision)
    return dataset_parts, run_parts


def plan_demo(options: DemoOptions) -> DemoPlan:
    """Folders, the dataset parameters and the stage arguments for ``options``.

    Raises:
        DemoError: an option out of range or a config file missing.
    """
    default_videos = QUICK_VIDEOS_PER_CLASS if options.quick else SynthConfig().videos_per_class
    videos = options.videos_per_class or default_videos
    try:
        synth = SynthConfig(videos_per_class=videos)
    except ValueError as err:
        raise DemoError(f"--videos_per_class {videos}: {err}") from err
    if options.pretrained and options.backbone_weights:
        raise DemoError("give --pretrained or --backbone_weights <file>, not both")
    if options.parallel < 1 or options.num_workers < 1:
        raise DemoError(
            f"--parallel {options.parallel} and --num_workers {options.num_workers} must be >= 1"
        )
    if options.epochs is not None and options.epochs < 1:
        raise DemoError(f"--epochs {options.epochs}: expected at least 1")
    if options.backbone_weights and not Path(options.backbone_weights).is_file():
        raise DemoError(
            f"--backbone_weights {options.backbone_weights} is not a file; give a "
            ".safetensors or .pth file of the backbone's weights"
        )

    extract_config = demo_config(EXTRACT_CONFIG)
    compare_config = demo_config(COMPARE_CONFIG)
    compare_yaml = _read_yaml(compare_config)
    # Passed on as written ("configs/demo/train.yaml"): the comparison finds the file the same
    # way, and records the same name in a checkout and in an installed package.
    base_configs = [str(path) for path in compare_yaml.get("base_config", [])]
    for path in base_configs:
        demo_config(path)
    default_seeds = QUICK_SEEDS if options.quick else list(compare_yaml.get("seeds") or [])
    seeds = options.seeds or default_seeds
    epochs = options.epochs or (QUICK_EPOCHS if options.quick else None)

    # Everything that changes the results names its own folders: never mixed, never refused.
    dataset_parts, run_parts = folder_tags(options, default_videos, default_seeds)
    root = Path(options.output_dir)
    data_dir = Path(options.data_dir) if options.data_dir else root / DATA_DIR
    dataset_root = data_dir / "_".join([DATASET_NAME, *dataset_parts])
    features_root = data_dir / "features" / dataset_root.name
    tag = "_".join(run_parts)
    output_dir = root / RUNS_DIR / "_".join([RUNS_NAME, *run_parts])

    extract_args = [
        "--config",
        str(extract_config),
        f"--dataset.root={dataset_root}",
        f"--output_root={features_root}",
        f"--device={options.device}",
        f"--num_workers={options.num_workers}",
        f"--precision={options.precision}",
    ]
    if options.quick:
        extract_args += [
            f"--backbone.name={QUICK_BACKBONE['name']}",
            f"--backbone.model_kwargs={json.dumps(QUICK_BACKBONE['model_kwargs'])}",
            "--sampling.mode=uniform",
            f"--sampling.num_frames={QUICK_FRAMES}",
        ]
    if options.pretrained:
        extract_args.append("--backbone.weights=pretrained")
    elif options.backbone_weights:
        extract_args.append(f"--backbone.weights={options.backbone_weights}")

    trainer: dict[str, Any] = {"accelerator": "gpu" if options.device == "cuda" else "cpu"}
    if epochs:
        trainer["max_epochs"] = epochs
    compare_args = [
        "--config",
        str(compare_config),
        f"--base_config={json.dumps(base_configs)}",
        f"--output_dir={output_dir}",
        f"--seeds={json.dumps(seeds)}",
        f"--trainer={json.dumps(trainer)}",
        f"--parallel={options.parallel}",
    ]
    return DemoPlan(
        root=root,
        data_dir=data_dir,
        dataset_root=dataset_root,
        features_root=features_root,
        output_dir=output_dir,
        extract_config=extract_config,
        compare_config=compare_config,
        synth=synth,
        extract_args=extract_args,
        compare_args=compare_args,
        tag=tag,
    )


def check_writable(folder: Path, option: str) -> None:
    """Creates ``folder`` if needed and checks a file can be written in it.

    Raises:
        DemoError: naming the folder (absolute), the reason and the option that moves it.
    """
    probe = folder / f".demo-write-test-{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        fix = f"pass {option} <a writable folder>"
        if option == "--output_dir":
            fix = f"run the demo from a writable folder or {fix}"
        raise DemoError(
            f"cannot write to {folder.absolute()}: {write_failure_reason(err)}; {fix}"
        ) from err


# ----------------------------------------------------------------------------- the stages


def _stage(title: str) -> float:
    print(f"\n=== {title}", flush=True)
    return time.perf_counter()


def generate_stage(plan: DemoPlan, num_workers: int) -> Any:
    """The demo dataset at ``plan.dataset_root`` (written unless complete)."""
    config = plan.synth
    total = config.videos_per_class * len(config.classes)
    print(
        f"{len(config.classes)} classes x {config.videos_per_class} clips "
        f"({config.width}x{config.height}, {config.fps} fps, ~{config.duration_s:g} s) "
        f"at {plan.dataset_root}",
        flush=True,
    )
    bars: list = []  # made on the first video written (none when the dataset is complete)

    def progress(done: int, count: int) -> None:
        if not bars:
            bars.append(progress_bar(count, "generate", unit="video"))
        bars[0].update(1)
        if done == count:
            bars[0].close()

    try:
        dataset = generate_dataset(plan.dataset_root, config, num_workers, progress)
    except DemoDataError as err:
        raise DemoError(str(err)) from err
    if dataset.created:
        print(f"wrote {total} videos in {dataset.seconds:.0f} s", flush=True)
    else:
        print(f"already complete: reusing {total} videos", flush=True)
    print(
        f"  train {dataset.num_train} / test {dataset.num_test} videos; classes: "
        f"{', '.join(dataset.class_names)}"
    )
    return dataset


def extract_stage(plan: DemoPlan) -> Path:
    """Features of every video of the dataset; returns the cache directory.

    Raises:
        DemoError: the extraction could not run, or some videos failed (named).
    """
    config = parse_extract_config(plan.extract_args)
    backbone = config.backbone
    if backbone.weights == "random":
        line = "!" * 78
        print(
            f"{line}\n!! The demo's backbone ({backbone.name}) has RANDOM weights: the features "
            "are UNTRAINED.\n!! The comparison below shows the pipeline and the gate at work "
            "on a synthetic\n!! task; it says nothing about real videos. Real features: "
            f"--pretrained or --backbone_weights.\n{line}",
            flush=True,
        )
    try:
        summary = run_extraction(config)
    except (CacheError, ValueError) as err:
        raise DemoError(f"{type(err).__name__}: {err}") from err
    print(summary.report(), flush=True)
    failures = {**summary.previously_failed, **summary.failures}
    if failures:
        shown = "; ".join(f"{key}: {reason}" for key, reason in list(failures.items())[:3])
        raise DemoError(
            f"{len(failures)} demo video(s) could not be extracted ({shown}). The demo videos "
            f"are generated, so this points at the decoder: run `video-eleatt check --videos "
            f"{plan.dataset_root} --thorough`; delete {plan.dataset_root} to regenerate them"
        )
    return Path(summary.cache_dir)


def compare_stage(plan: DemoPlan, cache_dir: Path) -> Any:
    """Runs (or resumes) the comparison on ``cache_dir``; returns its outcome.

    Raises:
        DemoError: the comparison's configuration is unusable (with the reason).
    """
    args = [*plan.compare_args, f"--data={json.dumps({'cache': str(cache_dir)})}"]
    config, config_text = parse_compare_config(args)
    variants = len(config.variants or {}) or 2
    print(
        f"{variants} variants x {len(config.seeds)} seeds = {variants * len(config.seeds)} runs, "
        f"{config.parallel} at a time, into {config.output_dir} (finished runs are reused)",
        flush=True,
    )
    try:
        return run_comparison(config, config_text)
    except ComparisonError as err:
        raise DemoError(str(err)) from err


def attention_stage(plan: DemoPlan, outcome: Any) -> Any:
    """First-layer attention of the first EleAtt run (statistics, time maps, overlays)."""
    eleatt = [
        row
        for row in outcome.report.summary_rows
        if row.split == "all" and "eleatt" in row.variant.lower()
    ]
    variant = eleatt[0].variant if eleatt else "eleatt_gru"
    run_dirs = sorted((plan.output_dir / "runs" / variant).glob("split-*/seed-*"))
    finished = [path for path in run_dirs if (path / "result.json").is_file()]
    if not finished:
        print("no finished EleAtt run: attention skipped")
        return None
    output_dir = plan.output_dir / "attention"
    done = output_dir / "attention.md"
    drawn = done.is_file() and any(output_dir.glob("overlay_*.png"))
    if drawn and done.stat().st_mtime > (finished[0] / "result.json").stat().st_mtime:
        print(f"already drawn for {finished[0]}: reusing {output_dir}")
        return AttentionOutcome(output_dir=output_dir, files=[done], stats=None)
    config = AttentionConfig(
        checkpoint=str(finished[0]),
        output_dir=str(output_dir),
        num_videos=4,
        max_frames=6,
    )
    result = run_attention(config)
    print(result.summary(), flush=True)
    return result


# ----------------------------------------------------------------------------- the summary


def summary_rows(outcome: Any) -> list[SummaryRow]:
    """Per variant over all seeds (the report's rows of split "all", else all its rows)."""
    rows = [row for row in outcome.report.summary_rows if row.split == "all"]
    return rows or list(outcome.report.summary_rows)


def format_demo_summary(
    plan: DemoPlan,
    outcome: Any,
    attention: Any,
    seconds: dict[str, float],
    cache_dir: Path | None = None,
) -> str:
    """The closing lines: the table, the verdicts and where everything is (the data and the
    runs, under the current folder or ``--output_dir``)."""
    lines = [
        "",
        "=" * 78,
        "Demo results (test top-1 over seeds; features from an UNTRAINED backbone)",
    ]
    rows = summary_rows(outcome)
    width = max([len(row.label) for row in rows] + [7])
    lines.append(f"  {'variant':<{width}}  test top-1 (%), mean ± std     runs")
    for row in rows:
        top1 = row.accuracy_pct["top1"]
        lines.append(f"  {row.label:<{width}}  {top1.format():<28}  {row.num_runs}")
    lines += [f"  {sentence}" for sentence in outcome.report.verdicts.values()]
    lines += [
        f"  {row.new_data_verdict}"
        for row in outcome.report.comparison_rows
        if row.split == "pooled" and row.metric == "top1" and row.new_data_verdict
    ]
    lines += [f"  problem: {problem}" for problem in outcome.report.problems]
    report_dir = outcome.report.output_dir
    lines += [
        "",
        f"report:     {report_dir / 'report.md'}",
        f"figures:    {report_dir / 'figures'}/ (loss and accuracy curves, confusion matrices)",
        f"runs:       {report_dir / 'runs'}/<variant>/split-default/seed-<n>/ "
        "(checkpoints, history.csv)",
    ]
    if attention is not None:
        lines.append(f"attention:  {attention.output_dir}/ (attention.md, overlay_*.png)")
    lines.append(f"dataset:    {plan.dataset_root}/ (videos and split lists)")
    lines.append(f"features:   {cache_dir or plan.features_root}/")
    timing = ", ".join(f"{name} {value:.0f} s" for name, value in seconds.items())
    lines.append(f"time:       {timing}")
    checkpoint = _example_checkpoint(plan)
    sample = _example_video(plan)
    if checkpoint and sample:
        lines += [
            "",
            "Classify a video with a trained model:",
            f"  video-eleatt predict --checkpoint {checkpoint} {sample} "
            "--attention_overlay overlay.png",
        ]
    lines.append("=" * 78)
    return "\n".join(lines)


def _example_checkpoint(plan: DemoPlan) -> str | None:
    for path in sorted(plan.output_dir.glob("runs/eleatt*/split-*/seed-*/checkpoints/last.ckpt")):
        return str(path)
    return None


def _example_video(plan: DemoPlan) -> str | None:
    test_list = plan.dataset_root / "ucfTrainTestlist" / "testlist01.txt"
    if not test_list.is_file():
        return None
    first = test_list.read_text().split()
    return str(plan.dataset_root / "UCF-101" / first[0]) if first else None


def cache_precision(cache_dir: Path) -> str | None:
    """The precision the features of ``cache_dir`` were extracted in (its config.json)."""
    try:
        config = read_config(cache_dir)
    except CacheError:
        return None
    return (config.get("features") or {}).get("precision")


def write_summary_file(
    plan: DemoPlan, outcome: Any, attention: Any, seconds: dict[str, float], cache_dir: Path
) -> Path:
    """``<output_dir>/demo_summary.json``, written atomically."""
    data = {
        "dataset": str(plan.dataset_root),
        "cache_dir": str(cache_dir),
        "report": str(outcome.report.output_dir / "report.md"),
        "attention": str(attention.output_dir) if attention is not None else None,
        "variants": [
            {
                "variant": row.variant,
                "label": row.label,
                "top1_mean_pct": row.accuracy_pct["top1"].mean,
                "top1_std_pct": row.accuracy_pct["top1"].std,
                "runs": row.num_runs,
            }
            for row in summary_rows(outcome)
        ],
        "verdicts": outcome.report.verdicts,
        "machine": describe_machine(),
        "extraction_precision": cache_precision(cache_dir),
        "seconds": seconds,
        "complete": not outcome.failed and not outcome.report.missing_runs,
    }
    path = plan.output_dir / SUMMARY_FILE
    atomic_write_text(path, json.dumps(json_safe(data), indent=1) + "\n")
    return path


# ----------------------------------------------------------------------------- the whole demo


def run_demo(options: DemoOptions) -> int:
    """Every stage in order; returns the exit code (0 complete, 1 a stage failed or runs are
    missing, 2 unusable options or folders)."""
    started = time.perf_counter()
    try:
        plan = plan_demo(options)
        # Before any long work; nothing is created when the data folder is not writable.
        check_writable(plan.data_dir, "--data_dir" if options.data_dir else "--output_dir")
        check_writable(plan.output_dir, "--output_dir")
    except DemoError as err:
        print(f"video-eleatt demo: error: {err}", file=sys.stderr)
        return 2
    if options.device == "cuda" and not torch.cuda.is_available():
        print(
            "video-eleatt demo: error: --device cuda but no CUDA GPU is visible; "
            "drop --device (CPU is the default)",
            file=sys.stderr,
        )
        return 2

    seconds: dict[str, float] = {}
    stage = "generate"
    try:
        begin = _stage("1/4 generate the demo dataset")
        generate_stage(plan, options.num_workers)
        seconds["generate"] = time.perf_counter() - begin
        stage = "extract"
        begin = _stage("2/4 extract per-frame features")
        cache_dir = extract_stage(plan)
        seconds["extract"] = time.perf_counter() - begin
        stage = "compare"
        begin = _stage("3/4 train and compare Baseline-GRU vs EleAtt-GRU")
        outcome = compare_stage(plan, cache_dir)
        seconds["compare"] = time.perf_counter() - begin
        attention = None
        if options.attention:
            stage = "attention"
            begin = _stage("4/4 first-layer attention of an EleAtt run")
            try:
                attention = attention_stage(plan, outcome)
            except Exception as err:  # the comparison stands without the attention figures
                print(f"attention skipped: {type(err).__name__}: {err}", file=sys.stderr)
            seconds["attention"] = time.perf_counter() - begin
    except DemoError as err:
        print(_failure(stage, str(err)), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(_failure(stage, "interrupted"), file=sys.stderr)
        return 130
    except Exception as err:
        traceback.print_exc()
        print(_failure(stage, f"{type(err).__name__}: {err}"), file=sys.stderr)
        return 1
    seconds["total"] = time.perf_counter() - started
    write_summary_file(plan, outcome, attention, seconds, cache_dir)
    print(format_demo_summary(plan, outcome, attention, seconds, cache_dir), flush=True)
    complete = not outcome.failed and not outcome.report.missing_runs
    return 0 if complete and outcome.report.comparable else 1


def _failure(stage: str, reason: str) -> str:
    return (
        f"video-eleatt demo: the {stage} stage failed: {reason}\n"
        "Everything finished before is kept (dataset, features, finished runs); fix the cause "
        "and rerun `video-eleatt demo` with the same options to continue."
    )
