"""``video-eleatt extract | verify | pack | import-features``.

Exit codes: 0 done; 1 ``--strict`` and some videos failed, or ``verify`` found problems;
2 bad configuration or input; 3 the cache cannot be written (disk full, read-only).
"""

from __future__ import annotations

import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

from jsonargparse import ActionConfigFile, ActionYesNo, ArgumentParser

EXIT_FAILED_VIDEOS = 1
EXIT_BAD_INPUT = 2
EXIT_WRITE_ERROR = 3


def _extract_parser() -> ArgumentParser:
    from video_eleatt.features.extract import ExtractConfig

    parser = ArgumentParser(
        prog="video-eleatt extract",
        description=(
            "Extract per-frame CNN features of a dataset, a list file or a folder of videos into "
            "a resumable cache. Rerun the same command to resume after an interruption."
        ),
        default_env=False,
    )
    parser.add_argument("--config", action=ActionConfigFile, help="extract config YAML")
    parser.add_class_arguments(ExtractConfig)
    return parser


BARE_FLAGS = ("--strict", "--retry_failed", "--progress", "--parity_check", "--tune_malloc")


def _expand_bare_flags(argv: list[str]) -> list[str]:
    """``--strict`` alone means ``--strict true`` (jsonargparse booleans take a value)."""
    expanded = []
    for position, arg in enumerate(argv):
        expanded.append(arg)
        following = argv[position + 1] if position + 1 < len(argv) else None
        if arg in BARE_FLAGS and (following is None or following.startswith("-")):
            expanded.append("true")
    return expanded


def parse_extract_config(argv: list[str]) -> Any:
    """An :class:`~video_eleatt.features.extract.ExtractConfig` from command-line arguments."""
    from video_eleatt.features.extract import ExtractConfig

    parser = _extract_parser()
    namespace = parser.instantiate(parser.parse_args(_expand_bare_flags(argv)))
    return ExtractConfig(**{f.name: getattr(namespace, f.name) for f in fields(ExtractConfig)})


def _run_rank(config: Any) -> int:
    """One rank of an extraction; returns its exit code (used directly and by spawned ranks)."""
    from video_eleatt.features import distributed
    from video_eleatt.features.cache import CacheError, CacheWriteError
    from video_eleatt.features.extract import failed_in_cache, resolve_source, run_extraction

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
    from video_eleatt.features import distributed

    config = parse_extract_config(argv)
    if config.parity_check:
        from video_eleatt.features.extract import run_parity_check

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


def verify_main(argv: list[str]) -> int:
    """``video-eleatt verify <cache_dir | extract config>``: check every entry."""
    from video_eleatt.features.cache import CacheError, feature_path, verify_cache

    parser = ArgumentParser(
        prog="video-eleatt verify",
        description="Check every entry of a feature cache against its manifest: file present, "
        "loadable, shape (num_steps, feature_dim), finite values.",
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
            from video_eleatt.features.extract import resolve_cache_dir

            cache_dir = resolve_cache_dir(cache_dir, existing=True)
        report = verify_cache(cache_dir)
    except CacheError as err:
        print(f"video-eleatt verify: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(
        f"{cache_dir}: {len(report.ok)} ok, {len(report.failed)} failed at extraction, "
        f"{len(report.problems)} broken, {len(report.orphans)} orphan files, "
        f"{len(report.temp_files)} temporary files"
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
    return 0


def pack_main(argv: list[str]) -> int:
    """``video-eleatt pack <cache_dir> [--groups all|subset]``: build the packed form."""
    from video_eleatt.features.cache import CacheError, FeatureCache
    from video_eleatt.features.packed import pack_cache

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
            from video_eleatt.datasets import load_index

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
    from video_eleatt.datasets import DatasetSpec
    from video_eleatt.features.importer import import_npy_features, read_label_list

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
            from video_eleatt.datasets import load_index

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
