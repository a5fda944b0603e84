"""The run directory: the one unit users pass around (layout in CONTRACTS.md).

This module alone reads and writes it, atomically. `status` becomes `complete` last; a directory that is
not complete is never used for inference and `train --resume` continues it.

A run directory may come from someone else, so what is read from it is checked (`read_json_object`: size,
nesting, the types of the fields read) and nothing is written through a symbolic link inside it. Later
evaluations go to `evaluations/<data>/` (`evaluation_dir`), never over what training recorded.
"""
from __future__ import annotations

import csv
import datetime as _dt
import hashlib
import io
import json
import logging
import math
import os
import platform
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sensorium.runtime.atomic import atomic_write_json, atomic_write_text, inside
from sensorium.runtime.errors import ModelError, SensoriumError, UsageError

log = logging.getLogger(__name__)
C = TypeVar("C")

SCHEMA_VERSION = 1
MANIFEST = "sensorium.json"
STATUSES = ("training", "complete", "failed")
EVALUATIONS = "evaluations"  # RUN/evaluations/<data>/: later evaluations
FIRST_CHECKPOINT = "checkpoints/state.json"  # callbacks.RunState writes it once the first epoch is checkpointed
# Limits on what is read from a run or job folder (they hold far less)
MAX_JSON_BYTES = 64 << 20  # any JSON file (metrics.json with a large confusion matrix)
MAX_MANIFEST_BYTES = 1 << 20  # sensorium.json, config.json
MAX_LABELS_BYTES = 16 << 20  # labels.txt
MAX_JSON_DEPTH = 64  # nesting of lists and objects

# The fields read from a manifest and config.json, and their types (see `read_json_object`)
MANIFEST_SHAPE: dict[str, Any] = {"task": str, "status": set(STATUSES), "resumed?": int,
                                  "worker?": (type(None), {"task": str}), "summary?": (type(None), dict)}
CONFIG_SHAPE: dict[str, Any] = {"data?": {"spec?": str}, "model?": {"image_size?": (type(None), [int])},
                                "train?": dict, "seed?": int}


# === Checked JSON ===
_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false", dict: "an object",
               list: "a list", type(None): "null"}


def _describe(shape: Any) -> str:
    """What a shape asks for, in words."""
    if isinstance(shape, tuple):
        return " or ".join(_describe(s) for s in shape)
    if isinstance(shape, list):
        return f"a list of {_describe(shape[0]).removeprefix('a ').removeprefix('an ')}s"
    if isinstance(shape, dict):
        return "an object"
    if isinstance(shape, set):
        return "one of " + ", ".join(sorted(map(str, shape)))
    return _TYPE_NAMES.get(shape, shape.__name__)


def _outer(shape: Any) -> type | tuple[type, ...]:
    """The Python type a value of `shape` has on the outside (a list for `[...]`, ...)."""
    if isinstance(shape, (list, dict)):
        return type(shape)
    if isinstance(shape, set):
        return str
    return shape if isinstance(shape, type) else ()


def _kind(value: Any) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def shape_error(value: Any, shape: Any, where: str = "") -> str | None:
    """Why `value` does not have `shape`, or None when it does.

    A shape is a type (int excludes bool; float takes int), a tuple of alternatives, `[item shape]` for a
    list, `{"key": shape, "key?": shape}` for an object (keys ending in "?" may be missing, others
    are ignored) or a set of allowed values."""
    at = f"{where}: " if where else ""
    if isinstance(shape, tuple):
        errors = [shape_error(value, s, where) for s in shape]
        if None in errors:
            return None
        alike = [e for s, e in zip(shape, errors) if isinstance(value, _outer(s))]  # a list of what: say so
        return alike[0] if len(alike) == 1 else f"{at}expected {_describe(shape)}, not {_kind(value)}"
    if isinstance(shape, set):
        return None if isinstance(value, str) and value in shape else f"{at}expected {_describe(shape)}"
    if isinstance(shape, list):
        if not isinstance(value, list):
            return f"{at}expected {_describe(shape)}, not {_kind(value)}"
        return next((e for i, v in enumerate(value) if (e := shape_error(v, shape[0], f"{where}[{i}]"))), None)
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            return f"{at}expected an object, not {_kind(value)}"
        for key, sub in shape.items():
            name = key.removesuffix("?")
            if name not in value:
                if key.endswith("?"):
                    continue
                return f"{where + '.' if where else ''}{name} is missing"
            error = shape_error(value[name], sub, f"{where}.{name}" if where else name)
            if error:
                return error
        return None
    if isinstance(value, bool) and shape is not bool:
        return f"{at}expected {_describe(shape)}, not {_kind(value)}"
    if shape is float and isinstance(value, int):
        return None
    return None if isinstance(value, shape) else f"{at}expected {_describe(shape)}, not {_kind(value)}"


def _too_deep(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether lists and objects nest more than `limit` levels (walked without recursion)."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        for child in children:
            if isinstance(child, (dict, list)):
                if depth + 1 > limit:
                    return True
                stack.append((child, depth + 1))
    return False


def read_json_object(path: str | Path, shape: Mapping[str, Any] | None = None, *,
                     error: type[SensoriumError] = ModelError, max_bytes: int = MAX_JSON_BYTES) -> dict[str, Any]:
    """The JSON object in `path`, checked as untrusted input: at most `max_bytes`, then `parse_json_object`.
    Anything wrong is one `error` line naming the file; a missing file raises FileNotFoundError."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read(max_bytes + 1)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise error(f"{path}: cannot read it ({exc.strerror or exc})") from None
    if len(raw) > max_bytes:
        raise error(f"{path}: larger than {max_bytes >> 20 or 1} MB; not a file Sensorium wrote")
    return parse_json_object(raw, str(path), shape, error=error)


def parse_json_object(raw: bytes, name: str, shape: Mapping[str, Any] | None = None, *,
                      error: type[SensoriumError] = ModelError) -> dict[str, Any]:
    """The JSON object in `raw` (the bytes of the file `name`): UTF-8, nested at most MAX_JSON_DEPTH
    levels, an object whose fields have `shape` (see `shape_error`); else one `error` line naming `name`."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise error(f"{name}: not UTF-8 text (byte {exc.start})") from None
    except RecursionError:
        raise error(f"{name}: nested too deeply") from None
    except ValueError as exc:
        raise error(f"{name}: not valid JSON ({str(exc).splitlines()[0][:200]})") from None
    if not isinstance(data, dict):
        raise error(f"{name}: expected a JSON object, not {_kind(data)}")
    if _too_deep(data):
        raise error(f"{name}: nested more than {MAX_JSON_DEPTH} levels deep")
    problem = shape_error(data, dict(shape or {}))
    if problem:
        raise error(f"{name}: {problem}")
    return data


def read_text_lines(path: str | Path, *, max_bytes: int = MAX_LABELS_BYTES) -> list[str]:
    """The lines of a small UTF-8 text file of a model (labels.txt), at most `max_bytes`; anything else
    is a ModelError naming the file. A missing file raises FileNotFoundError."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read(max_bytes + 1)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise ModelError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    if len(raw) > max_bytes:
        raise ModelError(f"{path}: larger than {max_bytes >> 20 or 1} MB; not a list of labels")
    try:
        return raw.decode("utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise ModelError(f"{path}: not UTF-8 text (byte {exc.start})") from None


# === Evaluation folders ===
_SPLIT_SUFFIX = re.compile(r"@(train|validation|test)(\[[^\]]*\])?$")
_UNSAFE = re.compile(r"[^A-Za-z0-9.@-]+")
MAX_NAME = 100


def read_history(path: Path) -> dict[str, list[float]]:
    """history.csv -> {column: values per epoch} (empty when there is none yet)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    columns: dict[str, list[float]] = {}
    for row in csv.DictReader(io.StringIO(text)):
        for key, value in row.items():
            try:
                columns.setdefault(key, []).append(float(value))
            except (TypeError, ValueError):
                columns.setdefault(key, []).append(math.nan)
    return columns


def evaluation_name(data: str) -> str:
    """A folder name for an evaluation on the data spec `data`: the spec (with `@test` added when it names
    no split, as evaluate's default), each run of characters other than letters, digits, `.`, `-` and `@`
    replaced by `_`, no leading or trailing `_` or `.`; cut to 100 characters with a hash of the spec
    when longer. `builtin:mnist@test` -> `builtin_mnist@test`."""
    text = data if _SPLIT_SUFFIX.search(data) else f"{data}@test"
    name = _UNSAFE.sub("_", text).strip("._") or "data"
    if len(name) > MAX_NAME:
        name = f"{name[:MAX_NAME - 9]}-{hashlib.sha256(text.encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"
    return name


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for dist in ("sensorium", "tensorflow", "keras", "numpy"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


@dataclass
class RunDir:
    """A run directory on disk.

    `chief` is False in a non-chief worker of a multi-worker run (see `training.start_training`): its
    directory holds only what that worker needs to resume and is cleared when training ends; the chief's
    run directory gets the model and the reports.

    `deadline` (a `time.monotonic()` value, set by a tuning search with a time budget) stops training
    between batches once passed; the directory stays `training`, resumable from its last epoch.
    """

    path: Path
    chief: bool = True
    deadline: float | None = None

    def __post_init__(self) -> None:
        self.path = Path(self.path)

    # === Layout ===
    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST

    @property
    def model_path(self) -> Path:
        return self.path / "model.keras"

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    @property
    def labels_path(self) -> Path:
        return self.path / "labels.txt"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.json"

    @property
    def history_path(self) -> Path:
        return self.path / "history.csv"

    @property
    def card_path(self) -> Path:
        return self.path / "model_card.md"

    def sub(self, name: str) -> Path:
        """A sub-folder (plots, splits, checkpoints, logs, exports), created on demand (never through a link)."""
        p = inside(self.path, name)
        p.mkdir(parents=True, exist_ok=True)
        return p

    @property
    def replaced_path(self) -> Path:
        """Where `create(overwrite=True)` keeps the run it replaces until the new one has started."""
        return self.path.parent / f".{self.path.name}.replaced"

    def evaluation_dir(self, data: str) -> Path:
        """`evaluations/<name of data>/`: where a later evaluation on `data` goes (see `evaluation_name`)."""
        return inside(self.path, Path(EVALUATIONS) / evaluation_name(data))

    # === Manifest ===
    @staticmethod
    def is_run_dir(path: str | Path) -> bool:
        return (Path(path) / MANIFEST).is_file()

    def read_manifest(self) -> dict[str, Any]:
        try:
            return read_json_object(self.manifest_path, MANIFEST_SHAPE, max_bytes=MAX_MANIFEST_BYTES)
        except FileNotFoundError:
            raise ModelError(f"{self.path} is not a Sensorium run directory (no {MANIFEST})") from None

    def _write_manifest(self, data: dict[str, Any]) -> None:
        atomic_write_json(inside(self.path, MANIFEST), data)

    @classmethod
    def create(cls, path: str | Path, task: str, *, resume: bool = False, overwrite: bool = False) -> RunDir:
        """Start a run directory for `task` (status `training`).

        An existing run directory is only reused with `resume` (same task, not complete) or replaced
        with `overwrite`; a non-empty folder that is not a run directory is never touched. A replaced run
        is kept aside (`replaced_path`) until the new one has started: see `settle_replacement`.
        """
        run = cls(Path(path))
        if run.path.exists() and not run.path.is_dir():
            raise UsageError(f"--out {run.path} exists and is not a folder")
        existing = run.read_manifest() if run.is_run_dir(run.path) else None
        if resume:
            if existing is None:
                raise UsageError(f"--resume: {run.path} is not a run directory to resume")
            if existing["task"] != task:
                raise UsageError(f"--resume: {run.path} holds a '{existing['task']}' run, not '{task}'")
            if existing["status"] == "complete":
                raise UsageError(f"--resume: {run.path} is already complete")
            run.refuse_links()
            existing["status"] = "training"
            existing["resumed"] = existing.get("resumed", 0) + 1
            run._write_manifest(existing)
            return run
        if existing is not None and not overwrite:
            raise UsageError(
                f"{run.path} already holds a run (status {existing['status']}); "
                "use --resume to continue it, --overwrite to replace it, or another --out"
            )
        if existing is None and run.path.is_dir() and any(run.path.iterdir()):
            raise UsageError(f"--out {run.path} is a non-empty folder that is not a run directory")
        if existing is not None:
            run = cls(run.path.absolute())  # the folder is renamed: a relative path could follow it
            run._move_aside()
        run.path.mkdir(parents=True, exist_ok=True)
        run._write_manifest(
            {
                "schema_version": SCHEMA_VERSION,
                "task": task,
                "status": "training",
                "created": _now(),
                "versions": _versions(),
            }
        )
        return run

    def _move_aside(self) -> None:
        """Rename this run to `replaced_path`. A replaced run left there by an earlier replacement that never
        settled (a killed process) stays when this run never started, which is then removed."""
        backup = self.replaced_path
        if backup.exists() or backup.is_symlink():
            if not self.has_started():
                _remove(self.path)
                return
            _remove(backup)
        os.replace(self.path, backup)
        log.info("keeping the previous run as %s until the new one has its first checkpoint", backup)

    def has_started(self) -> bool:
        """Whether this run got as far as its first checkpoint (or is complete)."""
        if (self.path / FIRST_CHECKPOINT).is_file():
            return True
        try:
            return self.read_manifest()["status"] == "complete"
        except ModelError:
            return False

    def settle_replacement(self) -> bool:
        """Once training ended or stopped: the run this one replaced is deleted when this one has started
        (its first checkpoint), otherwise this one is deleted and the replaced run put back. Returns
        whether this run stands. Nothing to do (True) when it replaced nothing."""
        backup = self.replaced_path
        if not (backup.exists() or backup.is_symlink()):
            return True
        if self.has_started():
            _remove(backup)
            return True
        _remove(self.path)
        os.replace(backup, self.path)
        log.warning("%s: the new run stopped before its first checkpoint; the previous run is back in place",
                    self.path)
        return False

    def set_status(self, status: str, **extra: Any) -> None:
        """Record `status` (and `extra` fields) in the manifest; `complete` and `failed` also settle a
        replacement (`settle_replacement`)."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}")
        data = self.read_manifest()
        data["status"] = status
        data["updated"] = _now()
        data.update(extra)
        self._write_manifest(data)
        if status != "training":
            self.settle_replacement()

    def record_epochs_change(self, old: int, new: int) -> None:
        """Record, in the manifest's `epochs_changed` list, that a resume moved the run's end from `old`
        to `new` epochs (an optimizer restored from a checkpoint keeps the learning-rate schedule it was
        compiled with, so the record says what that schedule was planned for)."""
        data = self.read_manifest()
        changes = data.get("epochs_changed")
        changes = changes if isinstance(changes, list) else []
        data["epochs_changed"] = [*changes, {"from": old, "to": new, "at": _now()}]
        self._write_manifest(data)

    @property
    def task(self) -> str:
        return self.read_manifest()["task"]

    def require_complete(self, task: str | None = None) -> dict[str, Any]:
        """The manifest of a finished run, else a ModelError saying why it cannot be used."""
        data = self.read_manifest()
        if task is not None and data["task"] != task:
            raise ModelError(f"{self.path} is a '{data['task']}' model, not '{task}'")
        if data.get("worker"):
            raise ModelError(f"{self.path} is the directory of {data['worker']['task']}, not the chief, of a "
                             "multi-worker run: the model is in the chief's run directory")
        if data["status"] != "complete":
            raise ModelError(
                f"{self.path} is not complete (status {data['status']}); "
                "finish it with `sensorium train ... --resume` first"
            )
        if not self.model_path.is_file():
            raise ModelError(f"{self.path} has no model.keras")
        return data

    # === Files ===
    def refuse_links(self) -> None:
        """A DataError naming the first symbolic link anywhere inside the directory (training writes all
        through it, and never through a link)."""
        for folder, dirs, files in os.walk(self.path):
            for name in dirs + files:
                inside(folder, name)

    def clear(self, keep: tuple[str, ...] = (MANIFEST, "config.json")) -> None:
        """Delete everything in the directory but the files in `keep` (a non-chief worker's directory once
        training has ended)."""
        for entry in self.path.iterdir():
            if entry.name not in keep:
                _remove(entry)

    def write_json(self, name: str, obj: Any) -> Path:
        return atomic_write_json(inside(self.path, name), obj)

    def read_json(self, name: str, shape: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """A JSON object of the run (e.g. metrics.json), checked (see `read_json_object`)."""
        try:
            return read_json_object(self.path / name, shape)
        except FileNotFoundError:
            raise ModelError(f"{self.path} has no {name}") from None

    def write_text(self, name: str, text: str) -> Path:
        return atomic_write_text(inside(self.path, name), text)

    def write_labels(self, labels: list[str]) -> Path:
        return self.write_text(self.labels_path.name, "".join(f"{label}\n" for label in labels))

    def read_labels(self) -> list[str]:
        """labels.txt's lines (checked: see `read_text_lines`)."""
        try:
            return read_text_lines(self.labels_path)
        except FileNotFoundError:
            raise ModelError(f"{self.path} has no labels.txt") from None

    def read_config(self) -> dict[str, Any]:
        """config.json as a dict whose sections are objects (the full check is `load_config`)."""
        try:
            return read_json_object(self.config_path, CONFIG_SHAPE, max_bytes=MAX_MANIFEST_BYTES)
        except FileNotFoundError:
            raise ModelError(f"{self.path} has no config.json") from None

    def load_config(self, config_cls: type[C], overrides: Mapping[str, Any] | None = None) -> C:
        """config.json (with dotted `overrides`) as the task's config dataclass; a ModelError naming the
        file when it is not one."""
        from sensorium.pipelines.common.config import config_from_dict, set_path

        data = self.read_config()
        saved_defaults = getattr(config_cls, "saved_defaults", None)
        if saved_defaults is not None:  # fields a config written by an older version lacks
            data = saved_defaults(data)
        try:
            for key, value in (overrides or {}).items():
                set_path(data, key, value)
            return config_from_dict(config_cls, data)
        except UsageError as exc:
            raise ModelError(f"{self.config_path}: {str(exc).removeprefix('config: ')}") from None
