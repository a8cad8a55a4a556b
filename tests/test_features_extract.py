"""Extraction end to end on generated videos whose frames encode their index: sampling and
features stored, bad files, --strict, resume, --retry_failed, kill -9 then rerun, 1 process vs
2 (--num_processes and torchrun), --parity_check, and a local weights file."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from video_factory import read_indices, write_broken_video, write_vfr_video, write_video_folder

from video_eleatt.datasets import load_index
from video_eleatt.features import backbones, locate
from video_eleatt.features.backbones import BackboneConfig, build_backbone
from video_eleatt.features.cache import FeatureCache
from video_eleatt.features.cli import extract_main, verify_main
from video_eleatt.features.config import parse_extract_config
from video_eleatt.features.entry_file import read_safetensors_header
from video_eleatt.features.identity import features_hash
from video_eleatt.features.layout import CacheError, feature_path
from video_eleatt.features.locate import find_cache, plan_cache_dir
from video_eleatt.features.manifest import read_manifest
from video_eleatt.features.opening import open_features
from video_eleatt.features.preprocess import FramePreprocess, normalize_frames
from video_eleatt.features.runner import FrameBatcher
from video_eleatt.features.tuning import cpu_threads
from video_eleatt.features.verify import verify_cache
from video_eleatt.video.decode import DECODE_REVISION, VideoReader, read_frames
from video_eleatt.video.sampling import SamplingConfig, sample_frame_indices

GOOD = ["a/v0.mp4", "a/v1.mp4", "b/v0.mp4", "b/v2.mkv", "c/v3.mp4", "c/v4.mp4"]
FRAMES = [12, 9, 16, 12, 7, 12]  # 8 fps
BROKEN = {
    "z/zero.mp4": "zero_byte",
    "z/truncated.mp4": "truncated",
    "z/text.mp4": "not_video",
    "z/empty_stream.mp4": "no_frames",
    "z/corrupt.mp4": "corrupt",
    "z/missing.mp4": "missing",
}
BACKBONE = [
    "--backbone.library",
    "timm",
    "--backbone.name",
    "test_resnet",
    "--backbone.weights",
    "random",
]


def _argv(videos, output_root, *extra):
    return [
        "--videos", str(videos), *BACKBONE,
        "--sampling.mode", "fps", "--sampling.fps", "4",
        "--batch_size", "4", "--chunk_size", "4", "--num_workers", "2",
        "--output_root", str(output_root), "--progress", "false", *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    write_video_folder(root / "good", GOOD, num_frames=FRAMES, fps=8.0)
    write_vfr_video(root / "good" / "d" / "vfr.mp4")
    listed = [*GOOD, "d/vfr.mp4"]
    for rel_path, kind in BROKEN.items():
        write_broken_video(root / "good" / rel_path, kind)
    listing = root / "good" / "list.txt"
    lines = [f"{rel_path} {i % 3}" for i, rel_path in enumerate(listed + list(BROKEN))]
    listing.write_text("\n".join(lines) + "\n")
    # a folder of good videos only, for the interruption and multi-process runs
    write_video_folder(root / "clean", GOOD, num_frames=FRAMES, fps=8.0)
    return root


@pytest.fixture(scope="module")
def reference(dataset, tmp_path_factory):
    """One uninterrupted single-process run over the clean videos: every file of its cache."""
    root = tmp_path_factory.mktemp("reference")
    assert extract_main(_argv(dataset / "clean", root)) == 0
    snapshot = _snapshot(_cache_dir(root))
    assert len([key for key in snapshot if key.startswith("features/")]) == len(GOOD)
    return snapshot


def _cache_dir(output_root) -> Path:
    (cache_dir,) = Path(output_root).iterdir()
    return cache_dir


def _snapshot(cache_dir: Path) -> dict[str, bytes]:
    return {
        path.relative_to(cache_dir).as_posix(): path.read_bytes()
        for path in sorted(cache_dir.rglob("*"))
        if path.is_file()
    }


def test_batcher_fills_every_batch_and_pads_the_last():
    batcher = FrameBatcher(4)
    batcher.add("a", 0, torch.full((3, 1), 1))
    batcher.add("b", 0, torch.full((6, 1), 2))
    batches = list(batcher.ready())
    assert [places for _, places in batches] == [
        [("a", 0, 0, 3), ("b", 0, 3, 1)],
        [("b", 1, 0, 4)],
    ]
    batcher.add("c", 0, torch.full((2, 1), 3))
    batcher.drop("c")  # a failed video's queued frames are dropped
    ((frames, places),) = list(batcher.flush())
    assert places == [("b", 5, 0, 1)]
    assert frames.squeeze(1).tolist() == [2, 0, 0, 0]  # padded to the batch size


def test_extract_list_with_bad_files(dataset, tmp_path, capsys):
    videos = dataset / "good" / "list.txt"
    code = extract_main(_argv(videos, tmp_path, "--strict"))
    assert code == 1  # --strict and some videos failed
    err = capsys.readouterr().err
    assert "UNTRAINED" in err and "6 failed" in err and "z/zero.mp4" in err
    cache_dir = _cache_dir(tmp_path)
    assert cache_dir.name.startswith("list_test-resnet_")
    cache = FeatureCache(cache_dir)
    assert cache.ok_keys() == sorted([*GOOD, "d/vfr.mp4"])
    failed = cache.failed()
    assert sorted(failed) == sorted(BROKEN)
    root = dataset / "good"
    # each reason names the file and what is wrong with it (FFmpeg's own words may follow)
    assert failed["z/zero.mp4"] == f"cannot open {root / 'z/zero.mp4'}: the file is empty (0 bytes)"
    assert failed["z/missing.mp4"] == f"cannot open {root / 'z/missing.mp4'}: no such file"
    assert failed["z/empty_stream.mp4"] == (
        f"cannot open {root / 'z/empty_stream.mp4'} as a video: cannot find video stream (the "
        "container has 0 streams, none of them video)"
    )
    assert failed["z/corrupt.mp4"].startswith(
        f"cannot open {root / 'z/corrupt.mp4'} as a video: no frame decodes ("
    )
    for name in ("z/text.mp4", "z/truncated.mp4"):
        assert failed[name].startswith(
            f"cannot open {root / name} as a video (not a video, truncated, or no video "
            "stream): InvalidDataError"
        )
    assert cache.config["untrained"] is True and cache.config["class_names"] == ["0", "1", "2"]

    backbone = build_backbone(BackboneConfig("test_resnet", "timm", "random"))
    preprocess = FramePreprocess(backbone.preprocess)
    sampling = SamplingConfig(mode="fps", fps=4.0)
    for rel_path in cache.ok_keys():
        entry = cache.load(rel_path)
        reader = VideoReader(dataset / "good" / rel_path)
        timestamps = reader.frame_timestamps()
        expected_indices = sample_frame_indices(
            reader.info.num_frames, reader.info.fps, sampling, timestamps
        )
        assert entry.frame_indices.tolist() == expected_indices.tolist(), rel_path
        np.testing.assert_array_equal(entry.timestamps.numpy(), timestamps[expected_indices])
        assert entry.num_frames == reader.info.num_frames and entry.fps == reader.info.fps
        listed_label = ([*GOOD, "d/vfr.mp4"].index(rel_path)) % 3
        assert entry.label == listed_label
        frames = torch.cat([f for _, f in reader.iter_frames(expected_indices)])
        with torch.inference_mode():
            reference = backbone.model(normalize_frames(preprocess(frames), backbone.preprocess))
        assert entry.features.shape == (len(expected_indices), backbone.feature_dim)
        np.testing.assert_allclose(
            entry.features.float().numpy(), reference.numpy(), rtol=2e-3, atol=2e-3
        )
    # VFR (starts 0, .1, .15, .4, .42, .44, .9, 1, 1.5, 1.6 s; average 10 frames / 1.7 s):
    # 1.6 + 1.7 / 10 s at 4 fps -> times 0, .25, ..., 1.75 s -> the frame on screen at each is
    # [0, 2, 5, 5, 7, 7, 8, 9]; 8 samples of 10 frames force no repeat, so the repeats move to
    # free frames, the end pulling back: [0, 2, 4, 5, 6, 7, 8, 9]
    vfr = cache.load("d/vfr.mp4")
    assert vfr.frame_indices.tolist() == [0, 2, 4, 5, 6, 7, 8, 9]
    np.testing.assert_allclose(
        vfr.timestamps.numpy(), [0, 0.15, 0.42, 0.44, 0.9, 1, 1.5, 1.6], atol=1e-6
    )

    # a rerun redoes nothing that is done (only the failed videos are retried)
    stats = {key: os.stat(cache_dir / "features" / f"{key}.safetensors") for key in GOOD}
    assert extract_main(_argv(videos, tmp_path)) == 0  # not strict: failures do not fail
    assert "0 ok, 6 failed, 7 skipped" in capsys.readouterr().err
    for key, before in stats.items():
        after = os.stat(cache_dir / "features" / f"{key}.safetensors")
        assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_unwritable_output_is_a_clear_error(dataset, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    code = extract_main(_argv(dataset / "clean", blocker / "features", "--limit", "1"))
    assert code == 3
    assert f"cannot write {blocker}/features/" in capsys.readouterr().err


@pytest.mark.slow
def test_kill_resume_and_two_processes_match_one_run(dataset, reference, tmp_path):
    videos = dataset / "clean"
    killed_root, ranks_root = tmp_path / "kill", tmp_path / "r2"

    # kill -9 the whole job (main process, decode workers) as soon as one video is done
    process = subprocess.Popen(
        [sys.executable, "-m", "video_eleatt", "extract", *_argv(videos, killed_root)],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=Path(__file__).resolve().parents[1],
    )
    deadline = time.monotonic() + 240
    done: dict = {}
    while time.monotonic() < deadline and process.poll() is None:
        manifests = list(killed_root.glob("*/manifest.jsonl"))
        if manifests and b'"ok"' in manifests[0].read_bytes():
            os.killpg(process.pid, signal.SIGKILL)
            break
        time.sleep(0.002)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    cache_dir = _cache_dir(killed_root)
    done = {k: r for k, r in read_manifest(cache_dir).items() if r["status"] == "ok"}
    assert 0 < len(done) < len(GOOD)
    stats = {key: os.stat(cache_dir / "features" / f"{key}.safetensors") for key in done}

    assert extract_main(_argv(videos, killed_root)) == 0  # resume
    assert _snapshot(cache_dir) == reference  # bit for bit, manifest and config included
    for key, before in stats.items():  # finished videos were not extracted again
        after = os.stat(cache_dir / "features" / f"{key}.safetensors")
        assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)

    argv = _argv(videos, ranks_root, "--num_processes", "2", "--num_workers", "1")
    assert extract_main(argv) == 0
    assert _snapshot(_cache_dir(ranks_root)) == reference
    rows = [json.loads(line) for line in reference["manifest.jsonl"].splitlines()]
    assert [row["rel_path"] for row in rows] == sorted(GOOD)


@pytest.mark.slow
def test_torchrun_with_two_processes_writes_the_cache_of_one(dataset, reference, tmp_path):
    """``torchrun --nproc_per_node 2 -m video_eleatt extract`` on CPU (gloo): ranks from
    torchrun's environment, not --num_processes."""
    torchrun = Path(sys.executable).with_name("torchrun")
    assert torchrun.is_file(), f"torchrun is installed beside {sys.executable}"
    output = tmp_path / "torchrun"
    command = [
        str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "video_eleatt", "extract",
        *_argv(dataset / "clean", output, "--num_workers", "1"),
    ]  # fmt: skip
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=300, cwd=Path(__file__).parents[1]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"{len(GOOD)} ok, 0 failed, 0 skipped" in result.stderr  # rank 0 sums the ranks
    assert _snapshot(_cache_dir(output)) == reference  # bit for bit, manifest included


def test_retry_failed_retries_exactly_the_videos_that_failed(tmp_path, capsys):
    videos = tmp_path / "videos"
    write_video_folder(videos, ["a/good.mp4", "b/fixed.mp4"], num_frames=[12, 10], fps=8.0)
    repaired = (videos / "b/fixed.mp4").read_bytes()
    write_broken_video(videos / "b/fixed.mp4", "corrupt")
    write_broken_video(videos / "c/zero.mp4", "zero_byte")
    argv = _argv(videos, tmp_path / "out", "--num_workers", "1")
    assert extract_main(argv) == 0
    cache_dir = _cache_dir(tmp_path / "out")
    assert sorted(FeatureCache(cache_dir).failed()) == ["b/fixed.mp4", "c/zero.mp4"]
    good = cache_dir / "features" / "a/good.mp4.safetensors"
    good_stat = os.stat(good)
    (videos / "b/fixed.mp4").write_bytes(repaired)  # the damaged video is replaced by a good one
    manifest = (cache_dir / "manifest.jsonl").read_bytes()
    capsys.readouterr()

    assert extract_main([*argv, "--retry_failed", "false"]) == 0
    err = capsys.readouterr().err
    assert "extraction summary: 0 ok, 0 failed, 3 skipped" in err
    assert "  b/fixed.mp4: cannot open" in err  # still listed as failed, with its old reason
    assert (cache_dir / "manifest.jsonl").read_bytes() == manifest

    assert extract_main([*argv, "--retry_failed"]) == 0
    # both failed videos were tried again (one now decodes), the finished one was not
    assert "extraction summary: 1 ok, 1 failed, 1 skipped" in capsys.readouterr().err
    cache = FeatureCache(cache_dir)
    assert cache.ok_keys() == ["a/good.mp4", "b/fixed.mp4"]
    assert list(cache.failed()) == ["c/zero.mp4"]
    after = os.stat(good)
    assert (after.st_ino, after.st_mtime_ns) == (good_stat.st_ino, good_stat.st_mtime_ns)
    # 10 frames at 8 fps sampled at 4 fps: frames 0, 2, 4, 6, 8 of the repaired file
    assert cache.load("b/fixed.mp4").frame_indices.tolist() == [0, 2, 4, 6, 8]


PARITY_LINE = re.compile(
    r"^parity check: (\w+) vs float32 NCHW on (\d+) frames: cosine min ([0-9.]+) mean "
    r"([0-9.]+), relative error max ([0-9.e+-]+) mean ([0-9.e+-]+) \((passes|FAILS) min "
    r"cosine >= ([0-9.]+)\)$",
    re.MULTILINE,
)


def test_parity_check_compares_the_requested_precision_with_float32_and_writes_nothing(
    tmp_path, capsys
):
    videos = tmp_path / "videos"
    write_video_folder(videos, ["a.mp4", "b.mp4"], num_frames=[8, 6], fps=8.0)
    output = tmp_path / "features"
    reports = {}
    for precision, threshold in (("float32", "0.999"), ("bfloat16", "1.0")):
        argv = _argv(videos, output, "--parity_check", "--precision", precision)
        assert extract_main([*argv, "--parity_threshold", threshold]) == 0
        out = capsys.readouterr().out
        (reports[precision],) = PARITY_LINE.findall(out)
        refused = f"{precision} would NOT be used by `precision: auto` for this backbone"
        assert (refused in out) is (precision == "bfloat16")
    assert not output.exists()  # a check only: no cache
    # every sampled frame of both videos (fps 4 of 8: 4 + 3), the requested precision
    float32, bfloat16 = reports["float32"], reports["bfloat16"]
    assert float32[:2] == ("float32", "7") and bfloat16[:2] == ("bfloat16", "7")
    # float32 differs from NCHW float32 by rounding only and passes; bfloat16 (8-bit mantissa)
    # differs by more, which says it really ran, and fails a threshold of 1
    assert float(float32[2]) <= float(float32[3]) <= 1.0 and float(float32[4]) < 1e-4
    assert float32[6:] == ("passes", "0.999")
    assert float(bfloat16[2]) >= 0.999 and 1e-4 < float(bfloat16[4]) < 5e-2
    assert bfloat16[6:] == ("FAILS", "1")


def _pyav_frames(path: Path, frame_indices: list[int]) -> torch.Tensor:
    """Frames ``frame_indices`` of a sequential PyAV decode, uint8 (n, H, W, 3); each frame's
    own pattern is checked to be the frame asked for."""
    import av

    wanted, frames = set(frame_indices), []
    with av.open(str(path)) as container:
        # no decoder threads: a later fork (the pools' workers) must not inherit a codec
        # context whose threads it does not have
        container.streams.video[0].codec_context.thread_count = 1
        for position, frame in enumerate(container.decode(video=0)):
            if position in wanted:
                frames.append(frame.to_ndarray(format="rgb24"))
    stacked = np.stack(frames)
    assert read_indices(stacked) == sorted(frame_indices)
    return torch.from_numpy(stacked)


def test_weights_file_gives_the_features_of_the_model_holding_those_weights(tmp_path):
    import hashlib

    import timm
    from safetensors.torch import save_file

    videos = tmp_path / "videos"
    paths = write_video_folder(videos, ["a.mp4", "b.mp4"], num_frames=[6, 5], fps=8.0)

    def model_with_known_weights(seed: int) -> torch.nn.Module:
        """test_resnet with weights drawn here from ``seed``: timm's initialisation under that
        seed, then BatchNorm scales, shifts and running statistics away from their defaults
        (folding them into the convolutions is part of extraction)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = timm.create_model("test_resnet", pretrained=False, num_classes=0)
            with torch.no_grad():
                for module in model.modules():
                    if isinstance(module, torch.nn.BatchNorm2d):
                        module.weight.uniform_(0.5, 1.5)
                        module.bias.normal_(0.0, 0.1)
                        module.running_mean.normal_(0.0, 0.1)
                        module.running_var.uniform_(0.5, 1.5)
        return model.eval()

    models = {"first": model_with_known_weights(5), "other": model_with_known_weights(6)}
    files = {
        "first.safetensors": models["first"],
        "first.pth": models["first"],
        "other.safetensors": models["other"],
    }
    for name, model in files.items():
        state = {key: value.contiguous() for key, value in model.state_dict().items()}
        if name.endswith(".safetensors"):
            save_file(state, str(tmp_path / name))
        else:
            torch.save(state, tmp_path / name)

    features = {}
    for name in files:
        output = tmp_path / f"out_{name}"
        argv = [
            "--videos", str(videos), "--backbone.library", "timm",
            "--backbone.name", "test_resnet", "--backbone.weights", str(tmp_path / name),
            "--sampling.mode", "all", "--precision", "float32", "--dtype", "float32",
            "--batch_size", "4", "--num_workers", "1", "--output_root", str(output),
            "--progress", "false",
        ]  # fmt: skip
        assert extract_main(argv) == 0
        cache = FeatureCache(_cache_dir(output))
        digest = hashlib.sha256((tmp_path / name).read_bytes()).hexdigest()
        assert cache.config["features"]["backbone"]["weights"] == f"file sha256:{digest}"
        assert cache.config["untrained"] is False
        features[name] = {key: cache.load(key) for key in ("a.mp4", "b.mp4")}

    # the in-memory models with those weights, plain float32 NCHW, on PyAV's frames
    preprocess_config = build_backbone(BackboneConfig("test_resnet", "timm", "random")).preprocess
    preprocess = FramePreprocess(preprocess_config)
    for key, path in zip(("a.mp4", "b.mp4"), paths):
        indices = features["first.safetensors"][key].frame_indices.tolist()
        assert indices == list(range({"a.mp4": 6, "b.mp4": 5}[key]))
        images = normalize_frames(preprocess(_pyav_frames(path, indices)), preprocess_config)
        for name, model in files.items():
            with torch.inference_mode():
                expected = model(images).numpy()  # (T, D)
            got = features[name][key].features.numpy()
            np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4, err_msg=name)
        # the same weights from either format: the same bytes; other weights: other features
        assert np.array_equal(
            features["first.pth"][key].features.numpy(),
            features["first.safetensors"][key].features.numpy(),
        )
        difference = (
            features["other.safetensors"][key].features - features["first.pth"][key].features
        )
        assert difference.abs().max() > 0.1 * features["first.pth"][key].features.abs().max()


CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "extract"


def test_shipped_configs_parse_and_name_their_cache(capsys):
    paths = sorted(CONFIGS.glob("*.yaml"))
    assert {p.stem for p in paths} >= {
        "ntu60_resnet50",
        "jhmdb_resnet50",
        "ucf101_resnet50",
        "hmdb51_resnet50",
        "kinetics400_resnet50",
        "tiny_random",
    }
    for path in paths:
        config = parse_extract_config(["--config", str(path)])
        assert (config.dataset is None) != (config.videos is None), path
    ntu = parse_extract_config(["--config", str(CONFIGS / "ntu60_resnet50.yaml")])
    assert (ntu.backbone.library, ntu.backbone.name, ntu.backbone.weights) == (
        "torchvision",
        "resnet50",
        "IMAGENET1K_V1",
    )
    # named without downloading the weights: identity from the config, size from the model
    cache_dir = plan_cache_dir(CONFIGS / "ntu60_resnet50.yaml")
    assert cache_dir.parent == Path("features") and cache_dir.name.startswith("ntu60_resnet50_")
    with pytest.raises(SystemExit) as info:
        extract_main(["--config", str(CONFIGS / "tiny_random.yaml"), "--print_config"])
    assert info.value.code == 0
    assert "name: test_resnet" in capsys.readouterr().out


def _tiny_extract_config(dataset, tmp_path) -> tuple[Path, str]:
    """The shipped tiny_random.yaml on the clean videos, writing under tmp_path: path, text."""
    text = (CONFIGS / "tiny_random.yaml").read_text()
    text = text.replace("videos: data/demo/videos", f"videos: {dataset / 'clean'}")
    text = text.replace("output_root: features", f"output_root: {tmp_path / 'features'}")
    config = tmp_path / "tiny.yaml"
    config.write_text(text)
    return config, text


def test_extract_from_yaml_and_open_it_by_yaml(dataset, tmp_path):
    config, text = _tiny_extract_config(dataset, tmp_path)
    assert extract_main(["--config", str(config), "--limit", "2", "--progress", "false"]) == 0
    features = open_features(config)
    assert features.ok_keys() == sorted(GOOD)[:2] and features.feature_dim == 96
    # the same config on a CUDA device: "precision: auto" there means float16 autocast, a cache
    # of its own (named here without a GPU); opening it finds the CPU-made one by its identity
    on_cuda = tmp_path / "tiny_cuda.yaml"
    on_cuda.write_text(text + "device: cuda\n")
    identity = {**features.config["features"], "precision": "float16"}
    expected = f"{features.cache_dir.name.rsplit('_', 1)[0]}_{features_hash(identity)}"
    assert plan_cache_dir(on_cuda).name == expected != features.cache_dir.name
    assert open_features(on_cuda).cache_dir == features.cache_dir


def test_a_relative_dataset_root_is_recorded_absolute_so_training_finds_it_from_anywhere(
    dataset, tmp_path, monkeypatch
):
    # A list-format dataset over the clean videos, named by a path relative to the extraction's
    # folder; training later reads its lists through the cache's record alone (data.cache).
    work = tmp_path / "project"
    shutil.copytree(dataset / "clean", work / "data" / "clips")
    lines = [f"{rel_path} {i % 2}" for i, rel_path in enumerate(sorted(GOOD))]
    (work / "data" / "clips" / "train.txt").write_text("\n".join(lines) + "\n")
    monkeypatch.chdir(work)
    argv = [*_argv(work, "features"), "--limit", "1"]
    argv[argv.index("--videos") : argv.index("--videos") + 2] = [
        "--dataset.name", "list", "--dataset.root", "data/clips",
    ]  # fmt: skip
    assert extract_main(argv) == 0
    cache = FeatureCache(_cache_dir(work / "features"))
    assert cache.dataset.root == str(work / "data" / "clips")
    monkeypatch.chdir(tmp_path)  # elsewhere: the recorded root still names the dataset
    assert len(load_index(cache.dataset).records) == len(GOOD)


def _refuse_to_build_backbones(monkeypatch) -> None:
    """Every way of building a backbone fails: what runs now may read files only."""

    def refuse(*args, **kwargs):
        raise AssertionError("a backbone was built to resolve an extract config")

    monkeypatch.setattr(backbones, "_timm_backbone", refuse)
    monkeypatch.setattr(backbones, "_torchvision_backbone", refuse)
    for name, module in list(sys.modules.items()):
        if name.startswith("video_eleatt") and hasattr(module, "build_backbone"):
            monkeypatch.setattr(module, "build_backbone", refuse)


def test_an_extract_config_finds_its_cache_without_building_a_backbone(
    dataset, tmp_path, monkeypatch, capsys
):
    config, text = _tiny_extract_config(dataset, tmp_path)
    assert extract_main(["--config", str(config), "--limit", "2"]) == 0
    made = _cache_dir(tmp_path / "features")
    err = capsys.readouterr().err
    assert f"cache: {made}" in err  # extract names the folder it made
    # not a terminal: progress comes as plain lines, not carriage-return updates
    assert "\r" not in err and re.search(r"^extract clean: 2/2 videos \(100\.0 %\)", err, re.M)
    (request,) = json.loads((made / "requests.json").read_text())["requests"]
    assert request["backbone"] == {
        "library": "timm",
        "name": "test_resnet",
        "weights": "random",
        "seed": 0,
    }
    made_in = json.loads((made / "config.json").read_text())["features"]["precision"]

    _refuse_to_build_backbones(monkeypatch)
    with pytest.raises(AssertionError, match="a backbone was built"):
        plan_cache_dir(config)  # the refusal works: naming a cache to be made builds one
    assert find_cache(config) == made
    assert open_features(config).cache_dir == made  # training's `data.cache: <extract yaml>`
    assert verify_main([str(config)]) == 0
    assert f"{made}: 2 ok, 0 failed at extraction" in capsys.readouterr().out
    # the precision written in the config must be the cache's; another sampling is another cache
    same = tmp_path / "same.yaml"
    same.write_text(text + f"precision: {made_in}\n")
    assert find_cache(same) == made
    other = "float16" if made_in != "float16" else "float32"
    elsewhere = tmp_path / "other_precision.yaml"
    elsewhere.write_text(text + f"precision: {other}\n")
    with pytest.raises(CacheError, match=f"does not exist yet.*another precision: {made}"):
        find_cache(elsewhere)
    slower = tmp_path / "slower.yaml"
    slower.write_text(text.replace("fps: 4.0", "fps: 2.0"))
    prefix = made.name.rsplit("_", 1)[0]
    with pytest.raises(CacheError, match=rf"names cache .*/{prefix}_<hash8>, which does not"):
        open_features(slower)

    # precision: auto on another kind of machine made a cache of its own: this machine's wins
    twin = made.with_name(f"{prefix}_00000000")
    shutil.copytree(made, twin)
    twin_config = json.loads((twin / "config.json").read_text())
    twin_config["features"]["precision"] = other
    (twin / "config.json").write_text(json.dumps(twin_config))
    monkeypatch.setattr(locate, "candidate_precision", lambda device: other)
    assert find_cache(config) == twin
    monkeypatch.setattr(locate, "candidate_precision", lambda device: made_in)
    assert find_cache(config) == made
    monkeypatch.setattr(locate, "candidate_precision", lambda device: "neither")
    with pytest.raises(CacheError, match=r"several caches .*features\.precision: .*`precision:`"):
        find_cache(config)
    shutil.rmtree(twin)

    # a cache from before requests were recorded: one line says to run extract once, which
    # only records the request (every video is already there)
    (made / "requests.json").unlink()
    with pytest.raises(CacheError, match="run `video-eleatt extract --config <this config>` once"):
        find_cache(config)
    monkeypatch.undo()
    assert extract_main(["--config", str(config), "--limit", "2", "--progress", "false"]) == 0
    assert "0 ok, 0 failed, 2 skipped" in capsys.readouterr().err
    _refuse_to_build_backbones(monkeypatch)
    assert find_cache(config) == made


def test_cpu_threads_divide_the_cores_among_local_processes(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    assert cpu_threads(0, 1) == 4
    assert cpu_threads(0, 2) == 2
    assert cpu_threads(0, 3) == 1
    assert cpu_threads(0, 8) == 1  # never 0
    assert cpu_threads(3, 2) == 3  # an explicit value wins
    with pytest.raises(ValueError, match="threads must be >= 0"):
        cpu_threads(-1, 1)


def test_extract_command_asks_openmp_for_passive_waiting(monkeypatch):
    from video_eleatt import cli

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    with pytest.raises(SystemExit):
        cli.main(["extract", "--help"])
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")  # the user's choice is kept
    with pytest.raises(SystemExit):
        cli.main(["extract", "--help"])
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


def test_a_cache_from_before_frame_exact_decoding_is_named_stale(dataset, tmp_path, capsys):
    from video_eleatt.video.decode import DECODE_VERSION

    argv = _argv(dataset / "clean", tmp_path, "--limit", "2")
    assert extract_main(argv) == 0
    current = _cache_dir(tmp_path)
    # the same cache as the decode path before this one wrote it: no "decode" in its identity
    config = json.loads((current / "config.json").read_text())
    assert config["features"]["decode"] == DECODE_VERSION
    del config["features"]["decode"]
    config["features_hash"] = features_hash(config["features"])
    old = current.with_name(f"{current.name.rsplit('_', 1)[0]}_{config['features_hash'][:8]}")
    current.rename(old)
    (old / "config.json").write_text(json.dumps(config))

    assert "before frame-exact decoding" in verify_cache(old).stale
    assert verify_main([str(old)]) == 1
    assert "STALE: every entry was made before frame-exact decoding" in capsys.readouterr().out
    with pytest.warns(UserWarning, match="Re-extract it: `video-eleatt extract"):
        open_features(old)
    with pytest.raises(Exception, match="Re-extract: `video-eleatt extract --config"):
        find_cache(parse_extract_config(argv))
    capsys.readouterr()
    assert extract_main(argv) == 0  # extracts again, into the current identity's folder
    err = capsys.readouterr().err
    assert f"note: {old} holds this config's features" in err and str(current) in err
    assert verify_cache(current).stale is None


def test_damaged_video_keeps_its_clean_frames_and_records_the_loss(tmp_path, capsys):
    from video_factory import read_indices, write_conformance_video

    videos = tmp_path / "videos"
    path = write_conformance_video(videos, "h264_zeroed_middle")
    clean = [*range(24), *range(40, 60)]  # frames 24-39 are lost (test_video_conformance)
    write_video_folder(videos, ["fine.mp4"], num_frames=12, fps=8.0)
    argv = [*_argv(videos, tmp_path / "out"), "--sampling.mode", "all"]
    # the strict behaviour: the first loss fails the video, and the row says which revision
    assert extract_main([*argv, "--on_damage", "fail"]) == 0
    cache = FeatureCache(_cache_dir(tmp_path / "out"))
    assert cache.ok_keys() == ["fine.mp4"]
    reason = cache.failed()[path.name]
    assert str(path) in reason and "frame 24 " in reason
    row = read_manifest(cache.cache_dir)[path.name]
    assert row["decode_revision"] == DECODE_REVISION
    # a rerun that does not retry failures leaves it (same revision) ...
    assert extract_main([*argv, "--retry_failed", "false"]) == 0
    assert FeatureCache(_cache_dir(tmp_path / "out")).ok_keys() == ["fine.mp4"]
    capsys.readouterr()
    # ... and the default keeps the clean frames, the loss recorded
    assert extract_main(argv) == 0
    cache = FeatureCache(_cache_dir(tmp_path / "out"))
    assert cache.ok_keys() == sorted(["fine.mp4", path.name])
    entry = cache.load(path.name)
    assert entry.frame_indices.tolist() == list(range(44))
    np.testing.assert_allclose(entry.timestamps, np.array(clean) / 25, atol=1e-6)  # the gap
    damage = {
        "lost_frames": 16,
        "frames_in_file": 60,
        "first_lost_s": 0.96,
        "last_lost_s": 1.56,
        "reason": "the decoder flagged the frame corrupt (concealed errors)",
    }
    row = read_manifest(cache.cache_dir)[path.name]
    assert row["damage"] == damage and row["timestamps"] == "container"
    header = read_safetensors_header(feature_path(cache.cache_dir, path.name))
    assert json.loads(header["__metadata__"]["decode"])["damage"] == damage
    # the features are those of exactly the clean frames (pixels checked through the reader)
    _, _, _, frames = read_frames(path, lambda info, times: np.arange(info.num_frames))
    assert read_indices(frames.numpy()) == clean


def test_a_lost_fraction_outside_0_1_is_refused_before_any_work(tmp_path, capsys):
    write_video_folder(tmp_path / "videos", ["a.mp4"], num_frames=12, fps=8.0)
    argv = [*_argv(tmp_path / "videos", tmp_path / "out"), "--max_lost_fraction", "1.5"]
    with pytest.raises(SystemExit) as caught:
        extract_main(argv)
    assert caught.value.code == 2
    assert "max_lost_fraction must be a share of a video's frames, in [0, 1]; got 1.5" in (
        capsys.readouterr().err
    )
    assert not (tmp_path / "out").exists()


def test_rows_an_older_decode_revision_failed_or_cut_are_decoded_again(tmp_path):
    videos = tmp_path / "videos"
    write_video_folder(videos, ["a.mp4", "b.mp4", "c.mp4"], num_frames=12, fps=8.0)
    argv = [*_argv(videos, tmp_path / "out"), "--retry_failed", "false"]
    assert extract_main(argv) == 0
    cache_dir = _cache_dir(tmp_path / "out")
    rows = read_manifest(cache_dir)
    # as revision 2 left them: a refusal (packed B-frames) and a partial prefix
    old_failure = {**rows["a.mp4"], "status": "failed", "error": "cannot decode a.mp4 exactly"}
    del old_failure["decode_revision"]
    old_partial = {**rows["b.mp4"], "partial": {"frames_kept": 5, "frames_in_file": 12}}
    del old_partial["decode_revision"]
    with open(cache_dir / "manifest.jsonl", "a") as manifest:
        for row in (old_failure, old_partial):
            manifest.write(json.dumps(row) + "\n")
    assert extract_main(argv) == 0
    rows = read_manifest(cache_dir)
    assert all(rows[key]["status"] == "ok" for key in ("a.mp4", "b.mp4", "c.mp4"))
    assert rows["a.mp4"]["decode_revision"] == DECODE_REVISION == rows["b.mp4"]["decode_revision"]
    assert "partial" not in rows["b.mp4"]
