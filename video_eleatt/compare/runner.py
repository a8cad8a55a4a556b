"""The comparison runner: executes the planned runs (:mod:`~video_eleatt.compare.plan`) through
the same training code as ``fit``, then writes the report.

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
        test_predictions.csv              each test video's top-1 prediction (also in result.json)
        result.json                       written last: the run is finished (see results.py)
        failure.json                      the error of the last failed attempt
        log.txt                           output of the run (parallel mode)

Resuming: a run with ``result.json`` is not repeated; a run whose fit finished is only tested;
an interrupted one continues from ``checkpoints/last.ckpt``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from queue import Queue
from typing import Any

import numpy as np
import torch
import yaml
from jsonargparse import ArgumentError

from video_eleatt.compare.plan import (
    CompareConfig,
    ComparisonError,
    RunSpec,
    VariantSpec,
    base_config_file,
    check_run_spec,
    plan_runs,
    split_labels,
)
from video_eleatt.compare.report import ReportOutcome, write_report
from video_eleatt.compare.results import RESULT_FILE, RunResult, read_result, write_result
from video_eleatt.compare.rows import ALL_SPLITS, ReportPlan
from video_eleatt.datasets import DatasetSpec
from video_eleatt.fileio import atomic_write_text
from video_eleatt.training.data import FeatureDataModule
from video_eleatt.training.errors import TrainingError
from video_eleatt.training.module import ActionClassifier
from video_eleatt.training.run import read_summary, run_training

FAILURE_FILE = "failure.json"
PREDICTIONS_FILE = "test_predictions.csv"
LOG_FILE = "log.txt"
CONFIG_DUMP = "compare_config.yaml"


def execute_run(spec: RunSpec, log: Callable[[str], None] | None = None) -> RunResult:
    """Train (or resume), test and time one run; write and return its result.

    A run with ``result.json`` is returned as is; a finished fit is only tested.

    Raises:
        ComparisonError: the run directory belongs to another configuration.
        Exception: whatever training raised (the caller records it).
    """
    log = log or _say
    run_dir = Path(spec.run_dir)
    finished = read_result(run_dir)
    check_run_spec(spec)
    if finished is not None:
        return backfill_predictions(finished, log)
    (run_dir / FAILURE_FILE).unlink(missing_ok=True)
    summary = read_summary(run_dir)
    if summary is None:
        resuming = (run_dir / "checkpoints" / "last.ckpt").is_file()
        log(f"{spec.name}: {'resuming from last.ckpt' if resuming else 'training'}")
        started = time.perf_counter()
        summary = _train(spec.configs, spec.overrides, run_dir, "fit", "last")
        if summary.get("status") != "finished":
            raise RuntimeError(
                f"fit did not finish (status {summary.get('status')!r}); rerun the comparison "
                "to resume it from its last checkpoint"
            )
        log(f"{spec.name}: trained in {time.perf_counter() - started:.1f} s")
    tag = choose_test_checkpoint(spec.test_checkpoint, summary)
    metrics = _train(
        run_dir / "config.yaml",
        {"trainer.devices": 1, "trainer.num_nodes": 1, "verbose": False},
        run_dir,
        "test",
        tag,
    )
    # One load of the tested checkpoint and the test batches serves the timing and the
    # per-video predictions.
    tested = load_tested_model(run_dir, metrics.get("checkpoint"), metrics.get("device"))
    speed = measure_inference_speed(tested) if spec.measure_inference and tested else None
    predictions = predict_test_videos(tested, run_dir) if tested else None
    check_predictions(predictions, metrics.get("confusion_matrix"), run_dir, log)
    result = build_result(spec, summary, metrics, tag, speed)
    result.test_predictions = predictions or {}
    write_result(run_dir, result)
    top5 = "n/a" if result.test_top5 is None else f"{result.test_top5:.4f}"
    log(
        f"{spec.name}: test top-1 {result.test_top1:.4f}, top-5 {top5}, mean class accuracy "
        f"{result.test_mean_class_accuracy:.4f} ({tag} checkpoint)"
    )
    return result


def _train(*args: Any) -> dict[str, Any]:
    """``run_training`` with this process's own command line hidden from LightningCLI (it
    warns when ``sys.argv`` holds arguments besides the ones it is given), without the
    third-party lines of :mod:`~video_eleatt.quiet`."""
    saved = sys.argv
    sys.argv = saved[:1]
    try:
        return run_training(*args)  # the Lightning noise is filtered in run_cli
    finally:
        sys.argv = saved


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
            "early_recognition": metrics.get("early_recognition"),
        },
    )


@dataclass
class LoadedCheckpoint:
    """A run's tested checkpoint and its test set, ready to score.

    Attributes:
        batches: The test batches as the test loop makes them (same batch size, clips and
            padding), in memory: ``features`` and ``lengths`` on ``device``, ``labels`` and
            ``rel_paths`` as the loader gives them.
        module: The checkpoint's model, in eval mode, on ``device``.
        device: Where it runs.
        batch_size: The eval batch size.
    """

    batches: list[dict[str, Any]]
    module: Any
    device: torch.device
    batch_size: int


def load_tested_model(
    run_dir: str | Path, checkpoint: str | None, device_name: str | None
) -> LoadedCheckpoint | None:
    """The tested checkpoint and the test batches; None (with a message) when the run's data
    or checkpoint cannot be loaded here."""
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
    except Exception as err:  # the result is still valid without what needs the model
        _say(f"{run_dir}: model not loaded ({type(err).__name__}: {err})")
        return None
    batches = [
        {
            "features": batch["features"].to(device),
            "lengths": batch["lengths"].to(device),
            "labels": batch["labels"],
            "rel_paths": batch["rel_paths"],
        }
        for batch in datamodule.test_dataloader()
    ]
    return LoadedCheckpoint(batches, module, device, datamodule.eval_batch_size)


def measure_inference_speed(
    tested: LoadedCheckpoint, min_seconds: float = 0.5, max_passes: int = 20
) -> dict[str, Any]:
    """Sequences per second of the trained model over the test set, in eval mode.

    The test batches (as the test loop makes them: same batch size, clips and padding) are
    loaded into memory first, so only the model is timed; one warm-up batch, then whole passes
    over the test set until ``min_seconds`` have elapsed (CUDA synchronised).

    Returns:
        ``{"sequences_per_s", "num_videos", "passes", "seconds", "batch_size", "device"}``.
    """
    batches, module, device = tested.batches, tested.module, tested.device
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
        "batch_size": tested.batch_size,
        "device": str(device),
    }


def predict_test_videos(tested: LoadedCheckpoint, run_dir: str | Path) -> dict[str, list]:
    """Each test video's top-1 prediction by the tested checkpoint, as the test loop scores
    it (same batches, clips and padding); also written to ``run_dir/test_predictions.csv``.

    Returns:
        ``{"rel_paths", "labels", "predicted"}`` in test order.
    """
    batches, module = tested.batches, tested.module
    rel_paths: list[str] = []
    labels: list[int] = []
    predicted: list[int] = []
    with torch.inference_mode():
        for batch in batches:
            log_probs = module.video_log_probs(batch)  # (B, C)
            rel_paths += list(batch["rel_paths"])
            labels += [int(v) for v in batch["labels"]]
            predicted += [int(v) for v in log_probs.argmax(dim=1).cpu()]
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(["rel_path", "label", "predicted", "correct"])
    writer.writerows(
        (path, label, guess, int(label == guess))
        for path, label, guess in zip(rel_paths, labels, predicted)
    )
    atomic_write_text(Path(run_dir) / PREDICTIONS_FILE, table.getvalue())
    return {"rel_paths": rel_paths, "labels": labels, "predicted": predicted}


def check_predictions(
    predictions: dict[str, list] | None,
    confusion_matrix: list[list[int]] | None,
    run_dir: str | Path,
    log: Callable[[str], None],
) -> None:
    """Says so when the stored predictions do not add up to the test's confusion matrix
    (the per-video statistics would then describe other predictions than the metrics)."""
    if not predictions or not confusion_matrix:
        return
    counts = np.zeros_like(np.asarray(confusion_matrix, dtype=np.int64))
    for label, guess in zip(predictions["labels"], predictions["predicted"]):
        counts[label, guess] += 1
    if not np.array_equal(counts, np.asarray(confusion_matrix)):
        changed = int(np.abs(counts - np.asarray(confusion_matrix)).sum()) // 2
        log(
            f"warning: {run_dir}: the stored per-video predictions differ from the test's "
            f"confusion matrix for about {changed} video(s) (recomputed outside the test loop; "
            "ties or float rounding): the per-video statistics use the stored predictions"
        )


def backfill_predictions(result: RunResult, log: Callable[[str], None]) -> RunResult:
    """A finished run recorded before per-video predictions were stored gets them from its
    tested checkpoint (when it is still there); the result is rewritten."""
    if result.test_predictions:
        return result
    checkpoint = result.extra.get("tested_checkpoint")
    if not checkpoint or not Path(checkpoint).is_file():
        return result
    tested = load_tested_model(result.run_dir, checkpoint, result.device)
    if tested is not None:
        predictions = predict_test_videos(tested, result.run_dir)
        check_predictions(predictions, result.confusion_matrix, result.run_dir, log)
        result.test_predictions = predictions
        write_result(result.run_dir, result)
        log(f"{result.run_dir}: per-video test predictions added from {checkpoint}")
    return result


def _test_datamodule(config_path: Path) -> Any:
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
            if not config.report_only:
                backfill_predictions(read_result(spec.run_dir), log)
    if skipped:
        log(f"{len(skipped)} of {len(runs)} runs already finished: not repeated")
    failed: dict[tuple[str, str, int], str] = {}
    trained: list[tuple[str, str, int]] = []
    fatal: BaseException | None = None
    if not config.report_only and todo:
        if config.parallel == 1:
            for number, spec in enumerate(todo, 1):
                log(f"[{number}/{len(todo)}] {spec.name}")
                try:
                    execute_run(spec, log)
                    trained.append(spec.key)
                except Exception as err:
                    failed[spec.key] = _record_failure(spec, err)
                    log(f"{spec.name} FAILED: {failed[spec.key]}")
                    if _is_config_error(err):
                        fatal = err
                        break
        else:
            trained, failed = _run_parallel(todo, config, log)
    report = write_comparison_report(config, runs, variants, failed)
    if fatal is not None:
        raise ComparisonError(
            f"{next(s for s in todo if s.key in failed).name} failed because of its "
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
            log(f"[{number}/{len(todo)}] {spec.name}{where} (log: {spec.run_dir}/{LOG_FILE})")
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
                    log(f"{spec.name}: finished")
                else:
                    failure = run_dir / FAILURE_FILE
                    message = (
                        json.loads(failure.read_text())["error"].splitlines()[0]
                        if failure.is_file()
                        else f"worker exited with code {code} (see {run_dir / LOG_FILE})"
                    )
                    failed[spec.key] = message
                    log(f"{spec.name} FAILED: {message}")
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
        f"compare worker: {spec.name}, CUDA_VISIBLE_DEVICES="
        f"{os.environ.get('CUDA_VISIBLE_DEVICES', '(unset)')}, {threads or 'default'} threads",
        flush=True,
    )
    if threads:
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
        file = base_config_file(path)
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
        target_difference_pts=config.target_difference_pts,
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
    rows = [row for row in report.summary_rows if row.split == ALL_SPLITS] or report.summary_rows
    if rows:
        width = max(len(row.label) for row in rows)
        lines.append(f"  {'variant':<{width}}  split    test top-1 (%)         runs")
        for row in rows:
            top1 = row.accuracy_pct["top1"].format()
            lines.append(f"  {row.label:<{width}}  {row.split:<7}  {top1:<21}  {row.num_runs}")
    lines += [f"  {sentence}" for sentence in report.verdicts.values()]
    lines += [f"  problem: {problem}" for problem in report.problems]
    lines.append(f"report: {report.output_dir / 'report.md'}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(worker_main(sys.argv[1:]))
