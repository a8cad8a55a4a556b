"""The demo dataset generator: the motion in the pixels, order-blindness, layout, reruns.

Videos are generated once per module (every class, two clips each, 2 s at 12 fps) and decoded
with the project's decoder; the class's motion is measured from the decoded pixels.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from video_eleatt.datasets import DatasetSpec, load_index
from video_eleatt.demo import synth, synth_config
from video_eleatt.demo.cli import generate_main
from video_eleatt.demo.render import describe_clip, pattern_order, ramp_values, render_video
from video_eleatt.demo.synth import DemoDataError, generate_dataset
from video_eleatt.demo.synth_config import CLASSES, SynthConfig
from video_eleatt.video.decode import VideoReader

FAMILY_CLASSES = {
    family: [name for name, (fam, _) in CLASSES.items() if fam == family]
    for family in synth_config.FAMILIES
}
SMALL = SynthConfig(videos_per_class=2, classes=tuple(CLASSES), duration_s=2.0)
TINY = SynthConfig(videos_per_class=2, classes=("Grow", "HueBackward"), duration_s=1.0)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("demo") / "motion"
    result = generate_dataset(root, SMALL)
    assert result.created
    return root


def decode(path: Path) -> np.ndarray:
    """Every frame of a video, (T, H, W, 3) uint8, with the project's decoder."""
    reader = VideoReader(path)
    indices = np.arange(reader.info.num_frames)
    return np.concatenate([frames.numpy() for _, frames in reader.iter_frames(indices)])


def clip_path(root: Path, class_name: str, group: int = 1, clip: int = 1) -> Path:
    return root / synth.video_rel_path(class_name, group, clip)


def object_mask(frames: np.ndarray, colors: np.ndarray, tolerance: float = 40.0) -> np.ndarray:
    """Pixels within ``tolerance`` (0-255 units, per channel) of the object's colour per frame."""
    difference = np.abs(frames.astype(np.float32) - 255.0 * colors[:, None, None, :])
    return difference.max(axis=-1) < tolerance  # (T, H, W)


def check_pattern(pattern: str, series: np.ndarray, truth: np.ndarray, tolerance: float) -> None:
    """The clip's true per-frame values ``truth`` (T,) follow ``pattern`` exactly, and
    ``series`` (T,), measured from the decoded pixels, is ``truth`` frame by frame: equal up
    to an increasing affine map (pixels measure area for radius**2, hue in turns, angle in
    radians) with every frame within ``tolerance`` x the series' span. A swapped, repeated or
    dropped frame whose true value differs from the right one's by more than that fails."""
    steps = np.diff(truth)
    third = len(truth) // 3
    if pattern == "rise":
        assert np.all(steps >= 0) and truth[-1] > truth[0], truth
    elif pattern == "fall":
        assert np.all(steps <= 0) and truth[-1] < truth[0], truth
    elif pattern in ("rise_fall", "fall_rise"):
        sign = 1 if pattern == "rise_fall" else -1
        turn = int(np.argmax(sign * truth))
        assert third <= turn < len(truth) - third, truth
        assert np.all(sign * steps[:turn] >= 0) and np.all(sign * steps[turn:] <= 0), truth
    else:
        raise AssertionError(f"unknown pattern {pattern!r}")
    design = np.column_stack([truth, np.ones_like(truth)])  # (T, 2)
    (scale, offset), *_ = np.linalg.lstsq(design, series, rcond=None)
    assert scale > 0, (series, truth)
    residual = np.abs(series - (scale * truth + offset))  # (T,)
    span = np.ptp(series)
    assert span > 0 and residual.max() < tolerance * span, (residual / span).round(3)


# ---------------------------------------------------------------------------- the patterns


@pytest.mark.parametrize("num_frames", [9, 16, 17])
def test_patterns_reorder_the_same_values(num_frames):
    values = ramp_values(num_frames, hold_start=2, hold_end=1)
    assert values.shape == (num_frames,)
    assert values[:2].tolist() == [0.0, 0.0] and values[-1] == 1.0
    assert np.all(np.diff(values) >= 0)
    for pattern in synth_config.PATTERNS:
        order = pattern_order(pattern, num_frames)
        assert sorted(order.tolist()) == list(range(num_frames))
    assert pattern_order("fall", num_frames).tolist() == list(range(num_frames))[::-1]
    up_down = values[pattern_order("rise_fall", num_frames)]
    peak = int(np.argmax(up_down))
    assert np.all(np.diff(up_down[: peak + 1]) >= 0) and np.all(np.diff(up_down[peak:]) <= 0)
    down_up = values[pattern_order("fall_rise", num_frames)]
    low = int(np.argmin(down_up))
    assert np.all(np.diff(down_up[: low + 1]) <= 0) and np.all(np.diff(down_up[low:]) >= 0)


@pytest.mark.parametrize("family", synth_config.FAMILIES)
def test_classes_of_a_family_show_the_same_object_states(family):
    """Same nuisance draw: the multiset of per-frame object states is identical."""
    attribute = {"size": "radius", "hue": "hue", "angle": "angle"}[family]
    states = []
    for name in FAMILY_CLASSES[family]:
        truth = describe_clip(name, SMALL, group=2, clip=1)
        rows = np.column_stack([getattr(truth, attribute), truth.center])  # (T, 3)
        states.append(rows[np.lexsort(rows.T[::-1])])
    assert np.ptp(states[0][:, 0]) > 0
    for other in states[1:]:
        np.testing.assert_array_equal(other, states[0])


def test_default_classes_are_the_size_and_hue_families_in_order():
    assert synth_config.DEFAULT_CLASSES == (
        "Grow",
        "Shrink",
        "GrowShrink",
        "ShrinkGrow",
        "HueForward",
        "HueBackward",
        "HueForwardBack",
        "HueBackForward",
    )
    assert SynthConfig().classes == synth_config.DEFAULT_CLASSES


def test_unknown_class_and_pattern_name_the_choices():
    with pytest.raises(ValueError, match=r"unknown demo class 'Jump'.*Grow"):
        render_video("Jump", SMALL, 1, 1)
    with pytest.raises(ValueError, match=r"unknown demo class.*Grow"):
        SynthConfig(classes=("Grow", "Jump"))
    with pytest.raises(ValueError, match="videos_per_class=1"):
        SynthConfig(videos_per_class=1)
    with pytest.raises(ValueError, match="unknown pattern 'up'"):
        pattern_order("up", 8)


# ------------------------------------------------------------------- the motion in the pixels


@pytest.mark.parametrize("class_name", FAMILY_CLASSES["size"])
def test_size_classes_area_over_time(dataset, class_name):
    frames = decode(clip_path(dataset, class_name))
    truth = describe_clip(class_name, SMALL, group=1, clip=1)
    assert frames.shape == (truth.num_frames, SMALL.height, SMALL.width, 3)
    area = object_mask(frames, truth.colors()).sum(axis=(1, 2)).astype(float)  # (T,) pixels
    assert area.max() > 4 * area.min() > 0
    assert np.corrcoef(area, truth.radius**2)[0, 1] > 0.97
    check_pattern(truth.pattern, area, truth.radius**2, tolerance=0.03)


def circular_hue(frames: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean hue (turns, unwrapped over time) of the masked pixels per frame."""
    import colorsys

    hues = []
    for frame, keep in zip(frames, mask):
        mean_rgb = frame[keep].astype(np.float64).mean(axis=0) / 255.0
        hues.append(colorsys.rgb_to_hsv(*mean_rgb)[0])
    return np.unwrap(np.array(hues) * 2 * np.pi) / (2 * np.pi)


@pytest.mark.parametrize("class_name", FAMILY_CLASSES["hue"])
def test_hue_classes_colour_order(dataset, class_name):
    frames = decode(clip_path(dataset, class_name))
    truth = describe_clip(class_name, SMALL, group=1, clip=1)
    # The object is the only bright, saturated thing: no colour knowledge needed.
    rgb = frames.astype(np.float32) / 255.0
    value = rgb.max(axis=-1)
    saturation = (value - rgb.min(axis=-1)) / np.maximum(value, 1e-6)
    mask = (value > 0.82) & (saturation > 0.45)
    assert mask.sum(axis=(1, 2)).min() > 50
    hue = circular_hue(frames, mask)
    assert np.ptp(hue) > 0.4  # turns: the colour goes a long way round
    np.testing.assert_allclose(hue - hue[0], truth.hue - truth.hue[0], atol=0.04)
    check_pattern(truth.pattern, hue, truth.hue, tolerance=0.02)


def orientation(mask: np.ndarray, symmetry: int) -> float:
    """Angle (radians, clockwise on screen) of a shape from its complex moment."""
    ys, xs = np.nonzero(mask)
    z = (xs - xs.mean()) + 1j * (ys - ys.mean())
    moment = np.sum(z**symmetry) if symmetry > 1 else np.sum(z * np.abs(z) ** 2)
    return float(np.angle(moment)) / symmetry


@pytest.mark.parametrize("class_name", FAMILY_CLASSES["angle"])
def test_rotation_classes_direction(dataset, class_name):
    frames = decode(clip_path(dataset, class_name, group=2))
    truth = describe_clip(class_name, SMALL, group=2, clip=1)
    symmetry = {"triangle": 3, "square": 4, "cross": 4, "arrow": 1}[truth.shape]
    masks = object_mask(frames, truth.colors())
    raw = np.array([orientation(mask, symmetry) for mask in masks])
    # Unwrap with the shape's period, measured relative to its own start.
    angle = np.unwrap(raw * symmetry) / symmetry
    assert np.ptp(angle) > np.radians(90)
    np.testing.assert_allclose(angle - angle[0], truth.angle - truth.angle[0], atol=0.15)
    check_pattern(truth.pattern, angle, truth.angle, tolerance=0.02)


# --------------------------------------------------------------- order-blind on raw pixels


def test_fall_classes_are_rise_classes_played_backwards(dataset):
    # Before the codec: exactly, frame for frame (distractors and noise included).
    for rise, fall in (("Grow", "Shrink"), ("HueForward", "HueBackward")):
        forward = render_video(rise, SMALL, 2, 1)
        np.testing.assert_array_equal(render_video(fall, SMALL, 2, 1), forward[::-1])
    # After the codec: the same up to compression noise.
    for rise, fall in (("Grow", "Shrink"), ("RotateClockwise", "RotateAnticlockwise")):
        forward = decode(clip_path(dataset, rise)).astype(np.float32)
        backward = decode(clip_path(dataset, fall)).astype(np.float32)
        per_frame = np.abs(backward - forward[::-1]).mean(axis=(1, 2, 3))
        assert per_frame.max() < 3.0, per_frame  # 0-255 units
        assert np.abs(backward - forward).mean() > 2.5 * per_frame.mean()  # order matters
        # so the order-blind summaries of the two videos agree
        mean_difference = np.abs(backward.mean(axis=0) - forward.mean(axis=0))
        assert mean_difference.mean() < 1.0 and np.percentile(mean_difference, 99) < 4.0


@pytest.mark.parametrize("family", synth_config.FAMILIES)
def test_mean_frame_of_every_class_in_a_family_agrees(dataset, family):
    """Decoded videos of the four classes (same draw): the same mean frame, up to codec
    noise and the order of overlaps with distractors; another draw's differs."""
    means = [
        decode(clip_path(dataset, name)).astype(np.float32).mean(axis=0)
        for name in FAMILY_CLASSES[family]
    ]
    other_draw = decode(clip_path(dataset, FAMILY_CLASSES[family][0], group=2)).mean(axis=0)
    for mean in means[1:]:
        assert np.abs(mean - means[0]).mean() < 1.0  # 0-255 units
        assert np.percentile(np.abs(mean - means[0]), 99) < 4.0
    assert np.abs(other_draw - means[0]).mean() > 10.0


# -------------------------------------------------------------------------- layout and lists


def test_layout_lists_and_index(dataset):
    index = load_index(DatasetSpec(name="ucf101", root=str(dataset), split="1"))
    assert index.class_names == list(SMALL.classes)
    assert len(index.records) == len(CLASSES) * 2
    for record in index.records:
        class_name = record.rel_path.split("/")[1]
        assert record.rel_path.startswith("UCF-101/") and record.rel_path.endswith(".mp4")
        assert index.class_names[record.label] == class_name
        group = int(record.rel_path.rsplit("_g", 1)[1][:2])
        assert record.subset == ("test" if group == 1 else "train")
    lists = dataset / "ucfTrainTestlist"
    assert (lists / "classInd.txt").read_text().splitlines()[:2] == ["1 Grow", "2 Shrink"]
    assert (lists / "trainlist01.txt").read_text().splitlines()[1] == (
        "Shrink/v_Shrink_g02_c01.mp4 2"
    )
    assert (lists / "testlist01.txt").read_text().splitlines()[0] == "Grow/v_Grow_g01_c01.mp4"
    info = json.loads((dataset / "demo_dataset.json").read_text())
    assert info["config"]["seed"] == 0 and info["config"]["videos_per_class"] == 2
    assert info["split"] == {
        "test_groups": [1],
        "train_groups": [2],
        "num_train": 12,
        "num_test": 12,
    }
    import hashlib

    for rel_path, entry in info["files"].items():
        assert hashlib.sha256((dataset / rel_path).read_bytes()).hexdigest() == entry["sha256"]


def test_groups_split_train_and_test_like_ucf101():
    config = SynthConfig(videos_per_class=10)
    assert config.num_groups == 3 and config.test_groups == 1
    clips = config.clips()
    assert len(clips) == 10 and len(set(clips)) == 10
    assert [sum(g == group for g, _ in clips) for group in (1, 2, 3)] == [3, 3, 4]
    assert SynthConfig(videos_per_class=3).clips() == [(1, 1), (2, 1), (2, 2)]
    default = SynthConfig()
    assert (default.num_groups, default.test_groups) == (20, 6)  # 24 test, 56 train


# ------------------------------------------------------------- determinism, reruns, errors


def test_same_seed_same_files_other_seed_other_videos(tmp_path):
    first = generate_dataset(tmp_path / "a", TINY)
    generate_dataset(tmp_path / "b", TINY)
    other = SynthConfig(**{**TINY.to_dict(), "seed": 1, "classes": TINY.classes})
    generate_dataset(tmp_path / "c", other)
    files = [json.loads((tmp_path / n / "demo_dataset.json").read_text())["files"] for n in "abc"]
    assert first.created and files[0] == files[1]
    for name in ("a", "b"):  # the bytes on disk, not only the record
        assert (tmp_path / name / synth.video_rel_path("Grow", 1, 1)).read_bytes() == (
            tmp_path / "a" / synth.video_rel_path("Grow", 1, 1)
        ).read_bytes()
    videos = [path for path in files[0] if path.endswith(".mp4")]
    assert all(files[2][path]["sha256"] != files[0][path]["sha256"] for path in videos)


def test_rerun_does_nothing_and_an_incomplete_dataset_is_regenerated(tmp_path):
    root = tmp_path / "motion"
    generate_dataset(root, TINY)
    video = root / synth.video_rel_path("HueBackward", 2, 1)
    content, stamp = video.read_bytes(), video.stat().st_mtime_ns
    again = generate_dataset(root, TINY)
    assert not again.created and video.stat().st_mtime_ns == stamp
    assert again.num_train == 2 and again.num_test == 2

    video.unlink()  # damaged: a file missing
    (root.parent / f".{root.name}.partial-999999999").mkdir()  # a dead run's leftover
    assert generate_dataset(root, TINY).created
    assert video.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["motion"]


def test_bad_targets_are_refused_and_left_alone(tmp_path):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    with pytest.raises(DemoDataError, match="is a file"):
        generate_dataset(a_file, TINY)
    with pytest.raises(DemoDataError, match="cannot write the demo dataset"):
        generate_dataset(a_file / "motion", TINY)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(DemoDataError, match="does not look like a demo dataset"):
        generate_dataset(foreign, TINY)
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]

    root = tmp_path / "motion"
    generate_dataset(root, TINY)
    other = SynthConfig(**{**TINY.to_dict(), "videos_per_class": 3, "classes": TINY.classes})
    with pytest.raises(DemoDataError, match=r"videos_per_class=2 \(asked 3\)"):
        generate_dataset(root, other)
    assert generate_dataset(root, TINY).created is False  # still intact


NOBODY = 65534  # the unprivileged user and group of Linux distributions


def _generate_without_privileges(root: Path) -> str:
    """Runs ``generate_dataset(root, TINY)`` in a forked child that, when this process is
    root (which ignores permission bits), first becomes the unprivileged ``nobody``; returns
    what the child saw: ``"DemoDataError: <message>"``, another error, or ``"created"``."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report through the pipe, never return into pytest
        outcome = "no outcome"
        try:
            os.close(read_end)
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(NOBODY)
                os.setuid(NOBODY)
            generate_dataset(root, TINY)
            outcome = "created"
        except BaseException as err:  # reported to the parent, which asserts on it
            outcome = f"{type(err).__name__}: {err}"
        finally:
            os.write(write_end, outcome.encode())
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        outcome = pipe.read().decode()
    os.waitpid(pid, 0)
    return outcome


def test_unwritable_parent_is_a_clear_error():
    """The kernel refuses the write (EACCES) in every run, root's included: as root the
    attempt is made by a child that has dropped to ``nobody``."""
    import shutil
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="unwritable-"))  # world-searchable, unlike tmp_path
    try:
        base.chmod(0o755)
        parent = base / "locked"
        parent.mkdir(mode=0o555)  # nobody, or an ordinary owner, may not create entries
        outcome = _generate_without_privileges(parent / "motion")
        assert outcome.startswith(f"DemoDataError: cannot write the demo dataset at {parent}")
        assert "Permission denied" in outcome and "Pass --root to a writable folder" in outcome
        assert list(parent.iterdir()) == []  # nothing was left behind
    finally:
        (base / "locked").chmod(0o755)
        shutil.rmtree(base)


def test_make_demo_data_command(tmp_path, capsys):
    root = tmp_path / "motion"
    argv = ["--root", str(root), "--videos-per-class", "2", "--classes", "[Grow, HueBackward]"]
    argv += ["--num_workers", "1"]
    assert generate_main([*argv, "--seed", "0"]) == 0
    out = capsys.readouterr().out
    assert "wrote 4 videos" in out and "testlist01.txt 2 videos" in out
    assert generate_main(argv) == 0
    assert "already complete" in capsys.readouterr().out
    assert generate_main([*argv, "--seed", "5"]) == 1
    assert "seed=0 (asked 5)" in capsys.readouterr().err
    assert generate_main(["--root", str(root), "--classes", "[Jump]"]) == 1
    assert "unknown demo class" in capsys.readouterr().err


def test_parallel_workers_write_the_same_files(tmp_path):
    serial = generate_dataset(tmp_path / "one", TINY, num_workers=1)
    parallel = generate_dataset(tmp_path / "two", TINY, num_workers=2)
    assert serial.created and parallel.created
    records = [json.loads((tmp_path / n / "demo_dataset.json").read_text()) for n in ("one", "two")]
    assert records[0]["files"] == records[1]["files"]


def test_interrupted_generation_leaves_nothing_in_place(tmp_path):
    script = (
        "import os, sys\n"
        "from video_eleatt.demo import synth\n"
        "from video_eleatt.demo.synth_config import SynthConfig\n"
        "original = synth.write_video\n"
        "def write_then_die(path, *args, **kwargs):\n"
        "    original(path, *args, **kwargs)\n"
        "    if 'g02' in str(path): os._exit(9)\n"
        "synth.write_video = write_then_die\n"
        f"synth.generate_dataset({str(tmp_path / 'motion')!r}, {TINY!r})\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 9, result.stderr
    assert not (tmp_path / "motion").exists()
    assert [p.name.split("-")[0] for p in tmp_path.iterdir()] == [".motion.partial"]
    assert generate_dataset(tmp_path / "motion", TINY).created
    assert sorted(p.name for p in tmp_path.iterdir()) == ["motion"]
