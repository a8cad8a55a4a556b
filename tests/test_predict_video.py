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
from video_eleatt.demo.synth import DEFAULT_CLASSES
from video_eleatt.predict_video import load_predictor, predict_video, video_features

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
    for video in videos:
        block = out.split(f"{video}: ")[1].splitlines()
        assert block[0] == "6 frames sampled over " + block[0].split(" over ")[1]
        ranked = [LINE.match(line) for line in block[1:4]]
        assert all(ranked), block
        assert [int(m.group(1)) for m in ranked] == [1, 2, 3]
        probabilities = [float(m.group(3)) for m in ranked]
        assert probabilities == sorted(probabilities, reverse=True)
        assert {m.group(2) for m in ranked} <= set(DEFAULT_CLASSES)
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
    # The recomputed features are the extraction's: same frames, same values.
    cached = FeatureCache(demo["cache"]).load("UCF-101/ShrinkGrow/v_ShrinkGrow_g01_c01.mp4")
    features, _, frame_indices, _, _ = video_features(predictor, video)
    assert np.array_equal(frame_indices, cached.frame_indices.numpy())
    torch.testing.assert_close(features, cached.features.float(), rtol=2e-2, atol=2e-2)


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
