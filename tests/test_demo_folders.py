"""Where ``video-eleatt demo`` writes: under the current folder or ``--output_dir``, from any
folder, with its own folders for every option that changes the results.

The end-to-end check reuses the reduced demo of tests/test_demo_main.py (run here when that
file did not run) and adds one more option set at the same size.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from test_demo_main import QUICK_ARGS, run_quick_demo

from video_eleatt.config_files import shipped_root
from video_eleatt.demo.cli import demo_main, parse_options
from video_eleatt.demo.main import plan_demo
from video_eleatt.demo.options import DemoOptions


def folders(**options) -> tuple[Path, Path]:
    plan = plan_demo(DemoOptions(**options))
    return plan.dataset_root, plan.output_dir


def test_every_option_that_changes_results_gets_its_own_folders(tmp_path):
    weights_a, weights_b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    weights_a.write_bytes(b"weights a")
    weights_b.write_bytes(b"weights b")
    option_sets = {
        "default": {},
        "quick": {"quick": True},
        "videos": {"videos_per_class": 40},
        "epochs": {"epochs": 5},
        "seeds": {"seeds": [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]},
        "quick seeds": {"quick": True, "seeds": [0, 1, 2]},
        "pretrained": {"pretrained": True},
        "weights a": {"backbone_weights": str(weights_a)},
        "weights b": {"backbone_weights": str(weights_b)},
        "cuda": {"device": "cuda"},
        "bf16": {"precision": "bfloat16"},
        "auto precision": {"precision": "auto"},
    }
    planned = {name: folders(**options) for name, options in option_sets.items()}
    run_folders = [output_dir for _, output_dir in planned.values()]
    assert len(set(run_folders)) == len(run_folders), planned
    # the default stays where the README says; the data depends only on the dataset options
    assert planned["default"] == (Path("data/demo/motion"), Path("runs/demo"))
    assert planned["seeds"] == (Path("data/demo/motion"), Path("runs/demo_s0-9"))
    assert planned["videos"][0] == Path("data/demo/motion_v40")
    assert planned["quick seeds"][0] == planned["quick"][0] == Path("data/demo/motion_quick")
    assert planned["weights a"][1].name.startswith("demo_weights-")
    # the extraction precision names the runs; its cache folder is named by it already
    assert planned["bf16"] == (Path("data/demo/motion"), Path("runs/demo_bfloat16"))


def test_folders_follow_the_weights_file_content_and_ignore_what_does_not_change_results(
    tmp_path,
):
    weights = tmp_path / "resnet18.safetensors"
    weights.write_bytes(b"the same bytes")
    moved = tmp_path / "elsewhere.safetensors"
    moved.write_bytes(b"the same bytes")
    first = folders(backbone_weights=str(weights))
    assert folders(backbone_weights=str(moved)) == first
    weights.write_bytes(b"fine-tuned bytes")
    assert folders(backbone_weights=str(weights)) != first
    # the same seeds in another order, and speed-only options: the same folders
    default = folders()
    assert folders(seeds=[2, 0, 4, 1, 3]) == default
    assert folders(parallel=1, num_workers=1, attention=False) == default


def test_output_dir_holds_the_data_and_the_runs(tmp_path):
    plan = plan_demo(DemoOptions(output_dir=str(tmp_path), quick=True))
    assert plan.dataset_root == tmp_path / "data/demo/motion_quick"
    assert plan.features_root == tmp_path / "data/demo/features/motion_quick"
    assert plan.output_dir == tmp_path / "runs/demo_quick"
    assert f"--output_dir={tmp_path / 'runs/demo_quick'}" in plan.compare_args


def test_outside_a_checkout_the_demo_reads_the_packages_configs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    plan = plan_demo(DemoOptions())
    assert plan.extract_config == shipped_root() / "demo" / "extract.yaml"
    assert plan.compare_config == shipped_root() / "demo" / "compare.yaml"
    assert plan.dataset_root == Path("data/demo/motion")  # under the current folder
    # an edited copy in the working folder wins
    local = tmp_path / "configs" / "demo" / "extract.yaml"
    local.parent.mkdir(parents=True)
    local.write_text((shipped_root() / "demo" / "extract.yaml").read_text())
    assert plan_demo(DemoOptions()).extract_config == Path("configs/demo/extract.yaml")


def test_a_folder_that_cannot_be_written_is_one_line_naming_it_and_the_fix(tmp_path, capsys):
    (tmp_path / "a_file").write_text("")
    code = demo_main(["--quick", "--output_dir", str(tmp_path / "a_file" / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1
    assert f"cannot write to {tmp_path / 'a_file' / 'out' / 'data' / 'demo'}" in err
    assert "run the demo from a writable folder or pass --output_dir" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_current_folder(tmp_path, monkeypatch, capsys):
    readonly = tmp_path / "ro"
    readonly.mkdir()
    monkeypatch.chdir(readonly)
    readonly.chmod(0o555)
    try:
        code = demo_main(["--quick"])
    finally:
        readonly.chmod(0o755)
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert f"cannot write to {readonly / 'data' / 'demo'}: permission denied" in err
    assert list(readonly.iterdir()) == []


def test_two_option_sets_leave_two_separate_intact_outputs(tmp_path_factory, monkeypatch):
    """The reduced demo (2 seeds) and the same with seed 1 alone, run from the folder that
    holds the first one's runs: a second report beside the first, which is left as it was."""
    base = tmp_path_factory.getbasetemp() / "quick_demo"
    args = [*QUICK_ARGS, "--data_dir", str(base / "data"), "--output_dir", str(base / "runs")]
    first = plan_demo(parse_options(args)).output_dir
    if not (first / "demo_summary.json").is_file():  # test_demo_main.py did not run
        code, _, first = run_quick_demo(base)
        assert code == 0
    before = {name: (first / name).read_bytes() for name in ("report.md", "demo_summary.json")}

    monkeypatch.chdir(base / "runs")
    one_seed = [*QUICK_ARGS, "--data_dir", str(base / "data"), "--seeds", "[1]"]
    one_seed += ["--attention", "false"]
    assert demo_main(one_seed) == 0
    second = Path("runs/demo_quick_v2_e1_s1")
    assert second.resolve() != first.resolve()
    assert second.resolve().parent == first.resolve().parent

    assert {name: (first / name).read_bytes() for name in before} == before
    runs = {json.loads((first / "demo_summary.json").read_text())["variants"][0]["runs"]}
    assert runs == {2}
    summary = json.loads((second / "demo_summary.json").read_text())
    assert summary["complete"] is True
    assert [row["runs"] for row in summary["variants"]] == [1, 1]
    assert sorted(p.name for p in (second / "runs" / "eleatt_gru").glob("*/seed-*")) == ["seed-1"]
