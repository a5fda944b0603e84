"""Search spaces: what `sensorium tune TASK` may vary, declared by each task next to its config dataclass.

A `SearchSpace` is a tuple of `Param`s, each naming one dotted config key (`train.learning_rate`) with a
range or a list of choices, plus the objective (a per-epoch validation metric of the run's history and
its direction). A user narrows it with a JSON/YAML file that maps names to

- `{min: X, max: Y}` (optionally `log: true|false`, `step: S`): a narrower range (of a numeric choice:
  the choices inside it);
- `{values: [...]}`: these choices only;
- a plain value (or list, for list-valued keys): pinned, not searched.

`to_hyperparameters` turns a space into KerasTuner `HyperParameters`; `apply` turns a trial's values
back into a config dict. Choices of lists (`model.widths`) travel through KerasTuner as strings
(`"32,64,128"`) and come back as the lists.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from sensorium.pipelines.common.config import set_path
from sensorium.runtime.errors import UsageError

Kind = Literal["float", "int", "choice"]


@dataclass(frozen=True)
class Param:
    """One searched config key: a float or int range (`low`..`high`, optionally log-scaled or stepped)
    or a list of `values`."""

    name: str  # dotted config key, e.g. "train.learning_rate"
    kind: Kind
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    values: tuple[Any, ...] = ()
    help: str = ""

    def encode(self, value: Any) -> Any:
        """Config value -> KerasTuner value (choices of lists become "a,b,c")."""
        if self.kind == "choice" and isinstance(value, (list, tuple)):
            return ",".join(str(v) for v in value)
        return value

    def decode(self, value: Any) -> Any:
        """KerasTuner value -> config value."""
        if self.kind == "choice":
            for choice in self.values:
                if self.encode(choice) == value:
                    return list(choice) if isinstance(choice, tuple) else choice
            raise UsageError(f"search space: {value!r} is not a choice of {self.name}")
        if self.kind == "int":
            return int(value)
        return float(value)

    def contains(self, value: Any) -> bool:
        """True when `value` (a config value) is a point of this parameter's space."""
        if self.kind == "choice":
            key = self.encode(tuple(value) if isinstance(value, list) else value)
            return any(self.encode(c) == key for c in self.values)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return False
        if self.kind == "int" and int(value) != value:
            return False
        return self.low <= value <= self.high  # type: ignore[operator]

    def describe(self) -> str:
        if self.kind == "choice":
            return " | ".join(str(self.encode(v)) for v in self.values)
        scale = ", log" if self.log else f", step {self.step:g}" if self.step else ""
        return f"{self.low:g} .. {self.high:g}{scale}"


def Float(name: str, low: float, high: float, *, log: bool = False, step: float | None = None,
          help: str = "") -> Param:
    return Param(name, "float", float(low), float(high), log, step, (), help)


def Int(name: str, low: int, high: int, *, step: int | None = None, help: str = "") -> Param:
    return Param(name, "int", int(low), int(high), False, step, (), help)


def Choice(name: str, values: list[Any], help: str = "") -> Param:
    return Param(name, "choice", values=tuple(tuple(v) if isinstance(v, list) else v for v in values), help=help)


@dataclass(frozen=True)
class SearchSpace:
    """A task's search space and objective (`objective` is a column of the run's history.csv)."""

    task: str
    objective: str
    direction: Literal["min", "max"]
    params: tuple[Param, ...]
    fixed: dict[str, Any] = field(default_factory=dict)  # pinned by a space file: set in every trial's config

    def __post_init__(self) -> None:
        names = [p.name for p in self.params]
        if len(set(names)) != len(names):
            raise ValueError(f"search space of {self.task}: duplicate parameter names")

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.params]

    def get(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise UsageError(f"unknown search-space name {name!r}; the {self.task} search space has: "
                         f"{', '.join(self.names)}")

    def to_dict(self) -> dict[str, Any]:
        """The resolved space, JSON-able (written to TUNE_DIR/space.json)."""
        params = []
        for p in self.params:
            entry: dict[str, Any] = {"name": p.name, "kind": p.kind}
            if p.kind == "choice":
                entry["values"] = [list(v) if isinstance(v, tuple) else v for v in p.values]
            else:
                entry.update(min=p.low, max=p.high, log=p.log, step=p.step)
            params.append(entry)
        return {"task": self.task, "objective": self.objective, "direction": self.direction, "params": params,
                "fixed": self.fixed}

    def narrow(self, data: dict[str, Any], where: str = "space file") -> SearchSpace:
        """This space narrowed by a space file's mapping (see the module docstring); errors name the key."""
        if not isinstance(data, dict) or not data:
            raise UsageError(f"{where}: expected a mapping of search-space names to ranges, choices or values")
        params = {p.name: p for p in self.params}
        fixed = dict(self.fixed)
        for name, spec in data.items():
            if name not in params:
                raise UsageError(f"{where}: unknown name {name!r}; the {self.task} search space has: "
                                 f"{', '.join(self.names)}")
            param = params[name]
            if isinstance(spec, dict):
                params[name] = _narrowed(param, spec, f"{where}: {name}")
            else:
                if spec is None:
                    raise UsageError(f"{where}: {name} has no value (give a range, a list of values or one value)")
                fixed[name] = spec
                del params[name]
        if not params:
            raise UsageError(f"{where}: every parameter is pinned; nothing is left to search")
        return replace(self, params=tuple(params.values()), fixed=fixed)

    def to_hyperparameters(self, base: dict[str, Any]) -> Any:
        """KerasTuner HyperParameters of this space; defaults are the base config's values where they
        lie in the space (so the default configuration is a point a search can try first)."""
        import keras_tuner as kt

        hp = kt.HyperParameters()
        for p in self.params:
            current = get_path(base, p.name)
            default = p.encode(tuple(current) if isinstance(current, list) else current) \
                if current is not None and p.contains(current) else None
            if p.kind == "choice":
                hp.Choice(p.name, [p.encode(v) for v in p.values], default=default)
            elif p.kind == "int":
                hp.Int(p.name, int(p.low), int(p.high), step=int(p.step) if p.step else 1,
                       default=None if default is None else int(default))
            else:
                hp.Float(p.name, p.low, p.high, step=p.step, sampling="log" if p.log else "linear",
                         default=None if default is None else float(default))
        return hp

    def base_in_space(self, base: dict[str, Any]) -> bool:
        """True when every parameter's base-config value is a point of the space."""
        return all(get_path(base, p.name) is not None and p.contains(get_path(base, p.name)) for p in self.params)

    def apply(self, base: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
        """A config dict: `base` with the pinned values and a trial's (KerasTuner) `values` set."""
        import copy

        out = copy.deepcopy(base)
        for name, value in self.fixed.items():
            set_path(out, name, value)
        for p in self.params:
            if p.name in values:
                set_path(out, p.name, p.decode(values[p.name]))
        return out

    def decoded(self, values: dict[str, Any]) -> dict[str, Any]:
        """A trial's searched values as config values (KerasTuner's own `tuner/...` entries dropped)."""
        return {p.name: p.decode(values[p.name]) for p in self.params if p.name in values}


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UsageError(f"{where}: expected a number, got {value!r}")
    return float(value)


def _narrowed(param: Param, spec: dict[str, Any], where: str) -> Param:
    unknown = sorted(set(spec) - {"min", "max", "log", "step", "values"})
    if unknown:
        raise UsageError(f"{where}: unknown key(s) {', '.join(unknown)}; use min/max (log, step) or values")
    if "values" in spec:
        if set(spec) - {"values"}:
            raise UsageError(f"{where}: give either values or min/max, not both")
        values = spec["values"]
        if not isinstance(values, list) or not values:
            raise UsageError(f"{where}: values must be a non-empty list (an empty list leaves nothing to try)")
        if param.kind != "choice":
            values = [_number(v, where) for v in values]
            if param.kind == "int" and any(v != int(v) for v in values):
                raise UsageError(f"{where}: values must be whole numbers")
            values = [int(v) if param.kind == "int" else v for v in values]
        if len({repr(v) for v in values}) != len(values):
            raise UsageError(f"{where}: values repeat")
        return Choice(param.name, values, help=param.help)
    if "min" not in spec and "max" not in spec:
        raise UsageError(f"{where}: give min and/or max, or values")
    if param.kind == "choice":
        if set(spec) - {"min", "max"}:
            raise UsageError(f"{where}: a choice is narrowed by min/max or values only")
        low = _number(spec.get("min", -math.inf), where) if "min" in spec else -math.inf
        high = _number(spec.get("max", math.inf), where) if "max" in spec else math.inf
        if any(not isinstance(v, (int, float)) or isinstance(v, bool) for v in param.values):
            raise UsageError(f"{where}: its choices are not numbers; narrow it with values")
        kept = [v for v in param.values if low <= v <= high]
        if not kept:
            raise UsageError(f"{where}: the range {spec.get('min')} .. {spec.get('max')} keeps none of the choices "
                             f"{param.describe()} (empty range)")
        return replace(param, values=tuple(kept))
    low = _number(spec["min"], where) if "min" in spec else param.low
    high = _number(spec["max"], where) if "max" in spec else param.high
    if low > high:  # type: ignore[operator]
        raise UsageError(f"{where}: empty range (min {low:g} > max {high:g})")
    log = spec.get("log", param.log)
    if not isinstance(log, bool):
        raise UsageError(f"{where}: log must be true or false")
    if log and low <= 0:  # type: ignore[operator]
        raise UsageError(f"{where}: a log-scaled range needs min > 0")
    step = spec.get("step", None if log else param.step)
    if step is not None:
        step = _number(step, where)
        if step <= 0:
            raise UsageError(f"{where}: step must be positive")
    if param.kind == "int":
        if low != int(low) or high != int(high) or (step is not None and step != int(step)):  # type: ignore[arg-type]
            raise UsageError(f"{where}: an integer range needs whole numbers")
        if log:
            raise UsageError(f"{where}: integer ranges are not log-scaled")
        return Int(param.name, int(low), int(high), step=None if step is None else int(step), help=param.help)  # type: ignore[arg-type]
    return Float(param.name, low, high, log=log, step=None if log else step, help=param.help)  # type: ignore[arg-type]


def get_path(data: dict[str, Any], dotted: str) -> Any:
    """`data["a"]["b"]` for `dotted = "a.b"` (None when absent)."""
    node: Any = data
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node
