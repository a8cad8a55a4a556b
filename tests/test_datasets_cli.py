"""`video-eleatt datasets` and `video-eleatt describe` on tiny fabricated trees."""

from __future__ import annotations

import json

import pytest
from test_datasets_readers import make_hmdb_style, make_kinetics, make_ucf101, write

from video_eleatt.datasets.cli import datasets_main, describe_main, spec_from_config
from video_eleatt.datasets.formats import FORMATS
from video_eleatt.datasets.index import DatasetError, DatasetSpec


def test_datasets_lists_every_format_with_splits_and_layout(capsys):
    assert datasets_main([]) == 0
    out = capsys.readouterr().out
    for name, dataset_format in FORMATS.items():
        assert f"\n  {name:<11}  {dataset_format.summary}\n" in out
    assert "ntu120: " in out and "  splits:    csub, cset (default csub)\n" in out
    assert "    root/ucfTrainTestlist/classInd.txt" in out


def test_datasets_one_format_and_unknown_name(capsys):
    assert datasets_main(["HMDB51"]) == 0
    out = capsys.readouterr().out
    assert "hmdb51: HMDB51" in out and "ucf101:" not in out
    assert datasets_main(["hmdb"]) == 2
    assert "unknown dataset 'hmdb'; choose one of: ucf101, hmdb51" in capsys.readouterr().err


def ucf101_split2_table(root) -> list[str]:
    """What describe prints for make_ucf101's tree, split 2."""
    return [
        f"ucf101 at {root}, split 2: 3 classes, 6 videos, 0 missing",
        "",
        "subset   videos",
        "train         3",
        "test          3",
        "",
        "id class              train    test",
        "0 ApplyEyeMakeup         1       1",
        "1 HandstandPushups       1       1",
        "2 YoYo                   1       1",
    ]


def test_describe_ucf101_counts_per_subset_and_class(tmp_path, capsys):
    make_ucf101(tmp_path)
    argv = ["--dataset.name", "ucf101", "--dataset.root", str(tmp_path), "--dataset.split", "2"]
    assert describe_main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == ucf101_split2_table(tmp_path)


def test_describe_old_option_names_still_work_with_a_one_line_note(tmp_path, capsys):
    make_ucf101(tmp_path)
    assert describe_main(["--dataset", "ucf101", "--root", str(tmp_path), "--split=2"]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines() == ucf101_split2_table(tmp_path)
    assert captured.err.splitlines() == [
        "video-eleatt describe: note: --dataset is now --dataset.name",
        "video-eleatt describe: note: --root is now --dataset.root",
        "video-eleatt describe: note: --split is now --dataset.split",
    ]
    config = write(tmp_path / "config.yaml", f"dataset: {{name: ucf101, root: {tmp_path}}}\n")
    assert describe_main(["--config", str(config), "--annotations", "ucfTrainTestlist"]) == 0
    captured = capsys.readouterr()
    assert "note: --annotations is now --dataset.annotations" in captured.err
    assert f"ucf101 at {tmp_path}, split 1: 3 classes" in captured.out


def test_describe_hmdb51_unused_column_and_kinetics_missing(tmp_path, capsys):
    make_hmdb_style(tmp_path / "hmdb", "videos")
    assert (
        describe_main(["--dataset.name", "hmdb51", "--dataset.root", str(tmp_path / "hmdb")]) == 0
    )
    out = capsys.readouterr().out
    assert "subset   videos\ntrain         3\ntest          3\nunused        1\n" in out
    assert "  train    test  unused\n" in out
    assert "\n2 ride_bike        1       1       1\n" in out
    make_kinetics(tmp_path / "k")
    assert (
        describe_main(["--dataset.name", "kinetics400", "--dataset.root", str(tmp_path / "k")]) == 0
    )
    out = capsys.readouterr().out
    assert ": 3 classes, 5 videos, 1 missing\n" in out
    assert (
        "missing (listed but absent): 1, e.g.\n  train/abseiling/gone_clip_000005_000015.mp4\n"
        in out
    )
    assert "  (no label)                                0       0       1" in out


@pytest.mark.parametrize(
    "text",
    [
        "dataset: {name: ucf101, root: ROOT, split: 2}\n",
        "data:\n  class_path: x.DataModule\n  init_args:\n    batch_size: 4\n"
        "    dataset: {name: ucf101, root: ROOT, split: 2}\n",
        "data:\n  dataset:\n    name: ucf101\n    root: ROOT\n    split: 2\n",
        "dataset: ucf101\nroot: ROOT\nsplit: 2\n",
        # the DataModule's own split overrides the spec's
        "data:\n  init_args:\n    split: 2\n    dataset: {name: ucf101, root: ROOT, split: 3}\n",
        # no spec: the dataset recorded by the feature cache
        "data:\n  init_args:\n    cache: ROOT/cache\n    split: 2\n",
    ],
)
def test_spec_found_in_config(tmp_path, capsys, text):
    make_ucf101(tmp_path)
    cache_spec = {"name": "ucf101", "root": str(tmp_path), "split": "1", "annotations": None}
    write(tmp_path / "cache/config.json", json.dumps({"dataset": cache_spec, "feature_dim": 8}))
    config = write(tmp_path / "config.yaml", text.replace("ROOT", str(tmp_path)))
    assert spec_from_config(config) == DatasetSpec("ucf101", str(tmp_path), "2")
    assert describe_main(["--config", str(config), "--dataset.split", "1"]) == 0
    assert f"ucf101 at {tmp_path}, split 1: 3 classes" in capsys.readouterr().out


def test_describe_config_without_spec_and_bad_dataset(tmp_path, capsys):
    config = write(tmp_path / "config.yaml", "model: {hidden_size: 8}\n")
    with pytest.raises(DatasetError, match="holds no dataset spec"):
        spec_from_config(config)
    assert describe_main(["--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert "looked at dataset, data.dataset, data.init_args.dataset" in err
    assert describe_main(["--dataset.name", "ucf", "--dataset.root", str(tmp_path)]) == 1
    assert "unknown dataset 'ucf'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        describe_main(["--dataset.root", str(tmp_path)])


def test_spec_as_jsonargparse_type_accepts_integer_split():
    from jsonargparse import ArgumentParser

    parser = ArgumentParser()
    parser.add_argument("--dataset", type=DatasetSpec)
    config = parser.parse_string("dataset: {name: ucf101, root: data/ucf101, split: 1}\n")
    spec = parser.instantiate(config).dataset
    assert spec == DatasetSpec("ucf101", "data/ucf101", "1")
    assert spec.split == "1"


def test_example_configs_name_valid_datasets_and_splits():
    from pathlib import Path

    configs = sorted(Path(__file__).parents[1].glob("configs/datasets/*.yaml"))
    assert len(configs) >= 5
    for config in configs:
        spec = spec_from_config(config)
        assert spec.name == config.stem
        FORMATS[spec.name].resolve_split(spec.split)  # raises on a bad split
