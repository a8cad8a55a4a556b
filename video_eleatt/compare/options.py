"""Options of a config dataclass from a YAML file and the command line (jsonargparse).

``--config x.yaml`` plus one option per dataclass field; the comparison
(:class:`~video_eleatt.compare.plan.CompareConfig`) and the attention maps use it.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, TypeVar

from jsonargparse import ActionConfigFile, ArgumentParser, Namespace

Config = TypeVar("Config")


def dataclass_parser(
    prog: str, description: str, config_help: str, config_cls: type
) -> ArgumentParser:
    """``--config`` (a YAML file) plus every field of the dataclass ``config_cls``; errors
    raise ``jsonargparse.ArgumentError`` instead of exiting."""
    parser = ArgumentParser(prog=prog, description=description, exit_on_error=False)
    parser.add_argument("--config", action=ActionConfigFile, help=config_help)
    parser.add_class_arguments(config_cls, None)
    return parser


def parse_dataclass(
    parser: ArgumentParser, argv: list[str], config_cls: type[Config]
) -> tuple[Config, Namespace]:
    """``(config_cls instance, namespace)`` from ``argv``.

    Raises:
        jsonargparse.ArgumentError: unknown or mistyped options, unreadable YAML.
    """
    namespace = parser.parse_args(argv)
    values: Any = parser.instantiate(namespace)
    return config_cls(**{f.name: values[f.name] for f in fields(config_cls)}), namespace
