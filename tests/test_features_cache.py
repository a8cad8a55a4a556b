"""The feature cache: entries, manifest, config identity, verify, packed form, import."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest
import torch
from disk_faults import STAGES, filling_open, inject_disk_full, temporary_files
from safetensors.numpy import load_file as load_numpy
from safetensors.torch import load_file
from training_fixtures import make_tiny_cache

from video_eleatt import cli
from video_eleatt.features import manifest as manifest_module
from video_eleatt.features.cache import (
    FeatureCache,
    create_cache,
    entry_is_complete,
    write_entry,
    write_failure,
)
from video_eleatt.features.identity import cache_dir_name, features_hash
from video_eleatt.features.layout import CacheError, CacheWriteError, feature_path
from video_eleatt.features.manifest import ManifestWriter, compact_manifest, read_manifest
from video_eleatt.features.opening import open_features
from video_eleatt.features.packed import PackedFeatureCache, pack_cache
from video_eleatt.features.verify import verify_cache

IDENTITY = {"backbone": {"name": "tiny", "weights": "random-init seed 0"}, "dtype": "float16"}


def _cache(tmp_path, feature_dim=4, identity=IDENTITY):
    return create_cache(
        tmp_path / "cache",
        {
            "features": identity,
            "feature_dim": feature_dim,
            "class_names": ["a", "b", "c"],
            "dataset": {"name": "toy", "root": "data/toy", "split": "1", "annotations": None},
        },
    )


def _write(cache_dir, rel_path, num_steps, label=1, seed=0, feature_dim=4):
    features = np.random.default_rng(seed).normal(size=(num_steps, feature_dim))
    write_entry(
        cache_dir,
        rel_path,
        features,
        np.arange(num_steps) * 3,
        np.arange(num_steps) * 0.125,
        24.0,
        3 * num_steps,
        num_steps * 0.125,
        label,
    )
    return features


def test_write_and_load_round_trip(tmp_path):
    cache_dir = _cache(tmp_path)
    features = _write(cache_dir, "walk/v 1.avi", 5, label=2)
    _write(cache_dir, "run/v 1.avi", 3)  # same stem, another class folder: another file
    cache = FeatureCache(cache_dir)
    assert cache.ok_keys() == ["run/v 1.avi", "walk/v 1.avi"]
    assert cache.feature_dim == 4 and cache.class_names == ["a", "b", "c"]
    assert cache.dataset.name == "toy" and cache.dataset.split == "1"
    entry = cache.load("walk/v 1.avi")
    assert entry.features.dtype == torch.float16  # the config's dtype
    np.testing.assert_array_equal(entry.features.numpy(), features.astype(np.float16))
    assert entry.frame_indices.tolist() == [0, 3, 6, 9, 12]
    assert entry.timestamps.dtype == torch.float64 and entry.timestamps[1].item() == 0.125
    assert (entry.fps, entry.num_frames, entry.duration, entry.label) == (24.0, 15, 0.625, 2)
    # a plain safetensors file under features/<rel_path>.safetensors
    path = cache_dir / "features" / "walk" / "v 1.avi.safetensors"
    assert set(load_file(str(path))) == {"features", "frame_indices", "timestamps"}
    with pytest.raises(KeyError, match="no features"):
        cache.load("walk/absent.avi")


def test_entry_bytes_are_deterministic(tmp_path):
    first, second = tmp_path / "one", tmp_path / "two"
    for root in (first, second):
        create_cache(root, {"features": IDENTITY, "feature_dim": 4})
        _write(root, "a/b.mp4", 4)
    name = "features/a/b.mp4.safetensors"
    assert (first / name).read_bytes() == (second / name).read_bytes()


def test_bad_rel_paths_are_refused(tmp_path):
    cache_dir = _cache(tmp_path)
    for rel_path in ("/abs/v.avi", "../v.avi", "a/./v.avi", "a\\v.avi", ""):
        with pytest.raises(CacheError, match="bad relative path"):
            feature_path(cache_dir, rel_path)


def test_hash_names_the_directory_and_a_mismatch_is_refused(tmp_path):
    digest = features_hash(IDENTITY)
    assert len(digest) == 8 and digest == features_hash(json.loads(json.dumps(IDENTITY)))
    assert features_hash({**IDENTITY, "dtype": "float32"}) != digest
    assert cache_dir_name("ucf101", "timm/resnet50.a1_in1k", digest) == (
        f"ucf101_timm-resnet50.a1-in1k_{digest}"  # "_" only separates fields
    )
    cache_dir = _cache(tmp_path)
    _cache(tmp_path)  # same config: reused
    other = {"backbone": {"name": "tiny", "weights": "random-init seed 1"}, "dtype": "float32"}
    with pytest.raises(CacheError) as info:
        _cache(tmp_path, identity=other)
    message = str(info.value)
    assert "features.backbone.weights: 'random-init seed 0' -> 'random-init seed 1'" in message
    assert "features.dtype: 'float16' -> 'float32'" in message
    assert str(cache_dir) in message
    # the split and root do not change the features: not refused
    create_cache(
        cache_dir,
        {
            "features": IDENTITY,
            "feature_dim": 4,
            "class_names": ["a", "b", "c"],
            "dataset": {"name": "toy", "root": "/elsewhere", "split": "2", "annotations": None},
        },
    )


@pytest.mark.parametrize("stage", STAGES)
def test_disk_full_leaves_no_new_entry_and_the_previous_one_whole(tmp_path, monkeypatch, stage):
    cache_dir = _cache(tmp_path)
    _write(cache_dir, "a/v.avi", 3, seed=0)
    path = feature_path(cache_dir, "a/v.avi")
    before, rows = path.read_bytes(), read_manifest(cache_dir)

    inject_disk_full(monkeypatch, stage)
    for rel_path, seed in (("a/new.avi", 1), ("a/v.avi", 2)):  # a new entry, then a redo
        with pytest.raises(CacheWriteError) as info:
            _write(cache_dir, rel_path, 5, seed=seed)
        message = str(info.value)
        assert f"cannot write {feature_path(cache_dir, rel_path)}: the disk is full" in message
    monkeypatch.undo()

    assert path.read_bytes() == before  # the previous features, byte for byte
    assert read_manifest(cache_dir) == rows  # no row for the failed writes
    assert not feature_path(cache_dir, "a/new.avi").exists()
    assert temporary_files(cache_dir) == []
    report = verify_cache(cache_dir)
    assert report.ok == ["a/v.avi"] and report.problems == {} and report.orphans == []


@pytest.mark.parametrize("stage", ["write", "fsync"])
def test_disk_full_while_appending_the_manifest_row(tmp_path, monkeypatch, stage):
    """The entry's file is in place when its row is appended; a full disk then stops the run
    naming the manifest, and whatever reached the manifest points at a complete file."""
    import errno

    cache_dir = _cache(tmp_path)
    manifest = cache_dir / "manifest.jsonl"
    _write(cache_dir, "a/first.avi", 2, seed=0)
    real_fsync = os.fsync

    def full_for_the_manifest(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}") == str(manifest):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    if stage == "fsync":
        monkeypatch.setattr(os, "fsync", full_for_the_manifest)
    else:  # half of the row's line reaches the file, then the disk is full
        monkeypatch.setattr(manifest_module, "open", filling_open(manifest), raising=False)
    with pytest.raises(
        CacheWriteError, match=re.escape(f"cannot write {manifest}: the disk is full")
    ):
        _write(cache_dir, "a/second.avi", 3, seed=1)
    monkeypatch.undo()
    rows = read_manifest(cache_dir)
    assert all(entry_is_complete(cache_dir, row) for row in rows.values())
    assert "a/first.avi" in rows
    # the rerun rewrites the entry and its row; the cache is whole
    _write(cache_dir, "a/second.avi", 3, seed=1)
    report = verify_cache(cache_dir)
    assert report.ok == ["a/first.avi", "a/second.avi"] and report.problems == {}


def test_unwritable_cache_dir_names_the_path(tmp_path):
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("a file where a directory should be")
    with pytest.raises(CacheWriteError) as info:
        create_cache(blocker / "cache", {"features": IDENTITY, "feature_dim": 4})
    assert str(blocker / "cache") in str(info.value)


def test_torn_manifest_line_is_skipped_and_repaired(tmp_path):
    cache_dir = _cache(tmp_path)
    _write(cache_dir, "a/v1.avi", 2)
    manifest = cache_dir / "manifest.jsonl"
    with open(manifest, "a") as handle:
        handle.write('{"rel_path": "a/v2.avi", "label": 1, "stat')  # killed mid-append
    assert list(read_manifest(cache_dir)) == ["a/v1.avi"]
    _write(cache_dir, "a/v3.avi", 2)  # the writer cuts the torn tail first
    lines = manifest.read_text().splitlines()
    assert [json.loads(line)["rel_path"] for line in lines] == ["a/v1.avi", "a/v3.avi"]


def test_later_rows_win_and_parts_are_merged(tmp_path):
    cache_dir = _cache(tmp_path)
    write_failure(cache_dir, "a/v1.avi", 0, "timed out")
    _write(cache_dir, "a/v1.avi", 2)
    with ManifestWriter(cache_dir / "manifest.rank1.jsonl") as part:
        write_entry(
            cache_dir,
            "b/v2.avi",
            np.ones((3, 4)),
            [0, 1, 2],
            [0.0, 0.1, 0.2],
            10.0,
            3,
            0.3,
            2,
            manifest=part,
        )
    rows = read_manifest(cache_dir)
    assert rows["a/v1.avi"]["status"] == "ok" and rows["b/v2.avi"]["num_steps"] == 3
    assert compact_manifest(cache_dir) == 2
    assert not (cache_dir / "manifest.rank1.jsonl").exists()
    assert read_manifest(cache_dir) == rows


def test_entry_is_complete_checks_the_file(tmp_path):
    cache_dir = _cache(tmp_path)
    _write(cache_dir, "a/v.avi", 6)
    row = read_manifest(cache_dir)["a/v.avi"]
    assert entry_is_complete(cache_dir, row)
    assert not entry_is_complete(cache_dir, {**row, "num_steps": 5})
    path = feature_path(cache_dir, "a/v.avi")
    path.write_bytes(path.read_bytes()[:-10])  # truncated
    assert not entry_is_complete(cache_dir, row)
    path.unlink()
    assert not entry_is_complete(cache_dir, row)


def test_verify_finds_broken_entries(tmp_path):
    cache_dir = _cache(tmp_path)
    for i in range(4):
        _write(cache_dir, f"a/v{i}.avi", 3, seed=i)
    write_failure(cache_dir, "a/bad.avi", 0, "zero-byte file")
    # v1: NaN in the data, same size; v2: truncated; v3: deleted
    path = feature_path(cache_dir, "a/v1.avi")
    data = bytearray(path.read_bytes())
    header_len = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + header_len])
    start = 8 + header_len + header["features"]["data_offsets"][0]
    data[start : start + 2] = np.array([np.nan], np.float16).tobytes()
    path.write_bytes(bytes(data))
    path2 = feature_path(cache_dir, "a/v2.avi")
    path2.write_bytes(path2.read_bytes()[:-4])
    feature_path(cache_dir, "a/v3.avi").unlink()
    (cache_dir / "features" / "a" / ".v0.avi.safetensors.tmp123").write_bytes(b"x")
    report = verify_cache(cache_dir)
    assert report.ok == ["a/v0.avi"]
    assert report.failed == {"a/bad.avi": "zero-byte file"}
    assert set(report.problems) == {"a/v1.avi", "a/v2.avi", "a/v3.avi"}
    assert "non-finite" in report.problems["a/v1.avi"]
    assert "truncated" in report.problems["a/v2.avi"]
    assert "missing" in report.problems["a/v3.avi"]
    assert report.temp_files == ["a/.v0.avi.safetensors.tmp123"]


def _features_offset(path) -> int:
    """Byte offset of the first feature value in a safetensors entry file."""
    data = path.read_bytes()
    header_len = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + header_len])
    return 8 + header_len + header["features"]["data_offsets"][0]


def test_verify_command_finds_a_flipped_byte_a_missing_entry_and_out_of_date_rows(tmp_path, capsys):
    cache_dir = _cache(tmp_path)
    steps = {f"a/v{i}.avi": 3 + i for i in range(5)}
    for i, (rel_path, num_steps) in enumerate(steps.items()):
        _write(cache_dir, rel_path, num_steps, seed=i)
    assert cli.main(["verify", str(cache_dir)]) == 0
    out = capsys.readouterr().out
    assert f"{cache_dir}: 5 ok, 0 failed at extraction, 0 broken, 0 orphan files" in out

    # v0: one bit of one feature value flipped: the file still loads, same shape, all finite
    path0 = feature_path(cache_dir, "a/v0.avi")
    data = bytearray(path0.read_bytes())
    data[_features_offset(path0)] ^= 0x01
    path0.write_bytes(bytes(data))
    flipped = load_numpy(str(path0))["features"]
    assert flipped.shape == (3, 4) and np.isfinite(flipped).all()
    # v1: its file is gone
    feature_path(cache_dir, "a/v1.avi").unlink()
    # v2: a later row says 7 steps; the file holds 5
    row = read_manifest(cache_dir)["a/v2.avi"]
    with ManifestWriter(cache_dir / "manifest.jsonl") as writer:
        writer.append({**row, "num_steps": 7})
    # v3: replaced by another run's complete, valid file of the same video and shape
    other = create_cache(tmp_path / "other", json.loads((cache_dir / "config.json").read_text()))
    _write(other, "a/v3.avi", 6, seed=99)
    feature_path(cache_dir, "a/v3.avi").write_bytes(feature_path(other, "a/v3.avi").read_bytes())
    assert verify_cache(other).ok == ["a/v3.avi"]  # a sound entry where it was written
    # v5: a file whose row never reached this manifest (the manifest is older than the files)
    with ManifestWriter(tmp_path / "lost_rows.jsonl") as lost:
        write_entry(
            cache_dir, "a/v5.avi", np.ones((2, 4)), [0, 1], [0.0, 0.5], 2.0, 2, 1.0, 0,
            manifest=lost,
        )  # fmt: skip

    assert cli.main(["verify", str(cache_dir)]) == 1
    out = capsys.readouterr().out
    assert f"{cache_dir}: 1 ok, 0 failed at extraction, 4 broken, 1 orphan files" in out
    broken = {
        line.split(": ", 1)[0].removeprefix("  BROKEN "): line.split(": ", 1)[1]
        for line in out.splitlines()
        if line.startswith("  BROKEN ")
    }
    assert sorted(broken) == ["a/v0.avi", "a/v1.avi", "a/v2.avi", "a/v3.avi"]
    assert broken["a/v0.avi"].startswith(f"content differs from its manifest row: {path0}")
    assert broken["a/v1.avi"] == f"file missing: {feature_path(cache_dir, 'a/v1.avi')}"
    assert broken["a/v2.avi"].startswith("manifest row out of date: features shape (5, 4)")
    assert broken["a/v2.avi"].endswith("manifest/config say (7, 4)")
    assert broken["a/v3.avi"].startswith("content differs from its manifest row")
    report = verify_cache(cache_dir)
    assert report.ok == ["a/v4.avi"] and report.orphans == ["a/v5.avi.safetensors"]
    assert report.stale is None  # the cache as a whole is not from an older decode path

    # --fix removes the broken files, so that the extraction's resume check redoes them
    assert cli.main(["verify", str(cache_dir), "--fix"]) == 1
    assert "removed 4 broken files" in capsys.readouterr().out
    rows = read_manifest(cache_dir)
    assert [key for key in sorted(rows) if entry_is_complete(cache_dir, rows[key])] == ["a/v4.avi"]
    assert feature_path(cache_dir, "a/v4.avi").exists()


def test_pack_command_gives_the_arrays_of_the_per_video_files(tmp_path, capsys):
    info = make_tiny_cache(tmp_path, num_classes=3, train_per_class=2, test_per_class=1, failed=1)
    cache_dir = info["cache"]
    assert cli.main(["pack", str(cache_dir), "--groups", "subset"]) == 0
    assert f"packed form written to {cache_dir / 'packed'}" in capsys.readouterr().out
    rows = read_manifest(cache_dir)
    failed = [key for key, row in rows.items() if row["status"] == "failed"]
    assert len(failed) == 1
    expected_groups = {
        "train": sorted(set(info["train"]) - set(failed)),
        "test": sorted(info["test"]),
    }
    index = json.loads((cache_dir / "packed" / "index.json").read_text())
    assert sorted(index["groups"]) == ["test", "train"]
    for group, keys in expected_groups.items():
        listing = json.loads((cache_dir / "packed" / f"{group}.videos.json").read_text())
        assert listing["rel_paths"] == keys
        arrays = {
            name: np.load(cache_dir / "packed" / f"{group}.{name}.npy")
            for name in ("features", "frame_indices", "timestamps")
        }
        files = [load_numpy(str(feature_path(cache_dir, key))) for key in keys]
        for name, array in arrays.items():  # the files one after another, nothing else
            np.testing.assert_array_equal(array, np.concatenate([f[name] for f in files]))
            assert array.dtype == files[0][name].dtype
        lengths = [len(f["features"]) for f in files]
        assert listing["lengths"] == lengths
        assert listing["offsets"] == np.concatenate([[0], np.cumsum(lengths)[:-1]]).tolist()
        assert listing["labels"] == [rows[key]["label"] for key in keys]
        assert index["groups"][group] == {"num_videos": len(keys), "num_steps": sum(lengths)}

    # a file that disagrees with its row is refused, naming the fix; the old form is kept
    key = expected_groups["train"][0]
    path = feature_path(cache_dir, key)
    row = rows[key]
    with ManifestWriter(cache_dir / "manifest.jsonl") as writer:
        writer.append({**row, "num_steps": row["num_steps"] + 1})
    packed_before = (cache_dir / "packed" / "train.features.npy").read_bytes()
    assert cli.main(["pack", str(cache_dir)]) == 2
    err = capsys.readouterr().err
    assert f"{key}: file holds ({row['num_steps']}, 8), manifest says" in err
    assert "run `video-eleatt verify`" in err
    assert (cache_dir / "packed" / "train.features.npy").read_bytes() == packed_before
    assert path.exists()


def test_pack_gives_identical_features(tmp_path):
    cache_dir = _cache(tmp_path)
    for i, steps in enumerate([3, 1, 5]):
        _write(cache_dir, f"c{i}/v.avi", steps, label=i, seed=i)
    write_failure(cache_dir, "c9/v.avi", 0, "corrupt")
    pack_cache(cache_dir)
    packed = open_features(cache_dir)
    assert isinstance(packed, PackedFeatureCache)
    assert isinstance(open_features(cache_dir / "packed"), PackedFeatureCache)
    plain = FeatureCache(cache_dir)
    assert packed.ok_keys() == plain.ok_keys() == ["c0/v.avi", "c1/v.avi", "c2/v.avi"]
    assert packed.feature_dim == 4 and packed.class_names == plain.class_names
    for key in plain.ok_keys():
        a, b = plain.load(key), packed.load(key)
        for name in ("features", "frame_indices", "timestamps"):
            assert torch.equal(getattr(a, name), getattr(b, name))
        assert (a.fps, a.num_frames, a.duration, a.label) == (
            b.fps,
            b.num_frames,
            b.duration,
            b.label,
        )
    array = np.load(cache_dir / "packed" / "all.features.npy", mmap_mode="r")
    assert array.shape == (9, 4) and array.dtype == np.float16
    _write(cache_dir, "c3/v.avi", 2)  # the packed form is now stale
    with pytest.warns(UserWarning, match="older than"):
        assert type(open_features(cache_dir)) is FeatureCache


def test_open_features_on_a_non_cache_says_what_it_expects(tmp_path):
    with pytest.raises(CacheError, match="not a feature cache"):
        open_features(tmp_path)


def test_import_npy_features(tmp_path):
    from video_eleatt.features.cli import import_main

    source = tmp_path / "video_features_out"
    source.mkdir()
    rng = np.random.default_rng(0)
    arrays = {"v_walk_01": rng.normal(size=(6, 8)), "v_run_01": rng.normal(size=(4, 8))}
    for stem, array in arrays.items():  # v-iashin/video_features naming, with sidecars
        np.save(source / f"{stem}_resnet.npy", array.astype(np.float32))
        np.save(source / f"{stem}_fps.npy", np.array(25.0))
    np.save(source / "v_run_01_timestamps_ms.npy", np.array([0.0, 40.0, 80.0, 120.0]))
    (source / "nested").mkdir()
    np.save(source / "nested" / "v_jump_01.npy", rng.normal(size=(3, 5)))  # wrong D
    labels = tmp_path / "list.txt"
    labels.write_text(
        "walk/v_walk_01.avi 0\nrun/v_run_01.avi 1\njump/v_jump_01.avi 2\njump/v_gone.avi 2\n"
    )
    code = import_main(
        [
            "--features_dir",
            str(source),
            "--labels",
            str(labels),
            "--output_dir",
            str(tmp_path / "cache"),
            "--fps",
            "2.0",
        ]
    )
    assert code == 0
    cache = open_features(tmp_path / "cache")
    assert cache.ok_keys() == ["run/v_run_01.avi", "walk/v_walk_01.avi"]
    assert cache.class_names == ["0", "1", "2"] and cache.feature_dim == 8
    walk = cache.load("walk/v_walk_01.avi")
    np.testing.assert_array_equal(walk.features.numpy(), arrays["v_walk_01"].astype(np.float16))
    assert walk.label == 0 and walk.fps == 25.0
    assert walk.timestamps.tolist() == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]  # step / --fps
    assert cache.load("run/v_run_01.avi").timestamps.tolist() == [0.0, 0.04, 0.08, 0.12]
    failed = cache.failed()
    assert "expected (T, 8)" in failed["jump/v_jump_01.avi"]
    assert "no .npy" in failed["jump/v_gone.avi"]
    assert "imported from" in cache.config["note"]
    assert verify_cache(tmp_path / "cache").problems == {}


def test_import_csv_with_class_names(tmp_path):
    from video_eleatt.features.importer import import_npy_features, read_label_list

    source = tmp_path / "npy"
    (source / "b").mkdir(parents=True)
    np.save(source / "b" / "x.npy", np.ones((2, 3)))  # mirrors the dataset: b/x.mp4 -> b/x.npy
    np.save(source / "y.mp4.npy", np.zeros((1, 3)))
    labels = tmp_path / "labels.csv"
    labels.write_text("video,class\nb/x.mp4,swim\ny.mp4,dive\n")
    entries, class_names = read_label_list(labels)
    assert entries == [("b/x.mp4", 1), ("y.mp4", 0)] and class_names == ["dive", "swim"]
    summary = import_npy_features(
        source, entries, class_names, output_root=tmp_path / "out", name="toy"
    )
    assert summary.ok == 2 and not summary.failures
    assert os.path.basename(summary.cache_dir).startswith("toy_imported_")
    assert FeatureCache(summary.cache_dir).load("y.mp4").features.shape == (1, 3)
