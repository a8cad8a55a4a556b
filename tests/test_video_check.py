"""`video-eleatt check`: unreadable videos listed with reasons, --strict exit code, inputs."""

from __future__ import annotations

import numpy as np
import pytest
from video_factory import BROKEN_KINDS, write_broken_video, write_video_folder

from video_eleatt.video.check import FirstLastRandom, main, read_list, scan_folder
from video_eleatt.video.decode import VideoInfo

GOOD = ["walk/v1.mp4", "walk/v2.mkv", "run/v3.avi"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A folder-per-class dataset: three good videos and one broken file of each kind."""
    root = tmp_path_factory.mktemp("check")
    write_video_folder(root, GOOD, num_frames=[12, 30, 7])
    for kind in BROKEN_KINDS:
        write_broken_video(root / "bad" / f"{kind}.mp4", kind)
    return root


def read_tsv(path):
    header, *rows = path.read_text().splitlines()
    assert header == "rel_path\treason"
    return dict(row.split("\t") for row in rows)


def test_list_with_every_broken_kind_is_reported_and_strict_fails(dataset, tmp_path, capsys):
    listed = [f"{rel_path} 0" for rel_path in GOOD]
    listed += [f"bad/{kind}.mp4 1" for kind in BROKEN_KINDS]
    list_file = tmp_path / "all.txt"
    list_file.write_text("\n".join(listed) + "\n")
    output = tmp_path / "out" / "unreadable.tsv"
    argv = ["--list", str(list_file), "--root", str(dataset), "--output", str(output)]

    assert main([*argv, "--strict"]) == 1
    failures = read_tsv(output)
    assert sorted(failures) == sorted(f"bad/{kind}.mp4" for kind in BROKEN_KINDS)
    assert "empty" in failures["bad/zero_byte.mp4"]
    assert "no such file" in failures["bad/missing.mp4"]
    assert "cannot find video stream" in failures["bad/no_frames.mp4"]
    for kind in ("truncated", "not_video", "corrupt"):
        assert "cannot open" in failures[f"bad/{kind}.mp4"]
    summary = capsys.readouterr().out
    assert "checked 9 videos" in summary and "3 readable, 6 unreadable" in summary

    assert main(argv) == 0  # without --strict the failures are reported, the exit is clean


def test_folder_and_dataset_config_find_the_same_videos(dataset, tmp_path):
    output = tmp_path / "folder.tsv"
    assert main(["--folder", str(dataset), "--output", str(output), "--strict"]) == 1
    from_folder = read_tsv(output)
    assert "bad/missing.mp4" not in from_folder  # a folder scan cannot see a missing file
    assert len(from_folder) == len(BROKEN_KINDS) - 1

    good_only = tmp_path / "good"
    write_video_folder(good_only, GOOD, num_frames=5)
    config = tmp_path / "extract.yaml"
    config.write_text(f"dataset:\n  name: folder\n  root: {good_only}\nbackbone: resnet18\n")
    output = tmp_path / "config.tsv"
    assert main(["--config", str(config), "--output", str(output), "--strict"]) == 0
    assert read_tsv(output) == {}


def test_bad_arguments_exit_2(tmp_path, capsys):
    assert main(["--list", str(tmp_path / "nope.txt")]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--folder", str(tmp_path), "--list", "x.txt"])


def test_first_last_and_seeded_random_frames():
    info = VideoInfo("v.mp4", num_frames=100, fps=25.0, duration=4.0, width=64, height=48)
    picked = FirstLastRandom(num_random=3, seed=7)(info, np.arange(100) / 25.0)
    assert picked[0] == 0 and picked[-1] == 99 and 3 <= len(picked) <= 5
    assert np.array_equal(picked, FirstLastRandom(3, 7)(info, np.arange(100) / 25.0))


def test_list_and_folder_readers(tmp_path):
    list_file = tmp_path / "list.txt"
    list_file.write_text("# comment\na/with space.mp4 3\nb/v.avi\n\nc/v.mkv\t0\n")
    assert read_list(list_file) == ["a/with space.mp4", "b/v.avi", "c/v.mkv"]
    for name in ("x/a.MP4", "x/b.txt", "c.avi"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("")
    assert scan_folder(tmp_path, [".mp4", "avi"]) == ["c.avi", "x/a.MP4"]
