"""What a stream's prediction did over time: the timeline files, and how well it followed the
segments of a video whose true classes are known.

Timeline (written at the end of ``video-eleatt predict --stream``, also after a failure, with
the steps emitted until then):

- ``<prefix>.csv``: one row per step: ``step, time, frame_time, steps_seen, top1,
  top1_probability`` and one ``p_<class>`` column per class;
- ``<prefix>.png``: every class's probability over time, the top-1 class as a coloured band
  above, and (when known) the true segments below it.

Segment scores (:func:`segment_scores`), for a video made of segments of known classes
(concatenated clips): a segment is *recognised* when the top-1 at its last step is its class
(what a viewer would read at the change); *step accuracy* is the share of steps whose top-1 is
the class of the segment they fall in; the *lag* of a segment is the time from its start to
the first step from which the top-1 is its class until the segment ends (None: never settled).
"""

from __future__ import annotations

import csv
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from video_eleatt.figures import new_figure, save_figure


@dataclass
class Segment:
    """A stretch of a video with one true class: ``[start, end)`` seconds."""

    start: float
    end: float
    label: int


@dataclass
class SegmentScores:
    """How a stream's top-1 followed the segments (module docstring).

    Attributes:
        segment_accuracy: Share of segments recognised at their last step.
        step_accuracy: Share of steps whose top-1 is their segment's class.
        lags: Per segment after the first, seconds from the change until the top-1 settled
            on the new class (None: it never did within the segment).
        num_segments: Segments with at least one step.
    """

    segment_accuracy: float
    step_accuracy: float
    lags: list[float | None]
    num_segments: int

    @property
    def median_lag(self) -> float | None:
        settled = [lag for lag in self.lags if lag is not None]
        return statistics.median(settled) if settled else None

    @property
    def never_settled(self) -> int:
        return sum(lag is None for lag in self.lags)


def segment_scores(
    times: Sequence[float], predicted: Sequence[int], segments: Sequence[Segment]
) -> SegmentScores:
    """Scores of per-step top-1 classes ``predicted`` at ``times`` against ``segments``.

    >>> s = segment_scores([0.5, 1.5, 2.5, 3.5], [0, 0, 0, 1], [Segment(0, 2, 0), Segment(2, 4, 1)])
    >>> s.segment_accuracy, s.step_accuracy, s.lags
    (1.0, 0.75, [1.5])
    """
    times_array = np.asarray(times, dtype=np.float64)
    predicted_array = np.asarray(predicted)
    recognised, counted, correct_steps, total_steps, lags = 0, 0, 0, 0, []
    for number, segment in enumerate(segments):
        inside = np.flatnonzero((times_array >= segment.start) & (times_array < segment.end))
        if len(inside) == 0:
            continue
        counted += 1
        right = predicted_array[inside] == segment.label
        recognised += bool(right[-1])
        correct_steps += int(right.sum())
        total_steps += len(inside)
        if number == 0:
            continue
        wrong = np.flatnonzero(~right)
        if len(wrong) == 0:
            lags.append(float(times_array[inside[0]] - segment.start))
        elif wrong[-1] == len(inside) - 1:
            lags.append(None)
        else:
            lags.append(float(times_array[inside[wrong[-1] + 1]] - segment.start))
    if counted == 0:
        raise ValueError("no step falls inside any segment: nothing to score")
    return SegmentScores(recognised / counted, correct_steps / total_steps, lags, counted)


def write_timeline(
    rows: Sequence[dict],
    class_names: Sequence[str],
    prefix: str | Path,
    title: str,
    segments: Sequence[Segment] = (),
) -> tuple[Path, Path]:
    """Writes ``<prefix>.csv`` and ``<prefix>.png`` from per-step rows.

    Args:
        rows: One dict per step with ``step``, ``time``, ``frame_time``, ``steps_seen`` and
            ``probabilities`` ((C,) array).
        class_names: Names, index = class id.
        prefix: Path without extension.
        title: The figure's title.
        segments: True segments to draw, when known.

    Returns:
        The CSV and PNG paths.
    """
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    csv_path, png_path = (
        prefix.with_name(prefix.name + ".csv"),
        prefix.with_name(prefix.name + ".png"),
    )
    probabilities = np.zeros((len(rows), len(class_names)))
    for number, row in enumerate(rows):
        probabilities[number] = row["probabilities"]
    top1 = probabilities.argmax(axis=1) if len(rows) else np.zeros(0, dtype=int)
    with open(csv_path, "w", newline="") as handle:
        writer = csv.writer(handle)
        header = ["step", "time", "frame_time", "steps_seen", "top1", "top1_probability"]
        writer.writerow(header + [f"p_{name}" for name in class_names])
        for row, probs, best in zip(rows, probabilities, top1):
            writer.writerow(
                [
                    row["step"],
                    f"{row['time']:.6f}",
                    f"{row['frame_time']:.6f}",
                    row["steps_seen"],
                    class_names[best],
                    f"{probs[best]:.6f}",
                    *(f"{p:.6f}" for p in probs),
                ]
            )
    _plot(
        probabilities, top1, [row["time"] for row in rows], class_names, png_path, title, segments
    )
    return csv_path, png_path


def _plot(probabilities, top1, times, class_names, path, title, segments) -> None:
    figure = new_figure(9.0, 4.2)
    grid = figure.add_gridspec(2, 1, height_ratios=[1, 5], hspace=0.08)
    bands, axes = figure.add_subplot(grid[0]), figure.add_subplot(grid[1])
    colours = [f"C{i % 10}" for i in range(len(class_names))]
    times = np.asarray(times, dtype=np.float64)
    for class_id, name in enumerate(class_names):
        if len(times):
            axes.plot(
                times, probabilities[:, class_id], color=colours[class_id], label=name, lw=1.2
            )
    step = float(np.median(np.diff(times))) if len(times) > 1 else 1.0
    for time, best in zip(times, top1):
        bands.axvspan(time - step / 2, time + step / 2, ymin=0.5, ymax=1.0, color=colours[best])
    for segment in segments:
        bands.axvspan(segment.start, segment.end, ymin=0.0, ymax=0.45, color=colours[segment.label])
        axes.axvline(segment.start, color="black", lw=0.6, ls=":")
    bands.set_yticks([0.25, 0.75], ["true" if segments else "", "top-1"])
    bands.set_xticks([])
    bands.set_title(title, fontsize=9)
    end = times[-1] + step if len(times) else 1.0
    for ax in (bands, axes):
        ax.set_xlim(0, max(end, max((s.end for s in segments), default=0.0)))
    axes.set_ylim(0, 1)
    axes.set_xlabel("time (s)")
    axes.set_ylabel("probability")
    axes.grid(alpha=0.3)
    if len(class_names) <= 12:
        axes.legend(fontsize=7, ncol=min(4, len(class_names)), loc="upper right")
    save_figure(figure, path)
