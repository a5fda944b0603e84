"""Dataclass configs: build from dicts (JSON/YAML files), apply command-line overrides, dump back.

A resolved config written to a run directory as `config.json` is valid `--config` input again.
"""
from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from sensorium.runtime.errors import UsageError

C = TypeVar("C")
MAX_CONFIG_BYTES = 1 << 20  # a config file is a few kB; anything near this is not a config
QUOTE_CHARS = 80  # values quoted in error messages are cut to about this many characters


def short_repr(value: Any, limit: int = QUOTE_CHARS) -> str:
    """`repr(value)` cut to about `limit` characters, for quoting a value in a one-line error (a huge or
    deeply nested value must not become a huge message)."""
    try:
        text = _bounded_repr(value)
    except Exception:  # a repr that fails (or recurses too deep) still names the type
        text = f"<{type(value).__name__}>"
    text = " ".join(text.split())  # one line
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _bounded_repr(value: Any) -> str:
    """A bounded repr: long strings, lists and mappings are elided by `reprlib` before they are built."""
    import reprlib

    r = reprlib.Repr()
    r.maxstring, r.maxother, r.maxlevel = QUOTE_CHARS, QUOTE_CHARS, 3
    r.maxlist = r.maxtuple = r.maxdict = r.maxset = 8
    return r.repr(value)


def config_to_dict(config: Any) -> dict[str, Any]:
    """Dataclass -> plain JSON-able dict (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def config_from_dict(cls: type[C], data: dict[str, Any], where: str = "config") -> C:
    """Build dataclass `cls` from `data`, recursing into nested dataclasses.

    Unknown keys and values of the wrong type fail with a UsageError naming the key path.
    """
    if not isinstance(data, dict):
        raise UsageError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields), key=str)
    if unknown:
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        named = ", ".join(_key_text(k) for k in unknown[:5]) + more
        raise UsageError(f"{where}: unknown key(s) {named}; valid: {', '.join(fields)}")
    kwargs = {name: _coerce(hints[name], value, f"{where}.{name}") for name, value in data.items()}
    return cls(**kwargs)


def _key_text(key: Any) -> str:
    """A mapping key as quoted in an error: a string as it is (cut), anything else as a short repr."""
    if isinstance(key, str) and key.isprintable():
        return key if len(key) <= QUOTE_CHARS else key[: QUOTE_CHARS - 3] + "..."
    return short_repr(key)


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return config_from_dict(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, where)
            except UsageError as exc:
                errors.append(str(exc))
        raise UsageError(errors[0] if errors else f"{where}: invalid value {short_repr(value)}")
    if origin is typing.Literal:
        if value not in args:
            raise UsageError(f"{where}: {short_repr(value)} is not one of {', '.join(map(repr, args))}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise UsageError(f"{where}: expected a list, got {short_repr(value)}")
        inner = args[0] if args else Any
        items = [_coerce(inner, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise UsageError(f"{where}: expected a mapping, got {short_repr(value)}")
        return dict(value)
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise UsageError(f"{where}: expected true or false, got {short_repr(value)}")
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tp is str and isinstance(value, str):
        return value
    raise UsageError(f"{where}: expected {getattr(tp, '__name__', tp)}, got {short_repr(value)}")


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a JSON or YAML config file into a dict.

    The file is untrusted: at most MAX_CONFIG_BYTES, and YAML without anchors and aliases (`&a`, `*a`,
    `<<: *a`), which would let a few hundred bytes expand into gigabytes."""
    path = Path(path)
    yaml_file = path.suffix.lower() in (".yaml", ".yml")
    kind = "YAML" if yaml_file else "JSON"
    text = _read_config_text(path)
    try:
        data = _parse_yaml(text) if yaml_file else json.loads(text)
    except RecursionError:
        raise UsageError(f"config file {path} is nested too deeply to be a config") from None
    except Exception as exc:  # json.JSONDecodeError, yaml.YAMLError
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UsageError(f"config file {path} is not valid {kind}: {first[:200]}") from None
    if not isinstance(data, dict):
        raise UsageError(f"config file {path} must hold a mapping of keys")
    return data


def _read_config_text(path: Path) -> str:
    """The text of a config file of at most MAX_CONFIG_BYTES."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise UsageError(f"config file not found: {path}") from None
    except OSError as exc:
        raise UsageError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise UsageError(f"config file {path} is larger than {MAX_CONFIG_BYTES // 1024} kB; a config is a few kB")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"config file {path} is not UTF-8 text (byte {exc.start})") from None


def _parse_yaml(text: str) -> Any:
    """`yaml.safe_load` that refuses anchors and aliases (see `load_config_file`)."""
    import yaml

    class NoAliasLoader(yaml.SafeLoader):
        def compose_node(self, parent: Any, index: Any) -> Any:
            event = self.peek_event()
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
                raise yaml.YAMLError(f"anchors and aliases (&name, *name) are not allowed in a config "
                                     f"(line {event.start_mark.line + 1})")
            return super().compose_node(parent, index)

    loader = NoAliasLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def set_path(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set `data["a"]["b"] = value` for `dotted = "a.b"`, creating nested dicts; a UsageError when a key on
    the way holds something else than a mapping (a config file's `train: 5` under `--epochs`)."""
    *parents, leaf = dotted.split(".")
    node = data
    for depth, key in enumerate(parents):
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            where = ".".join(parents[: depth + 1])
            raise UsageError(f"config: {where} must be a mapping to set {dotted}, got {short_repr(node)}")
    node[leaf] = value


def resolve_config(cls: type[C], file: str | Path | None, overrides: dict[str, Any]) -> C:
    """Defaults < config file < command-line overrides (dotted paths), validated into `cls`."""
    data = config_to_dict(cls())
    if file is not None:
        _merge(data, load_config_file(file), "config")
    for dotted, value in overrides.items():
        if value is not None:
            set_path(data, dotted, value)
    return config_from_dict(cls, data)


def _merge(base: dict[str, Any], new: dict[str, Any], where: str) -> None:
    for key, value in new.items():
        if isinstance(value, dict) and value and isinstance(base.get(key), dict) and base[key]:
            _merge(base[key], value, f"{where}.{key}")  # an explicit {} replaces (e.g. switches augmentation off)
        else:
            base[key] = value
