"""The package as a user installs it: the wheel and the sdist carry every config and module,
the configs are found through importlib.resources, and ``--version`` says what a bug report
needs.

The full check (install the wheel into a fresh environment, run the quick demo in an empty
folder) is in ``.ci/run``: it needs a second environment, minutes rather than seconds.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import video_eleatt
from video_eleatt.cli import main as cli_main
from video_eleatt.config_files import shipped_names, shipped_root

REPO = Path(__file__).resolve().parents[1]
# What the build reads; copied so that the build leaves the checkout untouched.
BUILD_INPUTS = ("pyproject.toml", "README.md", "MANIFEST.in", "configs", "video_eleatt")


def _files_below(folder: Path) -> set[str]:
    return {
        path.relative_to(folder).as_posix()
        for path in folder.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The sdist and the wheel (built from the sdist, offline), as ``python -m build`` makes
    them in CI."""
    source = tmp_path_factory.mktemp("source")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in BUILD_INPUTS:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=ignore)
        else:
            shutil.copy2(REPO / name, source / name)
    dist = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(source)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (wheel,) = dist.glob("*.whl")
    (sdist,) = dist.glob("*.tar.gz")
    return {"wheel": wheel, "sdist": sdist}


def test_wheel_carries_every_file_under_configs_and_every_module(built):
    names = set(zipfile.ZipFile(built["wheel"]).namelist())
    configs = _files_below(REPO / "configs")
    assert len([name for name in configs if name.endswith(".yaml")]) >= 40
    missing = sorted(name for name in configs if f"video_eleatt/configs/{name}" not in names)
    assert missing == [], f"configs/ files missing from the wheel: {missing}"
    modules = {
        name for name in _files_below(REPO / "video_eleatt") if name.endswith((".py", ".cpp"))
    }
    assert "models/eleatt_gru_loop.cpp" in modules
    missing = sorted(name for name in modules if f"video_eleatt/{name}" not in names)
    assert missing == [], (
        f"modules or sources missing from the wheel (pyproject's package list and "
        f"package-data): {missing}"
    )
    # The shipped copy is the checkout's file, byte for byte.
    wheel = zipfile.ZipFile(built["wheel"])
    for name in ("demo/extract.yaml", "jhmdb/eleatt_gru_split1.yaml"):
        shipped = wheel.read(f"video_eleatt/configs/{name}")
        assert shipped == (REPO / "configs" / name).read_bytes()
    # Nothing outside the package (no top-level `configs` package in site-packages).
    assert {name.split("/")[0] for name in names} == {
        "video_eleatt",
        f"video_eleatt-{video_eleatt.__version__}.dist-info",
    }


def test_sdist_carries_every_file_under_configs(built):
    with tarfile.open(built["sdist"]) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    missing = sorted(
        name for name in _files_below(REPO / "configs") if f"configs/{name}" not in names
    )
    assert missing == []
    assert "video_eleatt/models/eleatt_gru_loop.cpp" in names


def test_configs_are_found_through_the_package_and_are_the_checkouts_in_development():
    # The editable install of scripts/setup.sh maps video_eleatt.configs onto configs/, so
    # an edit in the checkout is what every command reads.
    assert shipped_root().resolve() == (REPO / "configs").resolve()
    configs = _files_below(REPO / "configs")
    expected = sorted(name[: -len(".yaml")] for name in configs if name.endswith(".yaml"))
    assert list(shipped_names()) == expected


def test_version_gives_one_line_per_component(capsys):
    assert cli_main(["--version"]) == 0
    lines = capsys.readouterr().out.splitlines()
    labels = ["video_eleatt", "python", "torch", "torchvision", "timm", "decord", "PyAV"]
    assert [line.split(" ", 1)[0] for line in lines[: len(labels)]] == labels
    assert lines[0].startswith(f"video_eleatt {video_eleatt.__version__} (")
    import av
    import timm
    import torch
    import torchvision

    assert lines[2] == f"torch {torch.__version__}"  # with its build: +cpu, +cu132, ...
    assert lines[3] == f"torchvision {torchvision.__version__}"
    assert lines[4] == f"timm {timm.__version__}"
    assert lines[6].startswith(f"PyAV {av.__version__} (FFmpeg libavcodec ")
    cuda = "yes" if torch.cuda.is_available() else "no"
    assert lines[-1].startswith(f"CUDA available: {cuda}")
    assert len(lines) == len(labels) + 1
