"""What every settings section is built with: the packaged file, YAML reading and typed dataclass building.

Pure (no Spark): `settings` and `governance` both build their dataclasses here, so neither imports the other.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from bigbilbao.errors import BigBilbaoError, SettingsError

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "resources" / "bigbilbao.yaml"


def read_yaml(path: Path, error: type[BigBilbaoError]) -> Any:
    """Parse one YAML file, or raise `error` with one sentence naming the file (unreadable, not UTF-8, not YAML)."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as problem:
        message = f"{path.name}: cannot be read as YAML: {problem}"
        raise error(message) from problem


def build_dataclass(cls: type, raw: Any, where: str) -> Any:
    """Instantiate a settings dataclass from a mapping, rejecting unknown keys by name."""
    if not isinstance(raw, dict):
        msg = f"Settings key '{where or 'top level'}' must be a mapping, got {type(raw).__name__}."
        raise SettingsError(msg)
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        key = f"{where}.{unknown[0]}" if where else unknown[0]
        msg = f"Unknown settings key '{key}'; expected one of: {', '.join(sorted(known))}."
        raise SettingsError(msg)
    values = {name: _coerce(hints[name], value, f"{where}.{name}" if where else name) for name, value in raw.items()}
    try:
        return cls(**values)
    except TypeError as exc:
        msg = f"Settings section '{where or 'top level'}' is incomplete: {exc}."
        raise SettingsError(msg) from exc


def _coerce(hint: Any, value: Any, key: str) -> Any:
    """Check one value against its declared type (ints are accepted where floats are)."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        return _coerce(next(a for a in args if a is not type(None)), value, key)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return build_dataclass(hint, value, key)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            _wrong(key, "a list", value)
        return tuple(_coerce(args[0], v, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is Mapping:
        if not isinstance(value, dict):
            _wrong(key, "a mapping", value)
        return types.MappingProxyType({str(k): str(v) for k, v in value.items()})
    if hint is bool and not isinstance(value, bool):
        _wrong(key, "true or false", value)
    if hint is int and (isinstance(value, bool) or not isinstance(value, int)):
        _wrong(key, "a whole number", value)
    if hint is str and not isinstance(value, str):
        _wrong(key, "a string", value)
    return value


def _wrong(key: str, expected: str, value: Any) -> None:
    msg = f"Settings key '{key}' must be {expected}, got {value!r} ({type(value).__name__})."
    raise SettingsError(msg)
