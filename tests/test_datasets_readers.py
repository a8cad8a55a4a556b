"""Dataset readers on tiny fabricated trees laid out as each dataset's authors ship it.

The tree builders here are shared by the other tests/test_datasets_*.py files.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from video_eleatt.datasets import DatasetIndex, DatasetSpec, DatasetWarning, load_index


def touch(root: Path, *rel_paths: str) -> None:
    for rel_path in rel_paths:
        path = root / rel_path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# UCF101: the lists spell one folder HandStandPushups while classInd (and the folder on disk)
# say HandstandPushups, as in the real testlists; the files are v_HandStandPushups_*.
UCF_VIDEOS = {
    "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01": 0,
    "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01": 0,
    "HandstandPushups/v_HandStandPushups_g01_c01": 1,
    "HandstandPushups/v_HandStandPushups_g08_c02": 1,
    "YoYo/v_YoYo_g01_c01": 2,
    "YoYo/v_YoYo_g08_c03": 2,
}


def make_ucf101(root: Path, ext: str = ".avi") -> Path:
    for stem in UCF_VIDEOS:
        touch(root, f"UCF-101/{stem}{ext}")
    lists = root / "ucfTrainTestlist"
    write(lists / "classInd.txt", "1 ApplyEyeMakeup\n2 HandstandPushups\n3 YoYo\n")
    # split 1: g08 trains, g01 tests; split 2: the other way round
    write(
        lists / "trainlist01.txt",
        f"ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01{ext} 1\r\n"
        f"HandstandPushups/v_HandStandPushups_g08_c02{ext} 2\r\n"
        f"YoYo/v_YoYo_g08_c03{ext} 3\r\n",
    )
    write(
        lists / "testlist01.txt",
        f"ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01{ext}\n"
        f"HandStandPushups/v_HandStandPushups_g01_c01{ext}\n"
        f"YoYo/v_YoYo_g01_c01{ext}\n",
    )
    write(
        lists / "trainlist02.txt",
        f"ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01{ext} 1\n"
        f"HandstandPushups/v_HandStandPushups_g01_c01{ext} 2\n"
        f"YoYo/v_YoYo_g01_c01{ext} 3\n",
    )
    write(
        lists / "testlist02.txt",
        f"ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01{ext}\n"
        f"HandStandPushups/v_HandStandPushups_g08_c02{ext}\n"
        f"YoYo/v_YoYo_g08_c03{ext}\n",
    )
    return root


# HMDB51-style: class -> [(video, tag in split 1, tag in split 2)]
HMDB_SPLITS = {
    "brush_hair": [("April_09_brush_hair_u_nm_np1_ba_goo_0.avi", 1, 2), ("Brush_hair_1.avi", 2, 1)],
    "ride_bike": [("bike_a.avi", 1, 1), ("bike_b.avi", 0, 2), ("bike_c.avi", 2, 0)],
    "cartwheel": [("(Cartwheel)_Part_1.avi", 1, 2), ("cart_2.avi", 2, 1)],
}


def make_hmdb_style(root: Path, video_dir: str, split_dir: str = "splits") -> Path:
    for class_name, videos in HMDB_SPLITS.items():
        for video, *_ in videos:
            touch(
                root, f"{video_dir}/{class_name}/{video}" if video_dir else f"{class_name}/{video}"
            )
        for split in (1, 2):
            lines = "".join(f"{video} {tags[split - 1]} \n" for video, *tags in videos)
            write(root / split_dir / f"{class_name}_test_split{split}.txt", lines)
    return root


NTU_FILES = [
    "S001C001P001R001A001_rgb.avi",
    "S001C002P003R002A060_rgb.avi",
    "S002C003P038R001A010_rgb.avi",
    "S017C001P040R002A002_rgb.avi",
    "S005C002P002R001A070_rgb.avi",  # NTU120 action
    "S018C001P045R001A061_rgb.avi",  # NTU120 setup and action
    "S018C003P045R002A010_rgb.avi",  # NTU120 setup
    "S019C002P044R001A120_rgb.avi",
    "S020C001P103R001A001_rgb.avi",
    "S032C003P106R002A005.mp4",  # other extension, no _rgb suffix
]


def make_ntu(root: Path, names: list[str] = NTU_FILES) -> Path:
    touch(root, *(f"nturgb+d_rgb/{name}" for name in names))
    return root


KINETICS_TRAIN = """\
label,youtube_id,time_start,time_end,split,is_cc
abseiling,---QUuC4vJs,3,13,train,0
"  passing  American football (in game) ",-0kXUR9J5qE,0,10,train,0
"massaging person's head",abc123,120,130,train,0
abseiling,gone_clip,5,15,train,0
"""
KINETICS_VAL = """\
label,youtube_id,time_start,time_end,split
"passing American football (in game)",valclip1,30.0,40.0,val
"""
KINETICS_TEST = """\
youtube_id,time_start,time_end,split
testclip,1,11,test
"""


def make_kinetics(root: Path) -> Path:
    write(root / "annotations/train.csv", KINETICS_TRAIN)
    write(root / "annotations/validate.csv", KINETICS_VAL)
    write(root / "annotations/test.csv", KINETICS_TEST)
    touch(
        root,
        "train/abseiling/---QUuC4vJs_000003_000013.mp4",
        "backup/---QUuC4vJs_000003_000013.mp4",  # a second copy: the label folder wins
        "train/passing_American_football_(in_game)/-0kXUR9J5qE_000000_000010.mp4",
        "train/massaging person's head/abc123_000120_000130.mp4",
        "val/valclip1_000030_000040.mp4",  # flat per-split layout
        "test/testclip_000001_000011.mkv",
    )
    return root


SSV2_LABELS = {
    "Approaching something with your camera": "0",
    "Putting something on something": "1",
    "Something falling like a rock": "2",
}
SSV2_TRAIN = [
    {
        "id": "10",
        "label": "putting a cup on a plate",
        "template": "Putting [something] on [something]",
        "placeholders": ["a cup", "a plate"],
    },
    {
        "id": "11",
        "label": "approaching a pen",
        "template": "Approaching [something] with your camera",
    },
]
SSV2_VAL = [{"id": "12", "label": "a pen falling", "template": "[Something] falling like a rock"}]
SSV2_TEST = [{"id": "13"}]


def make_ssv2(root: Path, train: list | None = None) -> Path:
    labels = root / "labels"
    write(labels / "something-something-v2-labels.json", json.dumps(SSV2_LABELS))
    write(labels / "something-something-v2-train.json", json.dumps(train or SSV2_TRAIN))
    write(labels / "something-something-v2-validation.json", json.dumps(SSV2_VAL))
    write(labels / "something-something-v2-test.json", json.dumps(SSV2_TEST))
    touch(root, *(f"20bn-something-something-v2/{i}.webm" for i in ("10", "11", "12", "13")))
    return root


# ----------------------------------------------------------------------------------------
# Tests


def table(index: DatasetIndex) -> dict[str, tuple[int | None, str | None]]:
    """rel_path -> (label, subset), after checking the records are sorted and unique."""
    rel_paths = [record.rel_path for record in index.records]
    assert rel_paths == sorted(set(rel_paths))
    return {record.rel_path: (record.label, record.subset) for record in index.records}


@pytest.mark.parametrize("ext", [".avi", ".mp4"])
def test_ucf101_split1_labels_case_quirk_and_extension(tmp_path, ext):
    make_ucf101(tmp_path, ext)
    index = load_index(DatasetSpec("ucf101", str(tmp_path), "1"))
    assert index.class_names == ["ApplyEyeMakeup", "HandstandPushups", "YoYo"]
    assert index.split == "1"
    assert table(index) == {
        f"UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01{ext}": (0, "test"),
        f"UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01{ext}": (0, "train"),
        # listed as HandStandPushups/..., stored in HandstandPushups/: label 1, disk path
        f"UCF-101/HandstandPushups/v_HandStandPushups_g01_c01{ext}": (1, "test"),
        f"UCF-101/HandstandPushups/v_HandStandPushups_g08_c02{ext}": (1, "train"),
        f"UCF-101/YoYo/v_YoYo_g01_c01{ext}": (2, "test"),
        f"UCF-101/YoYo/v_YoYo_g08_c03{ext}": (2, "train"),
    }
    assert index.missing == [] and index.notes == []
    record = index.subset("train")[0]
    assert (
        index.path(record) == tmp_path / "UCF-101/ApplyEyeMakeup" / f"v_ApplyEyeMakeup_g08_c01{ext}"
    )
    assert index.record(record.rel_path) is record


def test_ucf101_other_split_same_keys_other_subsets(tmp_path):
    make_ucf101(tmp_path)
    split1 = table(load_index({"name": "ucf101", "root": str(tmp_path), "split": 1}))
    split2 = table(load_index({"name": "ucf101", "root": str(tmp_path), "split": "split2"}))
    assert split1.keys() == split2.keys()
    flipped = {"train": "test", "test": "train"}
    assert split2 == {key: (label, flipped[subset]) for key, (label, subset) in split1.items()}


def test_ucf101_default_split_videos_in_root_and_unlisted_video(tmp_path):
    # no UCF-101/ folder: class folders directly in root; one video in no list
    make_ucf101(tmp_path)
    (tmp_path / "UCF-101").rename(tmp_path / "videos_tmp")
    for folder in (tmp_path / "videos_tmp").iterdir():
        folder.rename(tmp_path / folder.name)
    touch(tmp_path, "YoYo/v_YoYo_g25_c01.avi")
    with pytest.warns(DatasetWarning, match="1 video file"):
        index = load_index(DatasetSpec("ucf101", str(tmp_path)))
    assert index.split == "1"
    assert table(index)["HandstandPushups/v_HandStandPushups_g01_c01.avi"] == (1, "test")
    assert len(index) == 6
    assert "YoYo/v_YoYo_g25_c01.avi" in index.notes[0]


def test_hmdb51_tags_and_unused_videos(tmp_path):
    make_hmdb_style(tmp_path, "videos")
    index = load_index(DatasetSpec("hmdb51", str(tmp_path), "1"))
    assert index.class_names == ["brush_hair", "cartwheel", "ride_bike"]
    assert table(index) == {
        "videos/brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0.avi": (0, "train"),
        "videos/brush_hair/Brush_hair_1.avi": (0, "test"),
        "videos/cartwheel/(Cartwheel)_Part_1.avi": (1, "train"),
        "videos/cartwheel/cart_2.avi": (1, "test"),
        "videos/ride_bike/bike_a.avi": (2, "train"),
        "videos/ride_bike/bike_b.avi": (2, None),  # tag 0: indexed, used by neither subset
        "videos/ride_bike/bike_c.avi": (2, "test"),
    }
    split2 = table(load_index(DatasetSpec("hmdb51", str(tmp_path), "2")))
    assert split2.keys() == table(index).keys()
    assert split2["videos/ride_bike/bike_b.avi"] == (2, "test")
    assert split2["videos/ride_bike/bike_c.avi"] == (2, None)
    assert split2["videos/brush_hair/Brush_hair_1.avi"] == (0, "train")


def test_hmdb51_official_split_folder_name_and_annotations_override(tmp_path):
    make_hmdb_style(tmp_path, "", split_dir="testTrainMulti_7030_splits")
    index = load_index(DatasetSpec("hmdb51", str(tmp_path), "1"))
    assert table(index)["cartwheel/cart_2.avi"] == (1, "test")
    (tmp_path / "testTrainMulti_7030_splits").rename(tmp_path / "my_splits")
    index = load_index(DatasetSpec("hmdb51", str(tmp_path), "1", annotations="my_splits"))
    assert table(index)["ride_bike/bike_b.avi"] == (2, None)


def test_jhmdb_recompress_videos_layout(tmp_path):
    make_hmdb_style(tmp_path, "ReCompress_Videos")
    index = load_index(DatasetSpec("jhmdb", str(tmp_path), "2"))
    assert index.name == "jhmdb" and index.split == "2"
    assert table(index)["ReCompress_Videos/brush_hair/Brush_hair_1.avi"] == (0, "train")
    assert table(index)["ReCompress_Videos/ride_bike/bike_c.avi"] == (2, None)
    assert [len(index.subset(s)) for s in ("train", "test")] == [3, 3]


NTU60_EXPECTED = {  # file: (label, cs subset, cv subset)
    "S001C001P001R001A001_rgb.avi": (0, "train", "test"),
    "S001C002P003R002A060_rgb.avi": (59, "test", "train"),
    "S002C003P038R001A010_rgb.avi": (9, "train", "train"),
    "S017C001P040R002A002_rgb.avi": (1, "test", "test"),
}
NTU120_EXPECTED = {  # file: (label, csub subset, cset subset)
    "S001C001P001R001A001_rgb.avi": (0, "train", "test"),
    "S001C002P003R002A060_rgb.avi": (59, "test", "test"),
    "S002C003P038R001A010_rgb.avi": (9, "train", "train"),
    "S005C002P002R001A070_rgb.avi": (69, "train", "test"),
    "S017C001P040R002A002_rgb.avi": (1, "test", "test"),
    "S018C001P045R001A061_rgb.avi": (60, "train", "train"),
    "S018C003P045R002A010_rgb.avi": (9, "train", "train"),
    "S019C002P044R001A120_rgb.avi": (119, "test", "test"),
    "S020C001P103R001A001_rgb.avi": (0, "train", "train"),
    "S032C003P106R002A005.mp4": (4, "test", "train"),
}


@pytest.mark.parametrize("split, column", [("cs", 1), ("cv", 2), ("xview", 2)])
def test_ntu60_subjects_cameras_and_ignored_ntu120_files(tmp_path, split, column):
    make_ntu(tmp_path)
    with pytest.warns(DatasetWarning, match="ignored 6 NTU RGB\\+D 120 file"):
        index = load_index(DatasetSpec("ntu60", str(tmp_path), split))
    assert index.num_classes == 60 and index.class_names[0] == "drink water"
    assert table(index) == {
        f"nturgb+d_rgb/{name}": (row[0], row[column]) for name, row in NTU60_EXPECTED.items()
    }


@pytest.mark.parametrize("split, column", [("csub", 1), ("cset", 2)])
def test_ntu120_subjects_and_setups(tmp_path, split, column):
    make_ntu(tmp_path)
    index = load_index(DatasetSpec("ntu120", str(tmp_path), split))
    assert index.num_classes == 120
    assert index.class_names[60] == "put on headphone"
    assert index.class_names[119] == "finger-guessing game (playing rock-paper-scissors)"
    assert table(index) == {
        f"nturgb+d_rgb/{name}": (row[0], row[column]) for name, row in NTU120_EXPECTED.items()
    }


def test_ntu_training_subject_lists_match_the_protocols():
    from video_eleatt.datasets.ntu import TRAIN_SUBJECTS_60, TRAIN_SUBJECTS_120

    assert len(TRAIN_SUBJECTS_60) == 20 and len(TRAIN_SUBJECTS_120) == 53
    assert TRAIN_SUBJECTS_60 < TRAIN_SUBJECTS_120
    assert {3, 6, 7, 10, 39, 40} & TRAIN_SUBJECTS_60 == set()
    assert {44, 48, 51, 60, 101, 102, 104, 105, 106} & TRAIN_SUBJECTS_120 == set()


def test_kinetics_labels_layouts_and_missing_clip_warning(tmp_path):
    make_kinetics(tmp_path)
    with pytest.warns(DatasetWarning, match="1 of 6 clips listed in the kinetics400 CSVs"):
        index = load_index(DatasetSpec("kinetics400", str(tmp_path)))
    assert index.class_names == [
        "abseiling",
        "massaging person's head",
        "passing American football (in game)",
    ]
    assert table(index) == {
        "test/testclip_000001_000011.mkv": (None, "test"),
        "train/abseiling/---QUuC4vJs_000003_000013.mp4": (0, "train"),
        "train/massaging person's head/abc123_000120_000130.mp4": (1, "train"),
        "train/passing_American_football_(in_game)/-0kXUR9J5qE_000000_000010.mp4": (2, "train"),
        "val/valclip1_000030_000040.mp4": (2, "val"),
    }
    assert index.missing == ["train/abseiling/gone_clip_000005_000015.mp4"]
    assert index.split is None


def test_kinetics_label_normalisation_and_folder_key():
    from video_eleatt.datasets.kinetics import clip_name, folder_key, normalise_label

    assert normalise_label(' "passing  American football (in game)" ') == (
        "passing American football (in game)"
    )
    assert normalise_label("massaging person's head") == "massaging person's head"
    assert folder_key("passing_American_football_(in_game)") == folder_key(
        "passing american football (in game)"
    )
    assert folder_key("abseiling") != folder_key("abseilinga")
    assert clip_name("-0kXUR9J5qE", 0, 10) == "-0kXUR9J5qE_000000_000010"


def test_kinetics_single_csv_annotations(tmp_path):
    make_kinetics(tmp_path)
    index = load_index(
        DatasetSpec("kinetics700", str(tmp_path), annotations="annotations/validate.csv")
    )
    assert index.class_names == ["passing American football (in game)"]
    assert table(index) == {"val/valclip1_000030_000040.mp4": (0, "val")}


def test_ssv2_template_brackets_and_subsets(tmp_path):
    from video_eleatt.datasets.ssv2 import template_class

    assert template_class("Putting [something] on [something]") == "Putting something on something"
    make_ssv2(tmp_path)
    index = load_index(DatasetSpec("ssv2", str(tmp_path)))
    assert index.class_names == [
        "Approaching something with your camera",
        "Putting something on something",
        "Something falling like a rock",
    ]
    assert table(index) == {
        "20bn-something-something-v2/10.webm": (1, "train"),
        "20bn-something-something-v2/11.webm": (0, "train"),
        "20bn-something-something-v2/12.webm": (2, "val"),
        "20bn-something-something-v2/13.webm": (None, "test"),
    }


def write_list_dataset(root: Path) -> None:
    touch(root, "videos/a.mp4", "videos/b.avi", "videos/c d.mkv", "other/e.webm")
    write(root / "classes.txt", "cat\ndog\nbird\n")
    write(root / "train.txt", "videos/a.mp4 0\nvideos/b.avi 2\n")
    write(root / "val.txt", "videos/c d.mkv 1\n")
    write(root / "train_2.txt", "videos/b.avi 1\n")
    write(root / "test_2.txt", "videos/a.mp4 0\n")
    write(root / "lists/predict.txt", "videos/c d.mkv\nother/e.webm\n")


def test_generic_list_with_labels_classes_and_split_suffix(tmp_path):
    write_list_dataset(tmp_path)
    index = load_index(DatasetSpec("list", str(tmp_path)))
    assert index.class_names == ["cat", "dog", "bird"]
    assert table(index) == {
        "videos/a.mp4": (0, "train"),
        "videos/b.avi": (2, "train"),
        "videos/c d.mkv": (1, "val"),
    }
    index = load_index(DatasetSpec("list", str(tmp_path), split="2"))
    assert table(index) == {"videos/a.mp4": (0, "test"), "videos/b.avi": (1, "train")}


def test_generic_list_without_labels(tmp_path):
    write_list_dataset(tmp_path)
    index = load_index(DatasetSpec("list", str(tmp_path), annotations="lists/predict.txt"))
    assert index.class_names == []
    assert table(index) == {"other/e.webm": (None, "test"), "videos/c d.mkv": (None, "test")}


def test_generic_list_class_names_from_labels(tmp_path):
    touch(tmp_path, "x.mp4", "y.mp4")
    write(tmp_path / "lists/val_list.txt", "x.mp4 3\ny.mp4 1\n")
    index = load_index(DatasetSpec("list", str(tmp_path), annotations="lists/val_list.txt"))
    assert index.class_names == ["0", "1", "2", "3"]
    assert table(index) == {"x.mp4": (3, "val"), "y.mp4": (1, "val")}


def test_folder_tree_flat_and_by_subset(tmp_path):
    flat = tmp_path / "flat"
    touch(flat, "dog/y.avi", "cat/x.mp4", "dog/sub/z.mkv", "dog/notes.txt", "loose.mp4")
    with pytest.warns(DatasetWarning, match="ignored 1 video file"):
        index = load_index(DatasetSpec("folder", str(flat)))
    assert index.class_names == ["cat", "dog"]
    assert table(index) == {
        "cat/x.mp4": (0, "train"),
        "dog/sub/z.mkv": (1, "train"),
        "dog/y.avi": (1, "train"),
    }
    split = tmp_path / "split"
    touch(split, "train/cat/a.mp4", "train/dog/b.mp4", "val/dog/c.mp4", "test/bird/d.mp4")
    index = load_index(DatasetSpec("folder", str(split)))
    assert index.class_names == ["bird", "cat", "dog"]
    assert table(index) == {
        "test/bird/d.mp4": (0, "test"),
        "train/cat/a.mp4": (1, "train"),
        "train/dog/b.mp4": (2, "train"),
        "val/dog/c.mp4": (2, "val"),
    }
    assert index.subset_names() == ["train", "val", "test"]


def test_index_counts_and_spec_round_trip(tmp_path):
    make_hmdb_style(tmp_path, "videos")
    spec = DatasetSpec.from_dict({"name": "hmdb51", "root": str(tmp_path), "split": 2})
    assert spec.split == "2" and spec.to_dict()["name"] == "hmdb51"
    counts = load_index(spec).counts()
    assert dict(counts["train"]) == {0: 1, 1: 1, 2: 1}
    assert dict(counts["test"]) == {0: 1, 1: 1, 2: 1}
    assert dict(counts[None]) == {2: 1}
