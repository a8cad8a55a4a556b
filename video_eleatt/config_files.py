"""The configs shipped with the package, found by name or by path, with or without a checkout.

The repository's top-level ``configs/`` folder is installed as the package
``video_eleatt.configs`` (``package-dir`` in pyproject.toml), so a wheel, an sdist and an
editable install carry the same files and :func:`shipped_root` finds them through
``importlib.resources``: in a checkout it is that ``configs/`` folder itself.

How a config is found (every command that takes ``--config`` follows these rules, through
:func:`resolve_config_args`; so do the references between configs):

- **A path on disk always wins.** ``--config configs/jhmdb/gru_split1.yaml`` reads the file of
  the working folder when there is one: a checkout, or a copy made with
  ``video-eleatt configs copy`` to edit.
- **Otherwise the value names a shipped config**: ``jhmdb/gru_split1``, with or without
  ``.yaml`` and a leading ``configs/`` (so the README's paths work anywhere), or its file name
  alone when a single shipped config has it (``eleatt_gru_split1``).
- **A config that names another** (``model: ../models/gru_1x512.yaml`` beside it,
  ``data.cache: configs/extract/jhmdb_resnet50.yaml`` or ``base_config:`` from the working
  folder) reads the file on disk when it exists, else the shipped config of that name.
- An ambiguous or unknown name is a :class:`ConfigNameError` that lists the close matches.

>>> find_config("jhmdb/eleatt_gru_split1").name  # doctest: +SKIP
'eleatt_gru_split1.yaml'
>>> resolve_config_args(["fit", "--config", "eleatt_gru_split1"])  # doctest: +SKIP
['fit', '--config', '.../video_eleatt/configs/jhmdb/eleatt_gru_split1.yaml']
"""

from __future__ import annotations

import difflib
import functools
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any

PACKAGE = "video_eleatt.configs"
SUFFIXES = (".yaml", ".yml")
EVERYTHING = "all"  # `configs copy all`
LIST_HINT = "video-eleatt configs list"


class ConfigNameError(ValueError):
    """A config that is neither a file on disk nor one shipped config (the message lists the
    close matches and the fix)."""


# ----------------------------------------------------------------------------- the shipped set


@functools.cache
def shipped_root() -> Path:
    """The folder of the shipped configs (in a checkout: its ``configs/``).

    Raises:
        ConfigNameError: the package is installed in a form whose files are not on disk (a
            zip), which jsonargparse cannot read.
    """
    root = resources.files(PACKAGE)
    if not isinstance(root, Path) or not root.is_dir():
        raise ConfigNameError(
            f"the shipped configs ({root}) are not a folder on disk; install video_eleatt "
            "unzipped (`pip install video_eleatt`, not a zipapp)"
        )
    return root


@functools.cache
def shipped_names() -> tuple[str, ...]:
    """Every shipped config's name: its path below :func:`shipped_root`, ``/``-separated,
    without ``.yaml`` (``jhmdb/eleatt_gru_split1``), sorted."""
    root = shipped_root()
    return tuple(
        sorted(
            path.relative_to(root).with_suffix("").as_posix()
            for path in root.rglob("*")
            if path.suffix in SUFFIXES and path.is_file()
        )
    )


def shipped_folders() -> list[str]:
    """The folders of the shipped configs (``compare``, ``jhmdb``, ...), sorted."""
    return sorted({name.rsplit("/", 1)[0] for name in shipped_names() if "/" in name})


def shipped_path(name: str) -> Path:
    """The file of the shipped config ``name`` (a name of :func:`shipped_names`)."""
    root = shipped_root()
    for suffix in SUFFIXES:
        path = root / f"{name}{suffix}"
        if path.is_file():
            return path
    raise ConfigNameError(f"no shipped config is named {name!r}; see `{LIST_HINT}`")


def config_name(value: str | os.PathLike[str]) -> str:
    """The shipped-config name a path or name stands for: without a leading ``./``, ``../``
    or anything up to ``configs/``, and without ``.yaml``.

    >>> config_name("configs/jhmdb/gru_split1.yaml"), config_name("../models/gru_1x512.yaml")
    ('jhmdb/gru_split1', 'models/gru_1x512')
    """
    parts = list(PurePosixPath(os.fspath(value).replace("\\", "/")).parts)
    if "configs" in parts:
        parts = parts[len(parts) - parts[::-1].index("configs") :]
    parts = [part for part in parts if part not in ("/", ".", "..")]
    name = "/".join(parts)
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def match_shipped(value: str | os.PathLike[str]) -> list[str]:
    """The shipped names ``value`` could mean: ``[name]`` for an exact name or a file name that
    only one config has, several for an ambiguous file name, ``[]`` when none."""
    name = config_name(value)
    names = shipped_names()
    if name in names:
        return [name]
    if "/" in name:
        return []
    return [candidate for candidate in names if candidate.rsplit("/", 1)[-1] == name]


def close_matches(value: str | os.PathLike[str], limit: int = 6) -> list[str]:
    """Shipped names that look like ``value`` (by the whole name or by the file name)."""
    name = config_name(value)
    names = shipped_names()
    by_name = difflib.get_close_matches(name, names, n=limit, cutoff=0.6)
    basenames: dict[str, list[str]] = {}
    for candidate in names:
        basenames.setdefault(candidate.rsplit("/", 1)[-1], []).append(candidate)
    base = name.rsplit("/", 1)[-1]
    by_base = [
        full
        for close in difflib.get_close_matches(base, list(basenames), n=limit, cutoff=0.6)
        for full in basenames[close]
    ]
    folder = name.split("/", 1)[0]
    in_folder = [candidate for candidate in names if candidate.startswith(f"{folder}/")]
    return list(dict.fromkeys([*by_name, *by_base, *in_folder]))[:limit]


def find_shipped(value: str | os.PathLike[str], what: str = "config") -> Path:
    """The shipped config that ``value`` names (see the module docstring).

    Args:
        value: a name (``jhmdb/gru_split1``, ``gru_split1``) or a path whose tail names one.
        what: how the error messages call the value (``"config"``, ``"data.cache"``, ...).

    Raises:
        ConfigNameError: ``value`` names a folder, several configs or none; the message lists
            the candidates.
    """
    matches = match_shipped(value)
    if len(matches) == 1:
        return shipped_path(matches[0])
    if matches:
        raise ConfigNameError(
            f"{what} {os.fspath(value)!r} is ambiguous: it could be any of the shipped configs "
            f"{', '.join(matches)}; give one of these names"
        )
    name = config_name(value)
    if name in shipped_folders():
        inside = [candidate for candidate in shipped_names() if candidate.startswith(f"{name}/")]
        raise ConfigNameError(
            f"{what} {os.fspath(value)!r} is a folder of shipped configs, not one config; "
            f"name one of {', '.join(inside)}"
        )
    close = close_matches(value)
    hint = f"close matches: {', '.join(close)}; " if close else ""
    raise ConfigNameError(
        f"{what} {os.fspath(value)!r} is no file (looked in {Path.cwd()}) and no shipped "
        f"config; {hint}all names: `{LIST_HINT}`"
    )


def find_config(
    value: str | os.PathLike[str],
    relative_to: str | os.PathLike[str] | None = None,
    what: str = "config",
) -> Path:
    """The config file ``value`` means: a file on disk (beside ``relative_to`` first, when
    given, then from the working folder) as it is, else the shipped config it names.

    A path that exists is returned unchanged (relative stays relative), so configs recorded
    by path keep their identity in a checkout.

    Raises:
        ConfigNameError: no such file and no single shipped config of that name.
    """
    candidates = [Path(relative_to) / value] if relative_to is not None else []
    for candidate in [*candidates, Path(value)]:
        if candidate.is_file():
            return candidate
    return find_shipped(value, what)


def is_inline_yaml(value: str) -> bool:
    """Whether a ``--config`` value is YAML content rather than a path or a name."""
    return "\n" in value or ": " in value or value.lstrip().startswith(("{", "["))


# ----------------------------------------------------------------------------- command lines


def resolve_config_args(argv: Sequence[str], flags: Sequence[str] = ("--config",)) -> list[str]:
    """``argv`` with every ``--config NAME`` (and ``--config=NAME``) made a real path.

    Values that are YAML content are left alone. A config on disk stays as it is, unless one
    of its sections names a file that is neither beside it nor in the working folder but is a
    shipped config: then the config goes on as YAML content with those sections' files made
    absolute (jsonargparse reads section files relative to the config's folder only).

    Raises:
        ConfigNameError: a value that is no file and no single shipped config.
    """
    resolved: list[str] = []
    position = 0
    argv = list(argv)
    while position < len(argv):
        arg = argv[position]
        flag, sep, value = arg.partition("=")
        if flag in flags and sep and flag.startswith("--"):
            resolved.append(f"{flag}={_resolve_config_value(value)}")
        elif arg in flags and position + 1 < len(argv):
            resolved += [arg, _resolve_config_value(argv[position + 1])]
            position += 1
        else:
            resolved.append(arg)
        position += 1
    return resolved


def _resolve_config_value(value: str) -> str:
    if is_inline_yaml(value) or not value:
        return value
    path = find_config(value)
    return _with_section_files(path)


def section_files(content: Any) -> dict[str, str]:
    """Top-level sections of a config given as a file (``model: ../models/gru_1x512.yaml``)."""
    if not isinstance(content, dict):
        return {}
    return {
        str(key): value
        for key, value in content.items()
        if isinstance(value, str) and value.endswith(SUFFIXES) and "\n" not in value
    }


def _read_yaml(path: Path) -> Any:
    import yaml

    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None  # the parser that reads it next reports what is wrong


def _with_section_files(path: Path) -> str:
    """``path``, or its content with section files made absolute when one of them is only in
    the shipped set."""
    content = _read_yaml(path)
    sections = section_files(content)
    if not sections or all((path.parent / value).is_file() for value in sections.values()):
        return str(path)
    import yaml

    resolved = dict(content)
    for key, value in sections.items():
        beside = path.parent / value
        if beside.is_file():
            resolved[key] = str(beside.resolve())
        else:
            what = f"{key}: {value} (in {path})"
            resolved[key] = str(find_config(value, what=what).resolve())
    return yaml.safe_dump(resolved, sort_keys=False)


# ----------------------------------------------------------------------------- list and copy


@dataclass
class ShippedConfig:
    """One shipped config: its name, file and the first line of its leading comment."""

    name: str
    path: Path
    summary: str


def list_configs(folder: str | None = None) -> list[ShippedConfig]:
    """The shipped configs, all or those of one folder.

    Raises:
        ConfigNameError: ``folder`` is not a folder of the shipped set.
    """
    names = shipped_names()
    if folder is not None:
        folder = config_name(folder).strip("/")
        if folder not in shipped_folders():
            close = difflib.get_close_matches(folder, shipped_folders(), n=3, cutoff=0.5)
            hint = f"close matches: {', '.join(close)}; " if close else ""
            raise ConfigNameError(
                f"no shipped config folder {folder!r}; {hint}folders: "
                f"{', '.join(shipped_folders())}"
            )
        names = tuple(name for name in names if name.startswith(f"{folder}/"))
    return [ShippedConfig(name, shipped_path(name), _summary(shipped_path(name))) for name in names]


def _summary(path: Path) -> str:
    """The first comment line of a config (what it is), without the ``#``."""
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            return stripped.lstrip("#").strip()
        if stripped:
            break
    return ""


def select_for_copy(name: str) -> list[str]:
    """The shipped names ``configs copy NAME`` copies: every config for ``all``, a folder's
    configs, or one config.

    Raises:
        ConfigNameError: an unknown or ambiguous name (with the close matches).
    """
    if name == EVERYTHING:
        return list(shipped_names())
    folder = config_name(name).strip("/")
    if folder in shipped_folders():
        return [candidate for candidate in shipped_names() if candidate.startswith(f"{folder}/")]
    return [config_name(find_shipped(name).relative_to(shipped_root()).as_posix())]


@dataclass
class CopyOutcome:
    """What :func:`copy_configs` did, and the configs the copies name that are still read from
    the package: ``read_from_package`` holds the paths where a file would take their place."""

    written: list[Path] = field(default_factory=list)
    unchanged: list[Path] = field(default_factory=list)
    read_from_package: list[Path] = field(default_factory=list)


class CopyRefused(ValueError):
    """Files exist where the copy would write (the message names them and the fix)."""


def copy_configs(
    name: str, destination: str | os.PathLike[str], force: bool = False
) -> CopyOutcome:
    """Copies shipped configs into ``destination``, keeping their folders
    (``jhmdb/gru_split1`` goes to ``<destination>/jhmdb/gru_split1.yaml``), so references
    between them (``model: ../models/...``) work between the copies too.

    Nothing is written when a file with other content exists at a target (unless ``force``);
    a target that already holds the same content is left as it is.

    Raises:
        ConfigNameError: ``name`` names no shipped config or folder.
        CopyRefused: targets exist and ``force`` is False.
        OSError: the destination cannot be written.
    """
    destination = Path(destination)
    names = select_for_copy(name)
    targets = {
        candidate: destination / shipped_path(candidate).relative_to(shipped_root())
        for candidate in names
    }
    outcome = CopyOutcome()
    conflicts = []
    for candidate, target in targets.items():
        if target.exists() or target.is_symlink():
            same = target.is_file() and target.read_bytes() == shipped_path(candidate).read_bytes()
            if same:
                outcome.unchanged.append(target)
            else:
                conflicts.append(target)
    if conflicts and not force:
        more = f" (and {len(conflicts) - 1} more)" if len(conflicts) > 1 else ""
        raise CopyRefused(
            f"{conflicts[0]} exists{more} with other content; pass --force to overwrite, or "
            "copy into another folder"
        )
    for candidate, target in targets.items():
        if target in outcome.unchanged:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shipped_path(candidate), target)
        outcome.written.append(target)
    outcome.read_from_package = _references_left_in_package(list(targets.values()))
    return outcome


def config_references(path: Path) -> list[tuple[str, Path | None]]:
    """The configs a config names: ``(value, folder it is relative to)`` for section files
    (relative to the config's folder) and ``data.cache`` / ``base_config`` entries ending in
    ``.yaml`` (relative to the working folder: None)."""
    content = _read_yaml(path)
    if not isinstance(content, dict):
        return []
    references: list[tuple[str, Path | None]] = [
        (value, path.parent) for value in section_files(content).values()
    ]
    data = content.get("data")
    cache = data.get("cache") if isinstance(data, dict) else None
    base = content.get("base_config")
    base_list = base if isinstance(base, list) else [base]
    for value in [cache, *base_list]:
        if isinstance(value, str) and value.endswith(SUFFIXES):
            references.append((value, None))
    return references


def _references_left_in_package(copies: list[Path]) -> list[Path]:
    """Where files would have to be for the configs that the copies name to be read from disk,
    for those that are read from the package now."""
    left = []
    for copy in copies:
        for value, relative_to in config_references(copy):
            local = Path(os.path.normpath(relative_to / value)) if relative_to else Path(value)
            if not local.is_file() and len(match_shipped(value)) == 1:
                left.append(local)
    return list(dict.fromkeys(left))
