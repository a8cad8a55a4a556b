"""The `video-eleatt` dispatcher: help, unknown commands, and every table entry resolves."""

import importlib
import subprocess
import sys

import pytest

from video_eleatt import cli


def test_help_lists_every_command(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in cli.COMMANDS:
        assert name in out


def test_unknown_command_names_valid_ones(capsys):
    assert cli.main(["fitt"]) == 2
    err = capsys.readouterr().err
    assert "unknown command 'fitt'" in err
    assert "fit" in err and "extract" in err


@pytest.mark.parametrize("name", sorted(cli.COMMANDS))
def test_every_command_target_exists(name):
    module_name, function_name = cli.COMMANDS[name][0].split(":")
    module = importlib.import_module(module_name)
    assert callable(getattr(module, function_name))


def test_python_dash_m_entry_point():
    result = subprocess.run(
        [sys.executable, "-m", "video_eleatt", "--version"], capture_output=True, text=True
    )
    assert result.returncode == 0
    assert result.stdout.strip() == __import__("video_eleatt").__version__


def test_envcheck_passes_in_this_environment():
    from video_eleatt import envcheck

    assert envcheck.check() == []
