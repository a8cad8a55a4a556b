"""`video-eleatt check`: extract's inputs, options and decode path; failures with reasons,
--thorough findings, --strict and bad-input exit codes, and agreement with `extract`."""

from __future__ import annotations

import struct

import av
import numpy as np
import pytest
from video_factory import (
    BROKEN_KINDS,
    write_broken_video,
    write_conformance_video,
    write_index_video,
    write_video_folder,
)

import video_eleatt.video.check as check_module
from video_eleatt.cli import main
from video_eleatt.features.cache import FeatureCache
from video_eleatt.features.cli import extract_main
from video_eleatt.features.config import parse_extract_config
from video_eleatt.video.check import (
    REPORT_HEADER,
    CheckResult,
    ContainerProbe,
    VideoCheck,
    format_summary,
    thorough_findings,
)
from video_eleatt.video.decode import VideoInfo

GOOD = ["run/v3.avi", "walk/v1.mp4", "walk/v2.mkv"]
FRAMES = {"run/v3.avi": 7, "walk/v1.mp4": 12, "walk/v2.mkv": 30}  # 8 fps
BAD = sorted(f"bad/{kind}.mp4" for kind in BROKEN_KINDS)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Three good videos and one broken file of each kind, with a list of them all."""
    root = tmp_path_factory.mktemp("check")
    write_video_folder(root, GOOD, num_frames=[FRAMES[rel_path] for rel_path in GOOD])
    for kind in BROKEN_KINDS:
        write_broken_video(root / "bad" / f"{kind}.mp4", kind)
    listing = root / "all.txt"
    listing.write_text("".join(f"{rel_path} {i % 2}\n" for i, rel_path in enumerate(GOOD + BAD)))
    return root


def read_report(path):
    """rel_path -> (status, detail), in file order; the header line is checked."""
    header, *rows = path.read_text().splitlines()
    assert header == REPORT_HEADER == "rel_path\tstatus\tdetail"
    report = {}
    for row in rows:
        rel_path, status, detail = row.split("\t")
        report[rel_path] = (status, detail)
    return report


def check(*argv):
    return main(["check", *argv, "--progress", "false"])


def test_every_broken_kind_fails_with_a_reason_naming_the_file(dataset, tmp_path, capsys):
    output = tmp_path / "out" / "report.tsv"
    argv = ["--videos", str(dataset / "all.txt"), "--output", str(output)]

    assert check(*argv, "--strict") == 1
    report = read_report(output)
    assert list(report) == sorted(GOOD + BAD)  # one row per video, extract's (sorted) order
    assert {key for key, (status, _) in report.items() if status == "failed"} == set(BAD)
    assert all(report[key][0] == "ok" for key in GOOD)
    for rel_path in BAD:
        assert str(dataset / rel_path) in report[rel_path][1], rel_path
    assert "empty" in report["bad/zero_byte.mp4"][1]
    assert "no such file" in report["bad/missing.mp4"][1]
    assert "cannot find video stream" in report["bad/no_frames.mp4"][1]
    for kind in ("truncated", "not_video", "corrupt"):
        assert "cannot open" in report[f"bad/{kind}.mp4"][1]
    summary = capsys.readouterr().out
    assert "checked 9 videos" in summary and "3 ok, 0 warning, 0 damaged, 6 failed" in summary
    for rel_path in BAD:  # the summary names each unreadable video with its reason
        assert f"  {rel_path}: {report[rel_path][1]}" in summary

    assert check(*argv) == 0  # without --strict the failures are reported, the exit is clean


def test_old_folder_flag_and_a_dataset_config_find_the_videos(dataset, tmp_path, capsys):
    output = tmp_path / "folder.tsv"
    assert check("--folder", str(dataset), "--output", str(output)) == 0
    err = capsys.readouterr().err
    assert "--folder is now --videos" in err
    notes = [line for line in err.splitlines() if "note:" in line]
    assert notes == ["video-eleatt check: note: --folder is now --videos"]  # one line
    # a folder scan cannot see a missing file: every other video is found
    assert list(read_report(output)) == sorted(set(GOOD + BAD) - {"bad/missing.mp4"})

    good_only = tmp_path / "good"
    write_video_folder(good_only, GOOD, num_frames=5)
    config = tmp_path / "extract.yaml"
    config.write_text(
        f"dataset:\n  name: folder\n  root: {good_only}\nbackbone:\n  name: resnet18\n"
    )
    output = tmp_path / "config.tsv"
    assert check("--config", str(config), "--output", str(output), "--strict") == 0
    report = read_report(output)
    assert list(report) == GOOD and {status for status, _ in report.values()} == {"ok"}
    assert check("--config", str(config), "--output", str(output), "--limit", "1") == 0
    assert list(read_report(output)) == GOOD[:1]  # extract's --limit: the first N by path


def test_progress_in_a_log_is_plain_lines(dataset, capsys):
    videos = [(rel_path, dataset / rel_path) for rel_path in GOOD]
    sampling = check_module.SamplingConfig(mode="uniform", num_frames=2)
    result = check_module.check_videos(videos, sampling, num_workers=1, start_method="fork")
    assert [item.status for item in result.videos] == ["ok"] * 3
    err = capsys.readouterr().err  # captured: not a terminal
    assert "\r" not in err
    assert err.splitlines()[-1].startswith("check: 3/3 videos (100.0 %)")
    assert err.splitlines()[-1].endswith("[failed=0]")
    check_module.check_videos(videos, sampling, num_workers=1, start_method="fork", progress=False)
    assert capsys.readouterr().err == ""


def test_the_config_sampling_and_pool_options_are_the_ones_used(tmp_path, monkeypatch):
    write_video_folder(tmp_path / "videos", ["a.mp4", "b.mp4"], num_frames=12, fps=8.0)
    config = tmp_path / "extract.yaml"
    config.write_text(
        f"videos: {tmp_path / 'videos'}\n"
        "sampling: {mode: uniform, num_frames: 4}\n"
        "num_workers: 1\ntimeout_s: 30\nchunk_size: 3\non_damage: fail\nmax_lost_fraction: 0.3\n"
    )
    tasks, pools = [], []
    task_class, pool_class = check_module.DecodeTask, check_module.DecodePool

    def spy_task(*args, **kwargs):
        tasks.append(task_class(*args, **kwargs))
        return tasks[-1]

    def spy_pool(*args, **kwargs):
        pools.append((args, kwargs))
        return pool_class(*args, **kwargs)

    monkeypatch.setattr(check_module, "DecodeTask", spy_task)
    monkeypatch.setattr(check_module, "DecodePool", spy_pool)
    output = tmp_path / "report.tsv"
    assert check("--config", str(config), "--output", str(output)) == 0

    extracts = parse_extract_config(["--config", str(config)]).sampling  # what extract uses
    assert extracts.to_dict() == {"mode": "uniform", "num_frames": 4}
    assert [(task.key, task.sampling, task.frame_picker) for task in tasks] == [
        ("a.mp4", extracts, None),
        ("b.mp4", extracts, None),
    ]
    assert tasks[0].path == str(tmp_path / "videos" / "a.mp4")
    ((args, kwargs),) = pools
    assert args == (1, 30.0) and kwargs["chunk_size"] == 3 and kwargs["on_damage"] == "fail"
    assert kwargs["max_lost_fraction"] == 0.3
    assert "transform" not in kwargs  # decoded frames as extract's workers decode them
    # 4 bins of 12 frames: centres 1.5, 4.5, 7.5, 10.5 frame intervals -> frames 1, 4, 7, 10
    assert read_report(output)["a.mp4"] == (
        "ok",
        "decoded 4 of 12 frames [1, 4, 7, 10] at 8.000 fps, 64x48",
    )
    # the command line overrides the config, as for extract: centres 2, 6, 10
    argv = ["--config", str(config), "--sampling.num_frames", "3", "--output", str(output)]
    assert check(*argv) == 0
    assert read_report(output)["b.mp4"][1].startswith("decoded 3 of 12 frames [2, 6, 10] ")


def _avi_whose_header_says(path, num_frames: int, header_frames: int):
    """An index AVI of ``num_frames`` whose headers (avih, strh) claim ``header_frames``."""
    write_index_video(path, num_frames, fps=10.0)
    data = bytearray(path.read_bytes())
    avih, strh = data.find(b"avih"), data.find(b"strh")
    struct.pack_into("<I", data, avih + 8 + 16, header_frames)  # dwTotalFrames
    struct.pack_into("<I", data, strh + 8 + 32, header_frames)  # dwLength
    path.write_bytes(bytes(data))
    with av.open(str(path)) as container:  # the lie took: FFmpeg believes the header
        assert container.streams.video[0].frames == header_frames
    return path


def test_thorough_reports_disagreements_as_warnings_and_damage_with_its_counts(tmp_path, capsys):
    folder = tmp_path / "videos"
    _avi_whose_header_says(folder / "lies.avi", 12, header_frames=20)
    write_index_video(folder / "clean.mp4", 12, fps=8.0)
    write_conformance_video(folder, "vfr_gap_mp4")  # 25 fps with a 1 s pause after frame 29
    write_conformance_video(folder, "mpeg4_packed2_avi")
    write_conformance_video(folder, "mpeg4_nvop_avi")  # 31 chunks, 30 frames: not damage
    damaged = write_conformance_video(folder, "h264_zeroed_middle")  # frames 24-39 lost
    output = tmp_path / "thorough.tsv"
    argv = ["--videos", str(folder), "--thorough", "--output", str(output), "--strict"]

    assert check(*argv) == 0  # the damaged file keeps its clean frames: damaged, not failed
    report = read_report(output)
    status, detail = report["h264_zeroed_middle.mp4"]
    assert status == "damaged"
    assert detail.startswith(
        "damaged: 16 of 60 frames lost between 0.96 s and 1.56 s (first: the decoder flagged "
        "the frame corrupt (concealed errors)); the clean frames are kept"
    )
    assert "decoded 44 of 44 frames" in detail
    status, detail = report["lies.avi"]
    assert status == "warning"
    assert "the header says 20 frames (stream.frames), 12 are in the file" in detail
    assert "timestamps derived as index / 10.000 fps (AVI" in detail
    assert "decoded 12 of 12 frames" in detail
    status, detail = report["vfr_gap_mp4.mp4"]
    assert status == "warning" and "the timestamps jump 1.040 s after frame 29" in detail
    # packed B-frames are a note, not a warning
    status, detail = report["mpeg4_packed2_avi.avi"]
    assert status == "ok" and "packed B-frames (DivX/Xvid packed bitstream" in detail
    assert "decoded 60 of 60 frames" in detail
    status, detail = report["mpeg4_nvop_avi.avi"]
    assert status == "ok" and "1 not-coded VOPs (N-VOPs, DivX's drop-frame placeholders)" in detail
    assert "decoded 30 of 30 frames" in detail and "packed" not in detail
    # every frame decoded; the extraction's own sampling (fps 8) is applied to the timestamps
    assert report["clean.mp4"] == (
        "ok",
        "decoded 12 of 12 frames [0, 1, 2, 3, ..., 10, 11] at 8.000 fps, 64x48; "
        "the extraction's sampling picks 12",
    )
    assert "3 ok, 2 warning, 1 damaged, 0 failed" in capsys.readouterr().out

    assert check(*argv, "--on_damage", "fail") == 1  # the strict behaviour
    status, detail = read_report(output)["h264_zeroed_middle.mp4"]
    assert status == "failed" and str(damaged) in detail and "frame 24 " in detail


def test_thorough_findings_say_why_timestamps_are_derived():
    info = VideoInfo("v.mp4", 10, 25.0, 0.4, 64, 48, timestamps_source="derived", rotation=90)
    steady = np.arange(10) / 25.0
    probe = ContainerProbe("mov,mp4,m4a,3gp,3g2,mj2", 10, 10, packets_without_pts=3)
    warnings, notes = thorough_findings(info, steady, 10, probe, restarted=True)
    assert warnings == [
        "the container's frame table disagreed with the decoder's output; the video was "
        "indexed again by a decode pass",
        "timestamps derived as index / 25.000 fps (3 of 10 packets have no pts)",
    ]
    assert notes == ["stored rotation 90 degrees (frames are turned upright)"]
    absurd = ContainerProbe("matroska,webm", 0, 10, pts_span_s=1e6, rate=25.0)
    assert "span 1000000 s for 10 frames" in thorough_findings(info, steady, 10, absurd)[0][0]
    # AVI's derived times are by design (a note); the header's 0 frames means "not stored"
    avi = ContainerProbe("avi", 0, 10, rate=25.0)
    warnings, notes = thorough_findings(info, steady, 10, avi)
    assert warnings == [] and notes[0].startswith("timestamps derived as index / 25.000 fps (AVI")


def test_summary_lists_twenty_failures_then_points_at_the_report():
    videos = [VideoCheck(f"v{i:02d}.mp4", "failed", f"cannot open v{i:02d}.mp4") for i in range(25)]
    summary = format_summary(CheckResult(videos, 1.0), "bad.tsv").splitlines()
    assert summary[0] == "checked 25 videos in 1.0 s: 0 ok, 0 warning, 0 damaged, 25 failed"
    assert summary[2:4] == ["  v00.mp4: cannot open v00.mp4", "  v01.mp4: cannot open v01.mp4"]
    assert "  v19.mp4: cannot open v19.mp4" in summary and "  v20.mp4" not in "\n".join(summary)
    assert "  ... and 5 more (see bad.tsv)" in summary


def test_a_video_check_passes_is_one_extract_extracts(tmp_path):
    folder = tmp_path / "videos"
    write_video_folder(folder, ["a.mp4", "b.mp4"], num_frames=12, fps=8.0, size=(64, 48))
    write_broken_video(folder / "c.mp4", "corrupt")
    shared = [
        "--videos", str(folder), "--sampling.mode", "uniform", "--sampling.num_frames", "4",
        "--num_workers", "1", "--chunk_size", "4",
        "--backbone.name", "resnet18", "--backbone.library", "timm",
        "--backbone.weights", "random", "--precision", "float32", "--progress", "false",
    ]  # fmt: skip
    output = tmp_path / "check.tsv"
    assert main(["check", *shared, "--output", str(output)]) == 0
    report = read_report(output)
    passed = sorted(key for key, (status, _) in report.items() if status == "ok")
    assert passed == ["a.mp4", "b.mp4"] and report["c.mp4"][0] == "failed"

    assert extract_main([*shared, "--output_root", str(tmp_path / "features")]) == 0
    (cache_dir,) = (tmp_path / "features").iterdir()
    cache = FeatureCache(cache_dir)
    assert cache.ok_keys() == passed and sorted(cache.failed()) == ["c.mp4"]
    assert cache.load("a.mp4").frame_indices.tolist() == [1, 4, 7, 10]  # as check decoded


def test_bad_input_exits_2_with_one_line_naming_the_path_and_the_fix(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "a_file").write_text("")
    (tmp_path / "one" / "x.mp4").parent.mkdir()
    (tmp_path / "one" / "x.mp4").write_text("not decoded: the report path fails first")
    cases = [
        (["--videos", str(tmp_path / "nope")], [str(tmp_path / "nope"), "or a folder of videos"]),
        (["--folder", str(tmp_path / "nope")], [str(tmp_path / "nope")]),
        (["--list", str(tmp_path / "nope.txt")], [str(tmp_path / "nope.txt")]),
        (["--videos", str(tmp_path / "empty")], [f"no videos found in {tmp_path / 'empty'}"]),
        (["--folder", "a", "--list", "b"], ["give one --videos"]),
        (["--dataset", "ucf101", "--root", "data"], ["--dataset.name ucf101 --dataset.root"]),
        (["--num_random", "3"], ["--num_random no longer exists", "--sampling"]),
        (
            ["--videos", str(tmp_path / "one"), "--output", str(tmp_path / "a_file" / "r.tsv")],
            ["cannot write the report", "choose another --output"],
        ),
    ]
    for argv, expected in cases:
        assert check(*argv) == 2, argv
        errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
        assert len(errors) == 1, (argv, errors)
        assert all(text in errors[0] for text in expected), (argv, errors[0])
