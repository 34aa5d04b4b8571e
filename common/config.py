"""Dataclass configs loaded from YAML, with unknown or mistyped keys reported by name."""
from __future__ import annotations

import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from common.errors import MDAFError

T = TypeVar("T")


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, reading `1e-3` as a float as YAML 1.2 does (YAML 1.1, PyYAML's
    default, needs a dot: `1.0e-3`, and reads `1e-3` as the string '1e-3')."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)?(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing file or a non-mapping top level is an MDAFError."""
    path = Path(path)
    if not path.is_file():
        raise MDAFError(f"{path}: config file not found")
    try:
        data = yaml.load(path.read_text(), Loader=_Loader) or {}
    except yaml.YAMLError as exc:
        raise MDAFError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise MDAFError(f"{path}: expected a mapping of keys to values at the top level")
    return data


def from_dict(cls: type[T], data: dict[str, Any], where: str = "config", base: T | None = None) -> T:
    """Build dataclass `cls` from `data`, recursing into nested dataclass fields.

    Keys missing from `data` take their defaults: `base`'s values when given, else the
    dataclass's. A nested config given in part keeps the rest of its field's default (BST's
    `mlp: {hidden: [64]}` keeps BST's head dropout, not a generic MLP's); a plain mapping (a dict
    of widths) is replaced whole. Unknown or missing keys and values of the wrong type raise
    MDAFError naming `where` and the key.
    """
    if not isinstance(data, dict):
        raise MDAFError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise MDAFError(f"{where}: unknown key(s) {unknown}; expected some of {sorted(fields)}")
    kwargs = {name: getattr(base, name) for name in fields if name not in data} if base is not None else {}
    missing = [name for name, f in fields.items() if name not in data and name not in kwargs and f.init
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise MDAFError(f"{where}: missing key(s) {missing}")
    for name, value in data.items():
        default = getattr(base, name) if base is not None else _default(fields[name])
        kwargs[name] = _coerce(hints[name], value, f"{where}.{name}", default)
    return cls(**kwargs)


def _default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return None


def _coerce(hint: Any, value: Any, where: str, default: Any = None) -> Any:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where, default if isinstance(default, hint) else None)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, where)
            except MDAFError as exc:
                errors.append(str(exc))
        raise MDAFError(errors[0] if errors else f"{where}: unexpected value {value!r}")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise MDAFError(f"{where}: expected a list, got {value!r}")
        (item,) = typing.get_args(hint)[:1] or (Any,)
        return [_coerce(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise MDAFError(f"{where}: expected a mapping, got {value!r}")
        _, item = typing.get_args(hint) or (Any, Any)
        return {k: _coerce(item, v, f"{where}.{k}") for k, v in value.items()}
    if hint is Any:
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool) and not (isinstance(value, hint) and
                                                 not (hint is int and isinstance(value, bool))):
        raise MDAFError(f"{where}: expected {hint.__name__}, got {value!r}")
    return value


def load_config(cls: type[T], path: str | Path | None, overrides: dict[str, Any] | None = None) -> T:
    """Defaults of `cls`, updated by the YAML at `path` (if any), then by `overrides`."""
    data: dict[str, Any] = load_yaml(path) if path is not None else {}
    data.update(overrides or {})
    return from_dict(cls, data, str(path) if path is not None else cls.__name__)
