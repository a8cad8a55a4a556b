"""Writes the README's demo table from the demos' own outputs.

Each variation is one finished demo folder (``runs/demo...``: ``demo_summary.json``,
``summary.csv``, ``comparisons.csv``), run under one set of rounding conditions (extraction
precision, CPU kernels, MKL code path). The table gives, per variation, the machine as the demo
recorded it (CPU, AVX2, AVX512, native bf16, torch's kernel level, the environment variables
that change kernels), each arm's mean top-1 with the 95 % t-interval of that mean over seeds,
the paired difference with its t-interval and the verdict (on this test set), and the
two-level interval (on new data from the same distribution). A last line gives the ranges over
variations and whether every variation's means lie inside every other's intervals: rounding
moves the digits, so the README quotes ranges and intervals, not one run's decimals.

Usage::

    python scripts/demo_table.py "float32 extraction=runs/demo" \\
        "bf16 extraction=runs/demo_bfloat16" --readme README.md   # rewrites the marked block
    python scripts/demo_table.py "default=runs/demo"               # prints the block
    python scripts/demo_table.py --stored tests/fixtures/demo_table    # from stored copies

``--store DIR`` also copies the three files of each variation into ``DIR`` (with
``variations.json``), which ``tests/test_demo_table.py`` regenerates the README block from,
byte for byte.

Needs only the standard library and scipy (no torch): it reads CSV and JSON files.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from scipy import stats

DEFAULT_BLOCK = "demo-table"


def markers(block_name: str = DEFAULT_BLOCK) -> tuple[str, str]:
    """The lines that open and close a README block."""
    return (
        f"<!-- {block_name}:begin (scripts/demo_table.py writes this block; do not edit) -->",
        f"<!-- {block_name}:end -->",
    )


BEGIN, END = markers()
CONFIDENCE = 0.95
INPUT_FILES = ("demo_summary.json", "summary.csv", "comparisons.csv")
MANIFEST = "variations.json"


@dataclass(frozen=True)
class Arm:
    """One variant's mean top-1 over seeds with the t-interval of that mean (percent)."""

    label: str
    mean: float
    low: float
    high: float
    n: int


@dataclass(frozen=True)
class Variation:
    """One demo folder, read back."""

    name: str
    machine: str
    precision: str
    kernels: str
    arms: tuple[Arm, ...]
    difference: float
    difference_low: float
    difference_high: float
    significant: bool
    new_data_low: float | None
    new_data_high: float | None


def read_variation(name: str, folder: Path) -> Variation:
    """A demo folder's summary, arms and pooled top-1 comparison."""
    summary = json.loads((folder / "demo_summary.json").read_text())
    machine = summary.get("machine") or {}
    rows = _read_csv(folder / "summary.csv")
    arms = tuple(_arm(row) for row in rows if row["split"] in ("all", "default"))
    (pooled,) = [
        row
        for row in _read_csv(folder / "comparisons.csv")
        if row["metric"] == "top1" and row["split"] == "pooled"
    ]
    environment = machine.get("environment") or {}
    kernels = ", ".join(
        [str(machine.get("cpu_capability", "?"))] + [f"{k}={v}" for k, v in environment.items()]
    )
    return Variation(
        name=name,
        machine=describe(machine),
        precision=str(summary.get("extraction_precision") or "?"),
        kernels=kernels,
        arms=arms,
        difference=float(pooled["mean_difference_pts"]),
        difference_low=float(pooled["ci_low_pts"]),
        difference_high=float(pooled["ci_high_pts"]),
        significant=pooled["significant"] == "True",
        new_data_low=_optional(pooled.get("two_level_low_pts")),
        new_data_high=_optional(pooled.get("two_level_high_pts")),
    )


def describe(machine: dict) -> str:
    """``AMD EPYC, 2 cores, AVX2, no AVX512, no native BF16``."""

    def flag(key: str, label: str) -> str:
        return label if machine.get(key) else f"no {label}"

    return (
        f"{machine.get('cpu', '?')}, {machine.get('cpu_count', '?')} cores, "
        f"{flag('avx2', 'AVX2')}, {flag('avx512', 'AVX512')}, {flag('native_bf16', 'native BF16')}"
    )


def render_block(variations: list[Variation], block_name: str = DEFAULT_BLOCK) -> str:
    """The README block, markers included, ending with a newline."""
    begin, end = markers(block_name)
    labels = [arm.label for arm in variations[0].arms]
    difference_label = f"{labels[-1]} − {labels[0]}" if len(labels) > 1 else "difference"
    n = variations[0].arms[0].n
    lines = [
        begin,
        "",
        f"Test top-1 (%) over {n} seeds: each arm's mean with the 95 % t-interval of that mean; "
        "the difference with its paired t-interval and the verdict make an inference on this "
        "test set; the two-level interval (seeds and test videos) one on new data from the "
        "same distribution.",
        "",
        "| variation | machine | extraction | kernels | "
        + " | ".join(labels)
        + f" | {difference_label} (pts) | verdict | on new data (pts) |",
        "|---" * (7 + len(labels)) + "|",
    ]
    for variation in variations:
        cells = [variation.name, variation.machine, variation.precision, variation.kernels]
        cells += [f"{arm.mean:.1f} [{arm.low:.1f}, {arm.high:.1f}]" for arm in variation.arms]
        cells.append(
            f"{variation.difference:+.1f} [{variation.difference_low:+.1f}, "
            f"{variation.difference_high:+.1f}]"
        )
        cells.append(verdict_word(variation))
        cells.append(
            "n/a"
            if variation.new_data_low is None or variation.new_data_high is None
            else f"[{variation.new_data_low:+.1f}, {variation.new_data_high:+.1f}]"
        )
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", summary_line(variations), "", end]
    return "\n".join(lines) + "\n"


def verdict_word(variation: Variation) -> str:
    """``better`` / ``worse`` (the interval excludes 0) or ``no significant difference``."""
    if not variation.significant:
        return "no significant difference"
    return "better" if variation.difference > 0 else "worse"


def summary_line(variations: list[Variation]) -> str:
    """Ranges over the variations, and whether each mean lies in every other's interval."""
    parts = []
    for position, arm in enumerate(variations[0].arms):
        means = [v.arms[position].mean for v in variations]
        parts.append(f"{arm.label} {min(means):.1f}–{max(means):.1f} %")
    differences = [v.difference for v in variations]
    parts.append(f"difference {min(differences):+.1f} to {max(differences):+.1f} points")
    verdicts = sorted({verdict_word(v) for v in variations})
    inside = all(
        other.arms[p].low <= variation.arms[p].mean <= other.arms[p].high
        for variation in variations
        for other in variations
        for p in range(len(variation.arms))
    ) and all(
        other.difference_low <= variation.difference <= other.difference_high
        for variation in variations
        for other in variations
    )
    verdict = (
        f"the same verdict in all {len(variations)} ({verdicts[0]})"
        if len(verdicts) == 1
        else f"verdicts differ ({', '.join(verdicts)})"
    )
    return (
        f"Over the {len(variations)} variations: {'; '.join(parts)}; {verdict}; every "
        "variation's means and difference lie inside every other variation's intervals: "
        f"{'yes' if inside else 'no'}."
    )


def replace_block(text: str, block: str, block_name: str = DEFAULT_BLOCK) -> str:
    """``text`` with the marked block ``block_name`` replaced by ``block``.

    Raises:
        ValueError: the markers are missing or out of order.
    """
    begin, end = markers(block_name)
    start, stop = text.find(begin), text.find(end)
    if start < 0 or stop < start:
        raise ValueError(
            f"the README has no {block_name} block: add the lines\n{begin}\n{end}\nwhere it goes"
        )
    return text[:start] + block.rstrip("\n") + text[stop + len(end) :]


def _arm(row: dict[str, str]) -> Arm:
    mean, std, n = float(row["top1_mean_pct"]), float(row["top1_std_pct"]), int(row["top1_n"])
    half = stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * std / n**0.5
    return Arm(label=row["label"], mean=mean, low=mean - half, high=mean + half, n=n)


def _optional(value: str | None) -> float | None:
    return float(value) if value not in (None, "") else None


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def store(items: list[tuple[str, Path]], directory: Path) -> list[tuple[str, Path]]:
    """Copies each variation's input files into ``directory/<slug>/`` and lists them in
    ``directory/variations.json``; returns the stored ``(name, folder)`` pairs."""
    directory.mkdir(parents=True, exist_ok=True)
    stored = []
    for number, (name, folder) in enumerate(items, 1):
        slug = f"{number:02d}-" + re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()
        (directory / slug).mkdir(exist_ok=True)
        for file in INPUT_FILES:
            shutil.copyfile(folder / file, directory / slug / file)
        stored.append((name, directory / slug))
    manifest = [{"name": name, "folder": folder.name} for name, folder in stored]
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
    return stored


def read_stored(directory: Path) -> list[tuple[str, Path]]:
    """The ``(name, folder)`` pairs :func:`store` wrote into ``directory``."""
    manifest = json.loads((directory / MANIFEST).read_text())
    return [(item["name"], directory / item["folder"]) for item in manifest]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "variations", nargs="*", help='"name=demo folder", one per variation (split at the last =)'
    )
    parser.add_argument("--readme", type=Path, help="rewrite this file's marked block")
    parser.add_argument("--store", type=Path, help="copy the inputs here (test fixture)")
    parser.add_argument("--stored", type=Path, help="read the variations --store wrote here")
    parser.add_argument("--block", default=DEFAULT_BLOCK, help="name of the README block")
    args = parser.parse_args(argv)
    items: list[tuple[str, Path]] = read_stored(args.stored) if args.stored else []
    for item in args.variations:
        name, separator, folder = item.rpartition("=")
        if not separator:
            parser.error(f"{item!r}: expected NAME=FOLDER, e.g. 'float32=runs/demo'")
        items.append((name, Path(folder)))
    if not items:
        parser.error("no variation given: NAME=FOLDER arguments or --stored DIR")
    if args.store:
        items = store(items, args.store)
    block = render_block([read_variation(name, folder) for name, folder in items], args.block)
    if args.readme is None:
        sys.stdout.write(block)
        return 0
    args.readme.write_text(replace_block(args.readme.read_text(), block, args.block))
    print(f"wrote the demo table of {len(items)} variation(s) into {args.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
