"""Bad input to the dataset readers: each error names the file, the line and the offenders."""

from __future__ import annotations

import json

import pytest
from test_datasets_readers import (
    make_hmdb_style,
    make_kinetics,
    make_ntu,
    make_ssv2,
    make_ucf101,
    touch,
    write,
)

from video_eleatt.datasets import DatasetError, DatasetSpec, load_index


def error(name, root, split=None, annotations=None) -> str:
    """The message of the DatasetError that loading this dataset raises."""
    with pytest.raises(DatasetError) as info:
        load_index(DatasetSpec(name, str(root), split, annotations))
    return str(info.value)


def assert_parts(message: str, *parts: str) -> None:
    for part in parts:
        assert part in message, f"{part!r} not in:\n{message}"


def test_unknown_name_lists_valid_names(tmp_path):
    message = error("ucf-101", tmp_path)
    assert_parts(message, "unknown dataset 'ucf-101'; choose one of: ucf101, hmdb51, kinetics400")
    assert_parts(message, "kinetics700", "ssv2", "ntu60", "ntu120", "jhmdb", "list", "folder")


def test_bad_split_root_and_annotations(tmp_path):
    assert_parts(error("ucf101", tmp_path, "4"), "unknown split '4'; expected one of ['1', '2'")
    assert_parts(error("ntu120", tmp_path, "cv"), "unknown split 'cv'; expected one of ['csub'")
    assert_parts(error("kinetics400", tmp_path, "1"), "one official partition; remove `split`")
    assert_parts(
        error("ucf101", tmp_path / "nowhere", "1"),
        "/nowhere' is not a directory; point `root` at the dataset folder. Expected layout:\n",
        "root/ucfTrainTestlist/classInd.txt",
    )
    assert_parts(error("ucf101", tmp_path, "1", "lists"), "annotations 'lists' not found")


def test_spec_from_dict_errors():
    with pytest.raises(DatasetError) as info:
        DatasetSpec.from_dict({"name": "ucf101", "root": "x", "spilt": 1})
    assert_parts(str(info.value), "unknown dataset option(s) ['spilt']")
    with pytest.raises(DatasetError) as info:
        DatasetSpec.from_dict({"name": "ucf101"})
    assert_parts(str(info.value), "lacks ['root']")


def test_ucf101_missing_class_list(tmp_path):
    make_ucf101(tmp_path)
    (tmp_path / "ucfTrainTestlist/classInd.txt").unlink()
    assert_parts(
        error("ucf101", tmp_path, "1"),
        "missing UCF101 class list classInd.txt: ",
        "ucfTrainTestlist/classInd.txt does not exist. UCF101's lists come in",
    )


def test_ucf101_malformed_lines_and_unknown_class(tmp_path):
    make_ucf101(tmp_path)
    with (tmp_path / "ucfTrainTestlist/testlist01.txt").open("a") as stream:
        stream.write("YoYo/v_YoYo_g02_c01.avi extra\nJuggling/v_Juggling_g01_c01.avi\n")
    assert_parts(
        error("ucf101", tmp_path, "1"),
        "testlist01.txt: 2 malformed line(s) or label(s) outside classInd.txt:\n",
        "  line 4: 'YoYo/v_YoYo_g02_c01.avi extra' (expected 'Class/video [label]')\n",
        "  line 5: class 'Juggling' of Juggling/v_Juggling_g01_c01.avi not in classInd\n",
    )


def test_ucf101_train_label_disagreeing_with_folder(tmp_path):
    make_ucf101(tmp_path)
    write(tmp_path / "ucfTrainTestlist/trainlist01.txt", "YoYo/v_YoYo_g08_c03.avi 1\n")
    assert_parts(
        error("ucf101", tmp_path, "1"),
        "trainlist01.txt: 1 malformed",
        "line 1: label 1 (ApplyEyeMakeup) disagrees with the folder of YoYo/v_YoYo_g08_c03.avi "
        "(3 YoYo)",
    )


def test_ucf101_listed_video_absent(tmp_path):
    make_ucf101(tmp_path)
    (tmp_path / "UCF-101/YoYo/v_YoYo_g01_c01.avi").unlink()
    assert_parts(
        error("ucf101", tmp_path, "1"),
        "ucfTrainTestlist: 1 listed video(s) not found under",
        "  testlist01.txt:3: UCF-101/YoYo/v_YoYo_g01_c01.avi\n",
    )


def test_ucf101_duplicate_and_empty_list(tmp_path):
    make_ucf101(tmp_path)
    lists = tmp_path / "ucfTrainTestlist"
    with (lists / "testlist01.txt").open("a") as stream:
        stream.write("YoYo/v_YoYo_g08_c03.avi\n")
    assert_parts(
        error("ucf101", tmp_path, "1"),
        "1 duplicate entries:\n  UCF-101/YoYo/v_YoYo_g08_c03.avi (listed at trainlist01.txt:3, "
        "testlist01.txt:4)",
    )
    write(lists / "testlist01.txt", "\n")
    assert_parts(error("ucf101", tmp_path, "1"), "testlist01.txt lists no videos: split 1 test")


def test_hmdb51_bad_tag_duplicate_empty_split_missing_files(tmp_path):
    make_hmdb_style(tmp_path, "videos")
    split_file = tmp_path / "splits/cartwheel_test_split1.txt"
    original = split_file.read_text()
    write(split_file, original + "cart_3.avi 3\n")
    assert_parts(
        error("hmdb51", tmp_path, "1"),
        "cartwheel_test_split1.txt: 1 malformed line(s):\n  line 3: 'cart_3.avi 3'\n",
        "tag 0 (unused), 1 (train) or 2 (test)",
    )
    write(split_file, original + "bike_a.avi 1\n")
    assert_parts(
        error("hmdb51", tmp_path, "1"),
        "splits: 1 duplicate entries:\n  bike_a.avi (at cartwheel_test_split1.txt:3, "
        "ride_bike_test_split1.txt:1)",
    )
    write(split_file, original)
    for path in (tmp_path / "splits").glob("*_test_split1.txt"):
        write(path, path.read_text().replace(" 2 ", " 0 "))
    assert_parts(
        error("hmdb51", tmp_path, "1"),
        "hmdb51 split 1: the '<class>_test_split1.txt' files in",
        "put no video in test (tag 2); the split is empty",
    )
    assert_parts(error("hmdb51", tmp_path, "3"), "no '<class>_test_split3.txt' files in")
    (tmp_path / "videos/ride_bike/bike_b.avi").unlink()
    assert_parts(error("hmdb51", tmp_path, "2"), "  ride_bike_test_split2.txt:2: videos/ride_bike")


def test_kinetics_bad_csvs(tmp_path):
    assert_parts(error("kinetics600", tmp_path), "kinetics600: no annotation CSV (train.csv")
    make_kinetics(tmp_path)
    validate = tmp_path / "annotations/validate.csv"
    original = validate.read_text()
    write(validate, original + "abseiling,xyz,ten,20,val\n")
    assert_parts(
        error("kinetics400", tmp_path),
        "validate.csv: 1 malformed row(s):\n  line 3: abseiling,xyz,ten,20,val\n",
    )
    write(validate, original + "abseiling,---QUuC4vJs,3,13,val\n")
    assert_parts(
        error("kinetics400", tmp_path),
        "1 duplicate entries:\n  ---QUuC4vJs_000003_000013 (at train.csv:2, validate.csv:3)",
    )
    write(validate, "label,youtube,time_start,time_end,split\n")
    assert_parts(
        error("kinetics400", tmp_path),
        "validate.csv:1: header ['label', 'youtube', 'time_start', 'time_end', 'split'] lacks "
        "column(s) ['youtube_id']",
    )


def test_ssv2_unknown_template_absent_video_bad_labels(tmp_path):
    make_ssv2(tmp_path, [{"id": "10", "template": "Putting [something] onto [something]"}])
    assert_parts(
        error("ssv2", tmp_path),
        "something-something-v2-train.json: 1 malformed entries or labels outside the class "
        "list:\n  entry 0 (id 10): class 'Putting something onto something' (template "
        "'Putting [something] onto [something]') is not in something-something-v2-labels.json",
    )
    make_ssv2(tmp_path)
    (tmp_path / "20bn-something-something-v2/12.webm").unlink()
    assert_parts(
        error("ssv2", tmp_path),
        "1 listed video(s) not found",
        "  something-something-v2-validation.json entry 0: 20bn-something-something-v2/12.webm",
    )
    labels = tmp_path / "labels/something-something-v2-labels.json"
    labels.write_text(json.dumps({"A": "0", "B": "2"}))
    assert_parts(error("ssv2", tmp_path), "class ids [0, 2]... are not 0..1 without gaps")


def test_ntu_bad_files(tmp_path):
    assert_parts(error("ntu60", tmp_path, "cs"), "ntu60: no video named SsssCcccPpppRrrrAaaa")
    make_ntu(tmp_path / "a", ["S001C001P001R001A001_rgb.avi", "S001C002P001R001A002_rgb.mp4"])
    assert_parts(
        error("ntu60", tmp_path / "a", "cs"),
        "ntu60 split cs: no video of",
        "falls in test; the split is empty (found 2 videos)",
    )
    touch(tmp_path / "a", "extra/S001C001P001R001A001.avi")
    assert_parts(
        error("ntu60", tmp_path / "a", "cv"),
        "1 samples found twice:\n  S001C001P001R001A001: extra/S001C001P001R001A001.avi, "
        "nturgb+d_rgb/S001C001P001R001A001_rgb.avi",
    )
    make_ntu(tmp_path / "b", ["S001C001P001R001A121_rgb.avi", "S001C004P002R001A001_rgb.avi"])
    assert_parts(
        error("ntu120", tmp_path / "b"),
        "2 file name(s) outside the dataset:\n  nturgb+d_rgb/S001C001P001R001A121_rgb.avi: "
        "setup 1, camera 1 or action 121 outside 1..32, 1..3, 1..120",
    )
    assert_parts(error("ntu60", tmp_path / "b", None, str(tmp_path)), "ntu60 takes no annotations")


def test_list_missing_mixed_outside_absent(tmp_path):
    assert_parts(error("list", tmp_path), "list: none of train.txt, val.txt, test.txt in")
    touch(tmp_path, "a.mp4", "b.mp4")
    write(tmp_path / "train.txt", "a.mp4 0\nb.mp4\n")
    assert_parts(
        error("list", tmp_path),
        "train.txt: 1 line(s) without a label while 1 others have one:\n  line 2: 'b.mp4'",
    )
    write(tmp_path / "classes.txt", "cat\n")
    write(tmp_path / "train.txt", "a.mp4 0\nb.mp4 1\n")
    assert_parts(
        error("list", tmp_path),
        "train.txt: 1 label(s) outside the class list:\n  line 2: label 1 of b.mp4\n"
        "Labels are 0-based ids below 1 (classes.txt lists 1).",
    )
    write(tmp_path / "train.txt", "a.mp4 0\nc.mp4 0\n")
    assert_parts(error("list", tmp_path), "1 listed video(s) not found", "  train.txt:2: c.mp4")
    write(tmp_path / "train.txt", "a.mp4 0\n")
    write(tmp_path / "val.txt", "a.mp4 0\n")
    assert_parts(error("list", tmp_path), "duplicate entries:\n  a.mp4 (at train.txt:1, val.txt:1)")


def test_folder_errors(tmp_path):
    touch(tmp_path, "loose.mp4")
    assert_parts(error("folder", tmp_path, None, "loose.mp4"), "folder takes no annotations")
    assert_parts(error("folder", tmp_path), "folder: no video in a class folder below")
