"""Fast-path settings: the parity check, automatic precision selection and its report, the
per-frame reference pipeline (PIL) against the fast float32 path, and the allocator setting."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from devices import DEVICES
from video_factory import write_video_folder

from video_eleatt.features import extract, tuning
from video_eleatt.features import precision as precision_module
from video_eleatt.features.backbones import BackboneConfig, build_backbone
from video_eleatt.features.config import ExtractConfig
from video_eleatt.features.precision import parity_check, probe_frames, reference_features
from video_eleatt.features.preprocess import FramePreprocess, normalize_frames, pil_transform
from video_eleatt.features.runner import FeatureRunner
from video_eleatt.video.sampling import SamplingConfig

TINY = BackboneConfig("test_resnet", "timm", weights="random")


@pytest.fixture(scope="module")
def backbone():
    return build_backbone(TINY)


@pytest.fixture(scope="module")
def frames(backbone):
    return probe_frames(backbone.preprocess, num_frames=6)  # (6, 3, h, w) uint8


def test_probe_frames_are_deterministic_crop_sized_uint8(backbone, frames):
    height, width = backbone.preprocess.crop_size
    assert frames.shape == (6, 3, height, width) and frames.dtype == torch.uint8
    assert torch.equal(frames, probe_frames(backbone.preprocess, num_frames=6))
    assert frames.float().std() > 30  # varied content, not a flat image


def test_parity_check_float32_fast_path_matches_nchw(backbone, frames):
    report = parity_check(backbone, frames, torch.device("cpu"), "float32")
    assert report.num_frames == 6 and report.passed
    assert report.min_cosine == pytest.approx(1.0, abs=1e-6)
    assert report.max_relative_error < 1e-4  # channels_last vs NCHW: float32 rounding only
    assert report.min_cosine <= report.mean_cosine <= 1.0 + 1e-9


def test_parity_check_measures_bfloat16_error_against_float64_recomputation(backbone, frames):
    report = parity_check(backbone, frames, torch.device("cpu"), "bfloat16")
    fast = FeatureRunner(backbone, torch.device("cpu"), "bfloat16")(frames).double()
    reference = reference_features(backbone, frames).double()
    cosine = torch.nn.functional.cosine_similarity(fast, reference, dim=1)
    relative = (fast - reference).norm(dim=1) / reference.norm(dim=1)
    assert report.min_cosine == pytest.approx(float(cosine.min()), abs=1e-9)
    assert report.mean_cosine == pytest.approx(float(cosine.mean()), abs=1e-9)
    assert report.max_relative_error == pytest.approx(float(relative.max()), rel=1e-6)
    assert 0 < report.max_relative_error < 0.05  # bfloat16 differs, but not wildly


def test_parity_check_fails_a_wrong_fast_path(backbone, frames, monkeypatch):
    launch = FeatureRunner.launch

    def noisy(self, batch):
        outputs = launch(self, batch)
        return outputs + outputs.std() * torch.randn_like(outputs)

    monkeypatch.setattr(FeatureRunner, "launch", noisy)
    report = parity_check(backbone, frames, torch.device("cpu"), "float32")
    assert not report.passed and report.min_cosine < 0.999
    assert "FAILS" in report.describe()


@pytest.mark.parametrize("device", ["cpu", "cuda"])  # the choice itself needs no GPU
def test_auto_precision_candidate_per_device(device):
    """``precision: auto`` tries float16 autocast on CUDA, bfloat16 on a CPU that computes it
    natively, else float32; an explicit precision is used as given on every device."""
    target = torch.device(device)
    expected = {
        "cuda": "float16",
        "cpu": "bfloat16" if precision_module.cpu_has_native_bfloat16() else "float32",
    }[device]
    assert precision_module.candidate_precision(target) == expected
    # without a backbone (naming a cache before any weights are loaded) the candidate is used
    assert precision_module.resolve_precision(ExtractConfig(precision="auto"), target) == expected
    for precision in ("float32", "bfloat16", "float16"):
        assert (
            precision_module.resolve_precision(ExtractConfig(precision=precision), target)
            == precision
        )


@pytest.mark.parametrize("device", DEVICES)
def test_runner_on_each_device_matches_float32_nchw(backbone, frames, device):
    """The fast path where it runs (channels_last, folded BatchNorm; on CUDA pinned host
    memory, an asynchronous copy and float16 autocast), in float32 and in ``auto``'s
    candidate, against the float32 NCHW reference on the CPU."""
    target = torch.device(device)
    reference = reference_features(backbone, frames).double()  # (N, D)
    for precision in dict.fromkeys(["float32", precision_module.candidate_precision(target)]):
        runner = FeatureRunner(backbone, target, precision)
        launched = runner.launch(frames)
        assert launched.device.type == target.type
        fast = runner.collect(launched).double()  # (N, D) on the CPU
        cosine = torch.nn.functional.cosine_similarity(fast, reference, dim=1)
        relative = (fast - reference).norm(dim=1) / reference.norm(dim=1)
        assert float(cosine.min()) >= 0.999, (precision, cosine)  # the parity threshold
        if precision == "float32" and target.type == "cpu":
            assert float(relative.max()) < 1e-4  # rounding only
        else:  # reduced precision really ran (TF32 convolutions count on a GPU)
            assert 0 < float(relative.max()) < 0.05, (precision, relative)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("throughput")
    write_video_folder(root / "v", ["a.mp4"], num_frames=[6], fps=8.0)
    return root / "v"


def _config(videos, tmp_path, **overrides):
    return ExtractConfig(
        videos=str(videos),
        backbone=TINY,
        sampling=SamplingConfig(mode="all"),
        batch_size=4,
        chunk_size=4,
        num_workers=1,
        device="cpu",
        progress=False,
        output_root=str(tmp_path / "features"),
        tune_malloc=False,  # process-wide; tested on its own below
        **overrides,
    )


def test_auto_uses_reduced_precision_where_parity_holds_and_refuses_it_where_not(
    videos, tmp_path, monkeypatch, capsys
):
    # machine-independent: pretend this CPU has native bfloat16
    monkeypatch.setattr(precision_module, "cpu_has_native_bfloat16", lambda: True)
    fast = extract.run_extraction(_config(videos, tmp_path))
    assert fast.ok == 1 and fast.settings["precision"] == "bfloat16"
    folded = fast.settings["folded_batchnorms"]
    assert folded == 15  # every BatchNorm of test_resnet follows a convolution
    assert (
        f"bfloat16 on cpu, channels_last, inference_mode, {folded} BatchNorms folded into their "
        "convolutions, batch 4" in fast.report()
    )
    assert "passes min cosine >= 0.999" in fast.report()

    refused = extract.run_extraction(_config(videos, tmp_path, parity_threshold=1.5))
    assert refused.settings["precision"] == "float32"
    assert refused.settings["reduced_precision_refused"]
    assert "FAILS min cosine >= 1.5" in refused.report()
    assert "settings: float32 on cpu" in capsys.readouterr().err  # said even without progress
    # the precision is part of the cache identity: the two runs never share a cache
    assert refused.cache_dir != fast.cache_dir
    recorded = [
        json.loads((path / "config.json").read_text())["features"]["precision"]
        for path in (tmp_path / "features").iterdir()
    ]
    assert sorted(recorded) == ["bfloat16", "float32"]


def test_explicit_precision_is_used_without_a_check(videos, tmp_path, monkeypatch):
    monkeypatch.setattr(precision_module, "parity_check", None)  # would fail if called
    summary = extract.run_extraction(_config(videos, tmp_path, precision="float32"))
    assert summary.settings["precision"] == "float32" and summary.settings["parity"] is None


def test_reference_pipeline_matches_fast_float32_path(backbone):
    config = backbone.preprocess
    height, width = config.crop_size
    short = config.resize_size
    assert isinstance(short, int)
    generator = torch.Generator().manual_seed(0)
    # frames already at the resize size: both pipelines skip the resize, so they must agree
    # to float32 rounding; then a real downscale, where PIL's rounding differs by <= 1 level
    exact = torch.randint(0, 256, (3, short, short + 40, 3), dtype=torch.uint8, generator=generator)
    resized = torch.randint(0, 256, (3, 120, 200, 3), dtype=torch.uint8, generator=generator)
    reference_model = backbone.model.float().to(memory_format=torch.contiguous_format)
    pil = pil_transform(config)
    runner = FeatureRunner(backbone, torch.device("cpu"), "float32")
    for source, level_tolerance in ((exact, 0), (resized, 1)):
        from PIL import Image

        reference_images = torch.stack([pil(Image.fromarray(f.numpy())) for f in source])
        uint8 = FramePreprocess(config, output="uint8")(source)  # (3, 3, h, w)
        assert uint8.shape == (3, 3, height, width)
        ours = normalize_frames(uint8, config)
        levels = (ours - reference_images) * torch.tensor(config.std).view(1, 3, 1, 1) * 255
        assert levels.abs().max() <= level_tolerance + 1e-3
        if level_tolerance == 0:
            with torch.no_grad():
                reference = reference_model.to(memory_format=torch.contiguous_format)(
                    reference_images
                )
            fast = runner(uint8)
            np.testing.assert_allclose(fast.numpy(), reference.numpy(), rtol=1e-4, atol=1e-5)


def test_tune_malloc_sets_the_worker_environment(monkeypatch):
    import ctypes

    for name in tuning.MALLOC_ENV:
        monkeypatch.delenv(name, raising=False)
    try:
        assert tuning.tune_malloc() is True  # glibc on this Linux
        assert {name: os.environ[name] for name in tuning.MALLOC_ENV} == tuning.MALLOC_ENV
    finally:  # glibc's defaults back, for the tests that run after this one
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(tuning._M_MMAP_MAX, 65536)
        libc.mallopt(tuning._M_TRIM_THRESHOLD, 128 * 1024)


def test_fold_batchnorm_is_exact_in_float64_and_leaves_the_model_alone():
    import timm

    from video_eleatt.features.backbones import fold_batchnorm

    torch.manual_seed(0)
    model = timm.create_model("test_resnet", num_classes=0).double()
    for module in model.modules():  # non-trivial statistics, as after training
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.5, 0.5)
    model.eval()
    before = {name: value.clone() for name, value in model.state_dict().items()}
    folded, count = fold_batchnorm(model)
    assert count == 15 and folded is not model
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model(x), rtol=1e-10, atol=1e-10)
    after = model.state_dict()
    assert all(torch.equal(before[name], after[name]) for name in before)

    class DataDependent(torch.nn.Module):  # fx cannot trace an if on a tensor's value
        def __init__(self):
            super().__init__()
            self.conv, self.bn = torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4)

        def forward(self, x):
            return self.bn(self.conv(x)) if x.sum() > 0 else x

    untraceable = DataDependent().eval()
    assert fold_batchnorm(untraceable) == (untraceable, 0)
    training = timm.create_model("test_resnet", num_classes=0).train()
    assert fold_batchnorm(training) == (training, 0)  # batch statistics: nothing to fold
