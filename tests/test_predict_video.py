"""``video-eleatt predict --checkpoint``: raw videos classified with the recorded pipeline.

Uses the checkpoints of the reduced demo (tests/test_demo_main.py; rerun here when this file
runs alone, which reuses whatever is already finished).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from test_demo_main import run_quick_demo

from video_eleatt.cli import main as cli_main
from video_eleatt.demo.synth_config import DEFAULT_CLASSES
from video_eleatt.inference.predict import load_predictor, predict_video, video_features

LINE = re.compile(r"^  (\d)\. (\S+)\s+([0-9.]+)$")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict:
    import contextlib
    import io

    base = tmp_path_factory.getbasetemp() / "quick_demo"
    data_dir, output_dir = base / "data", base / "runs"
    if not (output_dir / "demo_summary.json").is_file():  # test_demo_main.py did not run
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            code, data_dir, output_dir = run_quick_demo(base)
        assert code == 0
    dataset = data_dir / "motion_quick_v2"
    checkpoint = output_dir / "runs/eleatt_gru/split-default/seed-0/checkpoints/last.ckpt"
    baseline = output_dir / "runs/baseline_gru/split-default/seed-0/checkpoints/last.ckpt"
    cache_dir = next((data_dir / "features" / "motion_quick_v2").glob("ucf101_*"))
    return {"dataset": dataset, "ckpt": checkpoint, "baseline": baseline, "cache": cache_dir}


def _video(demo: dict, name: str) -> Path:
    return demo["dataset"] / "UCF-101" / name.split("_")[1] / name


# How far our pipeline may be from the plain one below, by the precision the cache records:
# float32 differs by rounding (then float16 storage), reduced precision by up to its parity
# threshold (per-frame cosine 0.999).
PROBABILITY_TOLERANCE = {"float32": 1e-3, "bfloat16": 3e-2, "float16": 3e-2}
MIN_COSINE = {"float32": 0.99999, "bfloat16": 0.999, "float16": 0.999}


def independent_features(cache_dir: Path, video: Path) -> tuple[list[int], torch.Tensor]:
    """The video's frame indices and (T, D) features computed without the project's decoder,
    sampler or fast path: every frame decoded by a plain sequential PyAV decode, the
    "uniform" frames picked by hand, the backbone rebuilt from the cache's record and run
    unfolded in float32 NCHW, the result rounded to the cache's storage dtype."""
    import json

    import av

    from video_eleatt.features.backbones import BackboneConfig, build_backbone
    from video_eleatt.features.preprocess import FramePreprocess, PreprocessConfig, normalize_frames

    features_config = json.loads((cache_dir / "config.json").read_text())["features"]
    with av.open(str(video)) as container:
        # one thread, as the ground truth of tests/video_factory.py decodes: a later fork (the
        # pools' workers) must not inherit a codec context whose threads it does not have
        container.streams.video[0].codec_context.thread_count = 1
        decoded = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    sampling = features_config["sampling"]
    assert sampling["mode"] == "uniform"  # constant frame rate: the frame at (k + 0.5) * D / N
    count, wanted = len(decoded), sampling["num_frames"]
    indices = [int((k + 0.5) * count / wanted) for k in range(wanted)]
    recorded = features_config["backbone"]
    assert recorded["weights"] == "random-init seed 0"
    backbone = build_backbone(
        BackboneConfig(
            recorded["name"], recorded["library"], "random", seed=0,
            model_kwargs=recorded.get("model_kwargs", {}),
        )
    )  # fmt: skip
    preprocess = PreprocessConfig(
        **{
            key: tuple(value) if isinstance(value, list) else value
            for key, value in features_config["preprocess"].items()
        }
    )
    frames = FramePreprocess(preprocess)(torch.from_numpy(decoded[indices]))
    with torch.no_grad():
        features = backbone.model.float()(normalize_frames(frames, preprocess).contiguous())
    storage = torch.float16 if features_config["dtype"] == "float16" else torch.float32
    return indices, features.to(storage).float()  # (T, D)


def independent_probabilities(checkpoint: Path, features: torch.Tensor) -> np.ndarray:
    """Class probabilities of the checkpoint's classifier over the whole sequence, float64."""
    from video_eleatt.models.classifier import ClassifierConfig, SequenceClassifier

    saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
    model = SequenceClassifier(ClassifierConfig(**saved["video_eleatt"]["model"])).eval()
    prefix = "classifier."
    model.load_state_dict(
        {k[len(prefix) :]: v for k, v in saved["state_dict"].items() if k.startswith(prefix)}
    )
    with torch.no_grad():
        logits = model(features[None], torch.tensor([len(features)]))[0]
    return torch.softmax(logits.double(), dim=0).numpy()


def _precision(cache_dir: Path) -> str:
    import json

    return json.loads((cache_dir / "config.json").read_text())["features"]["precision"]


def test_predict_prints_top_k_and_draws_the_overlay(demo, tmp_path, capsys):
    videos = [_video(demo, "v_Grow_g01_c01.mp4"), _video(demo, "v_HueBackward_g02_c01.mp4")]
    overlay = tmp_path / "overlay.png"
    code = cli_main(
        [
            "predict",
            "--checkpoint",
            str(demo["ckpt"]),
            *map(str, videos),
            "--top_k",
            "3",
            "--attention_overlay",
            str(overlay),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    tolerance = PROBABILITY_TOLERANCE[_precision(demo["cache"])]
    for video in videos:
        block = out.split(f"{video}: ")[1].splitlines()
        assert block[0] == "6 frames sampled over " + block[0].split(" over ")[1]
        ranked = [LINE.match(line) for line in block[1:4]]
        assert all(ranked), block
        assert [int(m.group(1)) for m in ranked] == [1, 2, 3]
        # the printed classes and probabilities are the checkpoint's on features computed
        # independently of the project's decoder, sampler and backbone path
        _, features = independent_features(demo["cache"], video)
        expected = independent_probabilities(demo["ckpt"], features)  # (C,)
        names = [m.group(2) for m in ranked]
        printed = np.array([float(m.group(3)) for m in ranked])
        np.testing.assert_allclose(
            printed, [expected[DEFAULT_CLASSES.index(n)] for n in names], atol=tolerance
        )
        others = [p for name, p in zip(DEFAULT_CLASSES, expected) if name not in names]
        assert printed[-1] >= max(others) - 2 * tolerance  # no better class left out
        assert list(printed) == sorted(printed, reverse=True)
        png = tmp_path / f"overlay_{video.stem}.png"
        assert f"attention overlay: {png}" in out
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_probabilities_sum_to_one_and_features_match_the_cache(demo):
    from video_eleatt.features.cache import FeatureCache

    predictor = load_predictor(demo["ckpt"])
    video = _video(demo, "v_ShrinkGrow_g01_c01.mp4")
    result = predict_video(predictor, video, top_k=20)
    assert result.probabilities.shape == (8,)
    assert result.probabilities.sum() == pytest.approx(1.0, abs=1e-6)
    assert len(result.top_k) == 8  # top_k is capped at the number of classes
    # Both the recomputed features and the extraction's are those of an independent pipeline
    # (plain PyAV decode, frames picked by hand, unfolded float32 NCHW backbone), each frame.
    indices, expected = independent_features(demo["cache"], video)
    cached = FeatureCache(demo["cache"]).load("UCF-101/ShrinkGrow/v_ShrinkGrow_g01_c01.mp4")
    features, _, frame_indices, _, _ = video_features(predictor, video)
    assert frame_indices.tolist() == cached.frame_indices.tolist() == indices
    min_cosine = MIN_COSINE[_precision(demo["cache"])]
    for name, got in (("predicted", features), ("cached", cached.features.float())):
        cosine = torch.nn.functional.cosine_similarity(got.double(), expected.double(), dim=1)
        assert float(cosine.min()) >= min_cosine, (name, cosine)
    if _precision(demo["cache"]) == "float32":  # rounding only: a float16 ulp at most
        for got in (features, cached.features.float()):
            np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-3, atol=1e-4)


def test_an_undecodable_video_is_named_and_the_others_still_run(demo, tmp_path, capsys):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video")
    good = _video(demo, "v_Shrink_g01_c01.mp4")
    code = cli_main(
        [
            "predict",
            "--checkpoint",
            str(demo["ckpt"]),
            str(broken),
            str(tmp_path / "gone.mp4"),
            str(good),
        ]
    )
    captured = capsys.readouterr()
    assert code == 1
    assert f"{broken}: FAILED" in captured.err
    assert f"{tmp_path / 'gone.mp4'}: FAILED" in captured.err and "no such file" in captured.err
    assert f"{good}: 6 frames sampled" in captured.out
    assert "2 of 3 video(s) could not be classified" in captured.err


def test_checkpoint_without_extraction_configuration_says_how_to_fix(demo, tmp_path, capsys):
    checkpoint = torch.load(demo["ckpt"], map_location="cpu", weights_only=True)
    checkpoint["video_eleatt"].pop("data")
    stripped = tmp_path / "no_data.ckpt"
    torch.save(checkpoint, stripped)
    video = str(_video(demo, "v_Grow_g01_c01.mp4"))
    code = cli_main(["predict", "--checkpoint", str(stripped), video])
    err = capsys.readouterr().err
    assert code == 2
    assert "records no extraction configuration" in err and "--cache" in err
    # The fix works: the cache the model was trained on supplies it.
    code = cli_main(
        ["predict", "--checkpoint", str(stripped), "--cache", str(demo["cache"]), video]
    )
    assert code == 0
    assert "1. " in capsys.readouterr().out


def test_missing_checkpoint_and_overlay_of_a_baseline(demo, tmp_path, capsys):
    video = str(_video(demo, "v_Grow_g01_c01.mp4"))
    assert cli_main(["predict", "--checkpoint", str(tmp_path / "none.ckpt"), video]) == 2
    assert "is not a file" in capsys.readouterr().err
    code = cli_main(
        [
            "predict",
            "--checkpoint",
            str(demo["baseline"]),
            video,
            "--attention_overlay",
            str(tmp_path / "o.png"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "no EleAtt layer" in err
    assert not (tmp_path / "o.png").exists()
