"""Shipped configs found by name or by path (``video_eleatt.config_files``), and
``video-eleatt configs list | copy``.

Every test that looks for configs "outside a checkout" runs in an empty working folder
(``monkeypatch.chdir``), where ``configs/...`` paths do not exist on disk.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path

import pytest
import yaml

from video_eleatt.cli import main as cli_main
from video_eleatt.compare.plan import ComparisonError, compose_base_config
from video_eleatt.config_files import (
    ConfigNameError,
    config_name,
    find_config,
    resolve_config_args,
    shipped_names,
    shipped_root,
)
from video_eleatt.features import CacheError, open_features
from video_eleatt.training.module import ActionClassifier

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working folder, as a user of the installed package has."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


def shipped(name: str) -> Path:
    return shipped_root() / f"{name}.yaml"


# ----------------------------------------------------------------------------- lookup


@pytest.mark.parametrize(
    "value",
    [
        "jhmdb/eleatt_gru_split1",
        "jhmdb/eleatt_gru_split1.yaml",
        "configs/jhmdb/eleatt_gru_split1.yaml",  # the README's paths work outside a checkout
        "eleatt_gru_split1",  # a file name that only one shipped config has
        "../jhmdb/eleatt_gru_split1.yaml",
    ],
)
def test_a_name_finds_the_shipped_config(elsewhere, value):
    assert find_config(value) == shipped("jhmdb/eleatt_gru_split1")


def test_a_path_on_disk_always_wins(elsewhere):
    local = elsewhere / "configs" / "jhmdb" / "eleatt_gru_split1.yaml"
    local.parent.mkdir(parents=True)
    local.write_text("seed_everything: 7\n")
    assert find_config("configs/jhmdb/eleatt_gru_split1.yaml") == Path(
        "configs/jhmdb/eleatt_gru_split1.yaml"
    )
    # a path stays as given (relative stays relative: run records keep their identity)
    assert find_config(str(local)) == local
    # a name is a name: it still means the shipped config
    assert find_config("jhmdb/eleatt_gru_split1") == shipped("jhmdb/eleatt_gru_split1")


def test_an_ambiguous_name_lists_every_candidate(elsewhere):
    with pytest.raises(ConfigNameError) as caught:
        find_config("gru")
    message = str(caught.value)
    assert "'gru' is ambiguous" in message
    assert "hmdb51/gru, kinetics400/gru, ucf101/gru" in message
    assert "\n" not in message


def test_an_unknown_name_lists_close_matches_and_where_it_looked(elsewhere):
    with pytest.raises(ConfigNameError) as caught:
        find_config("jhmdb/eleatt_gru_split9")
    message = str(caught.value)
    assert "'jhmdb/eleatt_gru_split9' is no file" in message
    assert str(elsewhere) in message
    close = message.split("close matches: ")[1].split(";")[0].split(", ")
    assert {"jhmdb/eleatt_gru_split1", "jhmdb/eleatt_gru_split2"} <= set(close)
    assert "video-eleatt configs list" in message


def test_a_folder_is_not_a_config(elsewhere):
    with pytest.raises(
        ConfigNameError, match=r"'models' is a folder of shipped configs.*gru_3x100"
    ):
        find_config("models")


def test_config_name_of_paths():
    assert config_name("configs/ntu60/gru_cs.yaml") == "ntu60/gru_cs"
    assert config_name("/old/checkout/configs/models/gru_1x512.yml") == "models/gru_1x512"
    assert config_name("./models/gru_1x512") == "models/gru_1x512"


def test_every_shipped_name_finds_its_own_file():
    for name in shipped_names():
        assert find_config(name) == shipped(name)


# ----------------------------------------------------------------------------- --config


def test_config_arguments_become_paths_and_everything_else_stays(elsewhere):
    inline = "model:\n  hidden_size: 8\n"
    argv = [
        "fit",
        "--config",
        "jhmdb/gru_split1",
        "--config=models/gru_1x512",
        "--config",
        inline,
        "-c",
        "demo/train",
        "--data.cache",
        "configs/extract/jhmdb_resnet50.yaml",
    ]
    resolved = resolve_config_args(argv, ("--config", "-c"))
    assert resolved == [
        "fit",
        "--config",
        str(shipped("jhmdb/gru_split1")),
        f"--config={shipped('models/gru_1x512')}",
        "--config",
        inline,
        "-c",
        str(shipped("demo/train")),
        "--data.cache",
        "configs/extract/jhmdb_resnet50.yaml",
    ]
    # `-c` is the training verbs' flag only
    assert resolve_config_args(["-c", "jhmdb"]) == ["-c", "jhmdb"]


def test_a_copied_config_reads_the_sections_it_names_from_the_package(elsewhere, capsys):
    """jhmdb/eleatt_gru_split1.yaml says `model: ../models/eleatt_gru_1x512.yaml`; copied alone,
    that file is not beside it, and the shipped one is read (through the whole fit parser)."""
    copy = elsewhere / "mine" / "jhmdb" / "eleatt_gru_split1.yaml"
    copy.parent.mkdir(parents=True)
    text = (
        shipped("jhmdb/eleatt_gru_split1").read_text().replace("max_epochs: 100", "max_epochs: 3")
    )
    copy.write_text(text)
    (value,) = resolve_config_args(["--config", str(copy)])[1:]
    content = yaml.safe_load(value)
    assert content["model"] == str(shipped("models/eleatt_gru_1x512").resolve())
    assert content["trainer"]["max_epochs"] == 3
    code = cli_main(["fit", "--config", str(copy), "--print_config"])
    printed = yaml.safe_load(capsys.readouterr().out)
    assert code == 0
    assert printed["model"]["hidden_size"] == 512 and printed["model"]["num_eleatt_layers"] == 1
    assert printed["trainer"]["max_epochs"] == 3
    # a section file beside the copy wins over the shipped one
    models = elsewhere / "mine" / "models"
    models.mkdir()
    model = yaml.safe_load(shipped("models/eleatt_gru_1x512").read_text()) | {"hidden_size": 16}
    (models / "eleatt_gru_1x512.yaml").write_text(yaml.safe_dump(model))
    assert resolve_config_args(["--config", str(copy)]) == ["--config", str(copy)]


def test_a_command_given_a_bad_name_exits_2_with_one_line(elsewhere, capsys):
    assert cli_main(["fit", "--config", "gru"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("video-eleatt fit: error: config 'gru' is ambiguous")
    assert cli_main(["extract", "--config=tiny_randm"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "close matches: extract/tiny_random" in err


# ----------------------------------------------------------------------------- references


def test_data_cache_names_the_shipped_extract_config_outside_a_checkout(elsewhere):
    # Found: the error is about the cache not extracted yet, not about the config.
    with pytest.raises(CacheError, match=r"names cache features/.* does not exist yet"):
        open_features("configs/extract/tiny_random.yaml")
    with pytest.raises(CacheError, match="close matches: extract/tiny_random"):
        open_features("configs/extract/tiny_randon.yaml")


def test_compare_base_config_by_path_name_or_shipped_reference(elsewhere):
    by_path = compose_base_config(["configs/demo/train.yaml"])
    assert by_path["model"]["hidden_size"] == 128
    assert compose_base_config(["demo/train"]) == by_path
    # a base config whose model section file is only in the package
    copy = elsewhere / "mine" / "jhmdb" / "gru_split1.yaml"
    copy.parent.mkdir(parents=True)
    copy.write_text(shipped("jhmdb/gru_split1").read_text())
    merged = compose_base_config([str(copy)])
    # composed as `fit` composes it: the model's defaults, then the shipped model file
    defaults = {
        name: parameter.default
        for name, parameter in inspect.signature(ActionClassifier).parameters.items()
        if parameter.default is not inspect.Parameter.empty
    }
    assert merged["model"] == {
        **defaults,
        **yaml.safe_load(shipped("models/gru_1x512").read_text()),
    }
    with pytest.raises(ComparisonError, match=r"'demo/trian' does not exist.*demo/train"):
        compose_base_config(["demo/trian"])


# ----------------------------------------------------------------------------- list and copy


def test_list_shows_every_shipped_config_with_what_it_is(capsys):
    assert cli_main(["configs", "list"]) == 0
    out = capsys.readouterr().out
    listed = [line.split()[0] for line in out.splitlines()[3:] if line.strip()]
    assert listed == list(shipped_names())
    assert str(shipped_root()) in out
    assert max(len(line) for line in out.splitlines()[3:]) <= 100
    line = next(line for line in out.splitlines() if line.startswith("compare/jhmdb_gru "))
    assert "JHMDB" in line
    assert cli_main(["configs", "list", "ntu60"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()[3:] if line]
    assert listed == ["ntu60/eleatt_gru_cs", "ntu60/eleatt_gru_cv", "ntu60/gru_cs", "ntu60/gru_cv"]


def test_list_of_an_unknown_folder_suggests_the_close_one(capsys):
    assert cli_main(["configs", "list", "jhmd"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "close matches: jhmdb" in err


def test_copy_a_folder_keeps_its_layout_and_refuses_to_overwrite_an_edit(elsewhere, capsys):
    assert cli_main(["configs", "copy", "jhmdb", "my_configs"]) == 0
    out = capsys.readouterr().out
    names = [name for name in shipped_names() if name.startswith("jhmdb/")]
    assert len(names) == 6
    for name in names:
        copy = elsewhere / "my_configs" / f"{name}.yaml"
        assert copy.read_bytes() == shipped(name).read_bytes()
    # what the copies still read from the package, and where a file would take its place
    assert "my_configs/models/eleatt_gru_1x512.yaml" in out
    assert "configs/extract/jhmdb_resnet50.yaml" in out

    # the same copy again: nothing to do
    assert cli_main(["configs", "copy", "jhmdb", "my_configs"]) == 0
    assert "unchanged" in capsys.readouterr().out

    edited = elsewhere / "my_configs" / "jhmdb" / "gru_split2.yaml"
    edited.write_text("# mine\n")
    assert cli_main(["configs", "copy", "jhmdb", "my_configs"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "my_configs/jhmdb/gru_split2.yaml exists with other content" in err
    assert "--force" in err
    assert edited.read_text() == "# mine\n"

    assert cli_main(["configs", "copy", "jhmdb", "my_configs", "--force"]) == 0
    assert edited.read_bytes() == shipped("jhmdb/gru_split2").read_bytes()


def test_copy_one_config_by_name_into_configs_where_the_readme_paths_read_it(elsewhere, capsys):
    assert cli_main(["configs", "copy", "tiny_random"]) == 0
    copy = Path("configs/extract/tiny_random.yaml")
    assert copy.read_bytes() == shipped("extract/tiny_random").read_bytes()
    assert find_config("configs/extract/tiny_random.yaml") == copy


def test_copy_of_an_unknown_name_copies_nothing(elsewhere, capsys):
    assert cli_main(["configs", "copy", "jhmdb/gru_split4", "out"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    close = err.split("close matches: ")[1].split(";")[0].split(", ")
    assert {"jhmdb/gru_split1", "jhmdb/gru_split3"} <= set(close)
    assert not (elsewhere / "out").exists()


def test_copy_into_a_folder_that_cannot_be_written_names_it(elsewhere, capsys):
    (elsewhere / "a_file").write_text("")
    assert cli_main(["configs", "copy", "models", "a_file/out"]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "cannot write to a_file/out/models" in err
    assert "copy into a writable folder" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_copy_into_a_read_only_folder_names_it(elsewhere, capsys):
    readonly = elsewhere / "ro"
    readonly.mkdir()
    readonly.chmod(0o555)
    try:
        assert cli_main(["configs", "copy", "models", str(readonly)]) == 3
    finally:
        readonly.chmod(0o755)
    err = capsys.readouterr().err
    assert f"cannot write to {readonly}" in err and "permission denied" in err
