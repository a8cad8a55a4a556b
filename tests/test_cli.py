"""The `video-eleatt` dispatcher: help, unknown commands, and every table entry resolves."""

import os
import re
import subprocess
import sys
from unittest import mock

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
def test_every_command_runs_and_prints_its_own_usage(name, capsys):
    """The table entry is imported and run: a missing module or function fails, and so does an
    entry pointing at another command's function (its usage names that command)."""
    with mock.patch.dict(os.environ):  # `extract` sets OMP_WAIT_POLICY: keep it to this test
        try:
            code = cli.main([name, "--help"])
        except SystemExit as exit_:  # argparse-style parsers exit after printing help
            code = exit_.code
    assert code == 0
    usage = capsys.readouterr().out.split("\n", 1)[0]
    assert re.match(rf"usage: video-eleatt (\[options\] )?{re.escape(name)}( |$)", usage), usage


def test_python_dash_m_entry_point():
    result = subprocess.run(
        [sys.executable, "-m", "video_eleatt", "--version"], capture_output=True, text=True
    )
    assert result.returncode == 0
    version = __import__("video_eleatt").__version__
    assert result.stdout.splitlines()[0].startswith(f"video_eleatt {version} (")


def test_envcheck_names_each_broken_package_and_its_fix(monkeypatch, capsys):
    from video_eleatt import envcheck

    assert envcheck.check() == []  # this environment works: every test here depends on it
    # None in sys.modules makes an import fail the way a missing package does
    for broken in ("torchvision.ops", "decord", "timm"):
        monkeypatch.setitem(sys.modules, broken, None)
    problems = envcheck.check()
    assert [problem.split(":", 1)[0] for problem in problems] == [
        "cannot import torchvision",
        "cannot import timm",
        "cannot import decord",
    ]  # in the order of envcheck.REQUIRED
    assert "torch and torchvision are not a matched pair" in problems[0]
    assert "fix: delete .venv and rerun scripts/setup.sh" in problems[2]
    assert envcheck.main() == 1
    err = capsys.readouterr().err
    assert "[setup] FAILED: the environment is not usable" in err
    assert all(problem.splitlines()[0] in err for problem in problems)
