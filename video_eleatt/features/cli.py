"""``video-eleatt extract | check | verify | pack | import-features``.

``check`` takes ``extract``'s options (the same config file) and decodes what ``extract``
would decode, so a video it passes is one ``extract`` decodes.

Exit codes: 0 done; 1 ``--strict`` and some videos failed, or ``verify`` found problems;
2 bad configuration or input; 3 the cache (or ``check``'s report) cannot be written (disk
full, read-only).

Project imports are at the top, not deferred: every command here loads torch through the
cache or the backbone anyway, and the top-level ``video-eleatt`` imports this module only when
one of them runs (after setting ``OMP_WAIT_POLICY``).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from jsonargparse import ActionConfigFile, ActionYesNo, ArgumentParser

from video_eleatt.datasets import DatasetSpec, load_index
from video_eleatt.features import distributed
from video_eleatt.features.cache import FeatureCache
from video_eleatt.features.config import (
    BARE_FLAGS,
    config_from_namespace,
    expand_bare_flags,
    extract_parser,
    parse_extract_config,
    resolve_source,
)
from video_eleatt.features.extract import failed_in_cache, run_extraction
from video_eleatt.features.importer import import_npy_features, read_label_list
from video_eleatt.features.layout import CacheError, CacheWriteError, feature_path
from video_eleatt.features.locate import find_cache
from video_eleatt.features.packed import pack_cache
from video_eleatt.features.precision import run_parity_check
from video_eleatt.features.verify import verify_cache
from video_eleatt.fileio import write_failure_reason
from video_eleatt.video.check import check_videos, format_summary, write_report

EXIT_FAILED_VIDEOS = 1
EXIT_BAD_INPUT = 2
EXIT_WRITE_ERROR = 3


def _run_rank(config: Any) -> int:
    """One rank of an extraction; returns its exit code (used directly and by spawned ranks)."""
    rank, world_size = distributed.env_rank()
    distributed.init(world_size)
    try:
        summary = run_extraction(config, rank, world_size)
    except CacheWriteError as err:
        print(f"video-eleatt extract: {err}", file=sys.stderr)
        return EXIT_WRITE_ERROR
    except (CacheError, ValueError) as err:
        print(f"video-eleatt extract: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    finally:
        distributed.finish(world_size)
    if rank != 0:
        return 0
    print(summary.report(), file=sys.stderr, flush=True)
    if config.strict:
        tasks = resolve_source(config).tasks
        tasks = tasks[: config.limit] if config.limit else tasks
        failed = failed_in_cache(summary.cache_dir, [task.rel_path for task in tasks])
        if failed:
            print(
                f"--strict: {len(failed)} video(s) failed; exit code {EXIT_FAILED_VIDEOS}",
                file=sys.stderr,
            )
            return EXIT_FAILED_VIDEOS
    return 0


def extract_main(argv: list[str]) -> int:
    """``video-eleatt extract --config configs/extract/<name>.yaml [--key value ...]``."""
    config = parse_extract_config(argv)
    if config.parity_check:
        try:
            report = run_parity_check(config)
        except ValueError as err:
            print(f"video-eleatt extract --parity_check: {err}", file=sys.stderr)
            return EXIT_BAD_INPUT
        print(f"parity check: {report.describe()}")
        if not report.passed:
            print(
                f"{report.precision} would NOT be used by `precision: auto` for this backbone "
                "(float32 instead)"
            )
        return 0
    _, world_size = distributed.env_rank()
    if config.num_processes > 1 and world_size == 1:
        return distributed.launch_local(_run_rank, (config,), config.num_processes)
    return _run_rank(config)


CHECK_DESCRIPTION = (
    "Preflight for extract: decode, in extract's worker pool and with its options (--config "
    "extract.yaml, --videos or --dataset, --sampling.*, --num_workers, --timeout_s, "
    "--chunk_size, --on_damage, --max_lost_fraction, --limit), the very frames extract would "
    "decode of every video, and list the videos extract would fail, with the reason. "
    "--thorough decodes every frame and also reports frame counts that disagree, timestamp "
    "anomalies, damage and packed B-frames. "
    "Backbone, cache and precision options are accepted and ignored."
)
CHECK_BARE_FLAGS = (*BARE_FLAGS, "--thorough")
# Options of `check` from before it took extract's: the renamed ones still work (with a note).
RENAMED_CHECK_FLAGS = {
    "--folder": "--videos",
    "--list": "--videos",
    "--workers": "--num_workers",
    "--timeout": "--timeout_s",
    "--split": "--dataset.split",
    "--annotations": "--dataset.annotations",
}
_SAMPLED = "check decodes the frames extract samples (--sampling.*), or all with --thorough"
REMOVED_CHECK_FLAGS = {
    "--num_random": _SAMPLED,
    "--seed": _SAMPLED,
    "--extensions": "a --videos folder is searched for the video extensions extract reads",
}


def _check_parser() -> ArgumentParser:
    parser = extract_parser("video-eleatt check", CHECK_DESCRIPTION)
    parser.add_argument(
        "--output",
        type=str | None,
        default=None,
        help="TSV report, one row per video under a header line: rel_path<TAB>status<TAB>detail "
        "(status ok, warning, damaged or failed)",
    )
    parser.add_argument(
        "--thorough",
        type=bool,
        default=False,
        help="decode every frame of each video (not just the sampled ones) and report frame "
        "counts that disagree (decoded, packets, header), derived timestamps and why, jumps in "
        "the timestamps, damage (frames lost, and when) and rotations",
    )
    return parser


def _translate_old_check_flags(argv: list[str]) -> list[str]:
    """``argv`` with the earlier ``check`` options renamed to extract's.

    Raises:
        ValueError: a removed option, an old-style ``--dataset NAME``, or two inputs; the
            message names the option to use instead.
    """
    translated = []
    for arg in argv:
        flag, equals, value = arg.partition("=")
        if flag in REMOVED_CHECK_FLAGS:
            raise ValueError(f"{flag} no longer exists: {REMOVED_CHECK_FLAGS[flag]}")
        if flag in RENAMED_CHECK_FLAGS:
            new_flag = RENAMED_CHECK_FLAGS[flag]
            print(f"video-eleatt check: note: {flag} is now {new_flag}", file=sys.stderr)
            arg = new_flag + equals + value
        translated.append(arg)
    for position, arg in enumerate(translated):
        flag, equals, value = arg.partition("=")
        if flag == "--dataset" and not equals and position + 1 < len(translated):
            value = translated[position + 1]
        if flag == "--dataset" and re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", value):
            raise ValueError(
                f"--dataset {value}: check takes extract's options now; name the dataset with "
                f"--dataset.name {value} --dataset.root DIR (or --config extract.yaml)"
            )
    inputs = [arg for arg in translated if arg.partition("=")[0] == "--videos"]
    if len(inputs) > 1:
        raise ValueError(
            f"{len(inputs)} inputs given (--videos, --folder, --list); give one --videos: "
            "a list file or a folder"
        )
    return translated


def check_main(argv: list[str]) -> int:
    """``video-eleatt check --config extract.yaml [--thorough] [--output F.tsv] [--strict]``.

    Returns:
        0; 1 with ``--strict`` when a video failed; 2 on bad input (no videos, a missing list
        or folder, an unwritable ``--output``); 3 when the report cannot be written at the end.
    """
    parser = _check_parser()
    try:
        argv = _translate_old_check_flags(argv)
    except ValueError as err:
        print(f"video-eleatt check: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    namespace = parser.parse_args(expand_bare_flags(argv, CHECK_BARE_FLAGS))
    config = config_from_namespace(parser, namespace)
    output = namespace.output
    try:
        source = resolve_source(config)  # DatasetError is a ValueError
    except (OSError, ValueError) as err:
        print(f"video-eleatt check: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    tasks = source.tasks[: config.limit] if config.limit else source.tasks
    if not tasks:
        print(f"video-eleatt check: error: no videos in {source.description}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if output:
        try:  # now, not after an hour of decoding
            write_report(output)
        except OSError as err:
            print(
                f"video-eleatt check: error: cannot write the report {output}: "
                f"{write_failure_reason(err)}; choose another --output",
                file=sys.stderr,
            )
            return EXIT_BAD_INPUT
    result = check_videos(
        [(task.rel_path, task.path) for task in tasks],
        config.sampling,
        thorough=namespace.thorough,
        num_workers=config.num_workers,
        timeout_s=config.timeout_s,
        chunk_size=config.chunk_size,
        on_damage=config.on_damage,
        max_lost_fraction=config.max_lost_fraction,
        progress=config.progress,
    )
    code = 0
    if output:
        try:
            write_report(output, result)
        except OSError as err:
            print(
                f"video-eleatt check: error: cannot write the report {output}: "
                f"{write_failure_reason(err)}",
                file=sys.stderr,
            )
            output, code = None, EXIT_WRITE_ERROR
    print(format_summary(result, output))
    if code == 0 and config.strict and result.failures:
        code = EXIT_FAILED_VIDEOS
    return code


def verify_main(argv: list[str]) -> int:
    """``video-eleatt verify <cache_dir | extract config>``: check every entry."""
    parser = ArgumentParser(
        prog="video-eleatt verify",
        description="Check every entry of a feature cache against its manifest: file present, "
        "loadable, shape (num_steps, feature_dim), finite values, and the sha256 its manifest "
        "row recorded (a flipped byte, or a file replaced after its row was written).",
    )
    parser.add_argument("cache", type=str, help="cache directory or extract config YAML")
    parser.add_argument(
        "--fix",
        action=ActionYesNo,
        default=False,
        help="delete broken entries' files so that rerunning the extraction redoes them",
    )
    args = parser.parse_args(argv)
    cache_dir = Path(args.cache)
    try:
        if cache_dir.is_file():
            cache_dir = find_cache(cache_dir)  # reads the YAML; builds no backbone
        report = verify_cache(cache_dir)
    except CacheError as err:
        print(f"video-eleatt verify: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(
        f"{cache_dir}: {len(report.ok)} ok, {len(report.failed)} failed at extraction, "
        f"{len(report.problems)} broken, {len(report.orphans)} orphan files, "
        f"{len(report.temp_files)} temporary files"
    )
    if report.stale:
        print(
            f"  STALE: every entry was made {report.stale}. Re-extract: `video-eleatt extract "
            "--config <the extract config that made it>` (the new cache gets its own folder)"
        )
    for rel_path, problem in report.problems.items():
        print(f"  BROKEN {rel_path}: {problem}")
    for rel_path, error in list(report.failed.items())[:20]:
        print(f"  failed {rel_path}: {error}")
    if report.problems:
        if args.fix:
            for rel_path in report.problems:
                feature_path(cache_dir, rel_path).unlink(missing_ok=True)
            print(f"removed {len(report.problems)} broken files; rerun the extraction to redo them")
        else:
            print("rerun with --fix to remove them, then rerun the extraction to redo them")
        return EXIT_FAILED_VIDEOS
    return EXIT_FAILED_VIDEOS if report.stale else 0


def pack_main(argv: list[str]) -> int:
    """``video-eleatt pack <cache_dir> [--groups all|subset]``: build the packed form."""
    parser = ArgumentParser(
        prog="video-eleatt pack",
        description="Build <cache>/packed: one contiguous memory-mappable array per group.",
    )
    parser.add_argument("cache", type=str, help="cache directory")
    parser.add_argument(
        "--groups",
        type=str,
        default="all",
        help="'all' (one array) or 'subset' (one per train/val/test of the cache's dataset)",
    )
    args = parser.parse_args(argv)
    try:
        groups = None
        if args.groups == "subset":
            cache = FeatureCache(args.cache)
            if cache.dataset is None:
                raise CacheError(f"{args.cache} has no dataset spec; use --groups all")
            groups = {}
            for record in load_index(cache.dataset).records:
                groups.setdefault(record.subset or "unused", []).append(record.rel_path)
        elif args.groups != "all":
            raise CacheError(f"--groups {args.groups!r}: expected 'all' or 'subset'")
        packed_dir = pack_cache(args.cache, groups)
    except CacheError as err:
        print(f"video-eleatt pack: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"packed form written to {packed_dir}")
    return 0


def import_main(argv: list[str]) -> int:
    """``video-eleatt import-features --features_dir D (--labels F | --dataset ...)``."""
    parser = ArgumentParser(
        prog="video-eleatt import-features",
        description="Turn a folder of per-video .npy arrays (T, D) (e.g. v-iashin/video_features "
        "output) plus labels into a feature cache.",
    )
    parser.add_argument("--config", action=ActionConfigFile)
    parser.add_argument("--features_dir", type=str, required=True, help="folder of .npy arrays")
    parser.add_argument(
        "--labels", type=str | None, default=None, help="mmaction2-style list or CSV"
    )
    parser.add_argument("--dataset", type=DatasetSpec | None, default=None, help="dataset spec")
    parser.add_argument("--output_dir", type=str | None, default=None, help="cache directory")
    parser.add_argument("--output_root", type=str, default="features")
    parser.add_argument("--name", type=str | None, default=None, help="cache name prefix")
    parser.add_argument("--fps", type=float | None, default=None, help="feature rate")
    parser.add_argument("--dtype", type=str, default="float16")
    parser.add_argument("--description", type=str | None, default=None)
    args = parser.instantiate(parser.parse_args(argv))
    if (args.labels is None) == (args.dataset is None):
        print("video-eleatt import-features: give --labels or --dataset", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        if args.dataset is not None:
            index = load_index(args.dataset)
            entries = [(record.rel_path, record.label) for record in index.records]
            class_names = list(index.class_names)
            dataset = args.dataset.to_dict()
            name = args.name or args.dataset.name
        else:
            entries, class_names = read_label_list(args.labels)
            dataset = None
            name = args.name or Path(args.features_dir).name
        summary = import_npy_features(
            args.features_dir,
            entries,
            class_names,
            output_dir=args.output_dir,
            output_root=args.output_root,
            name=name,
            fps=args.fps,
            dtype=args.dtype,
            dataset=dataset,
            description=args.description,
        )
    except (OSError, ValueError) as err:
        print(f"video-eleatt import-features: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"imported {summary.ok} videos into {summary.cache_dir}; {len(summary.failures)} failed")
    for rel_path, reason in list(summary.failures.items())[:20]:
        print(f"  failed {rel_path}: {reason}")
    return 0
