"""Typed configs: every hyper-parameter is read once from ``conf/base/parameters_<pipeline>.yml`` into a
frozen dataclass.

Defaults live only in ``conf/``: a config class declares fields without defaults, ``from_dict`` fills them
from the parameter tree, recursing into nested config classes, and stops with one line naming the key and
the file when a key is unknown (a typo) or missing. Code reads ``cfg.train.lr``, never
``options.get("lr", 0.001)``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import yaml

from gb_kedro.errors import InputDataError

C = TypeVar("C", bound="Config")


class Config:
    """Base of the typed configs (subclasses are ``@dataclass(frozen=True)``).

    ``SOURCE``: the parameter file the values come from (named in errors). ``KEY``: where the tree sits in
    it (``multimodal``, ``data_engineering.tiling``, ...).
    """

    SOURCE: ClassVar[str] = "conf/base/parameters.yml"
    KEY: ClassVar[str] = ""

    @classmethod
    def from_dict(
        cls: type[C], values: dict | None, key: str | None = None, source: str | None = None, **extra: Any
    ) -> C:
        """Build from a parameter tree; ``extra`` supplies fields that the stage fills in (e.g. ``seed``)."""
        key = cls.KEY if key is None else key
        source = source or cls.SOURCE
        values = {**dict(values or {}), **extra}
        fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise InputDataError(
                source, f"unknown parameter {_join(key, unknown[0])!r} (allowed: {', '.join(sorted(fields))})"
            )
        missing = sorted(set(fields) - set(values))
        if missing:
            raise InputDataError(source, f"missing parameter {_join(key, missing[0])!r}")
        hints = typing.get_type_hints(cls)
        kwargs = {name: _convert(hints[name], values[name], _join(key, name), source) for name in fields}
        return cls(**kwargs)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)  # type: ignore[call-overload]


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


def _convert(hint: Any, value: Any, key: str, source: str) -> Any:
    """Nested configs are built recursively; ``dict[str, <Config>]`` maps of them too; other values as given."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        hint = options[0] if len(options) == 1 else hint
        origin = typing.get_origin(hint)
    if isinstance(hint, type) and issubclass(hint, Config):
        if not isinstance(value, dict):
            raise InputDataError(source, f"parameter {key!r} must be a mapping, not {value!r}")
        return hint.from_dict(value, key=key, source=source)
    if origin is dict:
        _, value_hint = typing.get_args(hint)
        if isinstance(value_hint, type) and issubclass(value_hint, Config):
            return {k: value_hint.from_dict(v, key=f"{key}.{k}", source=source) for k, v in dict(value).items()}
    return value


def device_name(value: str, key: str, source: str) -> str:
    """``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda`` or ``cuda:<index>``."""
    if value not in ("auto", "cpu", "cuda") and not (value.startswith("cuda:") and value[5:].isdigit()):
        raise InputDataError(source, f"parameter {key!r} is {value!r}; allowed: auto, cpu, cuda, cuda:<index>")
    return value


def choice(value: str, allowed: tuple[str, ...], key: str, source: str) -> str:
    """An enumerated parameter, checked: one line listing the allowed values otherwise."""
    if value not in allowed:
        raise InputDataError(source, f"parameter {key!r} is {value!r}; allowed: {', '.join(allowed)}")
    return value


def base_parameters(conf_dir: str | Path = "conf/base") -> dict:
    """Every parameter tree of ``conf/base`` merged (for benchmarks and scripts run outside Kedro)."""
    params: dict = {}
    for path in sorted(Path(conf_dir).glob("parameters*.yml")):
        params.update(yaml.safe_load(path.read_text()) or {})
    return params


def base_subtree(dotted: str, conf_dir: str | Path = "conf/base", **overrides) -> dict:
    """The tree at ``dotted`` (``data_engineering.tiling``) of :func:`base_parameters`, with top-level overrides."""
    tree = base_parameters(conf_dir)
    for part in dotted.split("."):
        tree = tree[part]
    return {**tree, **overrides}
