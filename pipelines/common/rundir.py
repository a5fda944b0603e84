"""The run directory: the one unit users pass around (layout in CONTRACTS.md).

This module alone reads and writes it, atomically. `status` becomes `complete` last; a directory that is
not complete is never used for inference and `train --resume` continues it.
"""
from __future__ import annotations

import datetime as _dt
import json
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sensorium.runtime.atomic import atomic_write_json, atomic_write_text
from sensorium.runtime.errors import ModelError, UsageError

SCHEMA_VERSION = 1
MANIFEST = "sensorium.json"
STATUSES = ("training", "complete", "failed")


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
        """A sub-folder (plots, splits, checkpoints, logs, exports), created on demand."""
        p = self.path / name
        p.mkdir(parents=True, exist_ok=True)
        return p

    # === Manifest ===
    @staticmethod
    def is_run_dir(path: str | Path) -> bool:
        return (Path(path) / MANIFEST).is_file()

    def read_manifest(self) -> dict[str, Any]:
        try:
            data = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ModelError(f"{self.path} is not a Sensorium run directory (no {MANIFEST})") from None
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise ModelError(f"{self.manifest_path} is unreadable: {exc}") from None
        if not isinstance(data, dict) or "task" not in data or "status" not in data:
            raise ModelError(f"{self.manifest_path} is not a Sensorium manifest")
        return data

    def _write_manifest(self, data: dict[str, Any]) -> None:
        atomic_write_json(self.manifest_path, data)

    @classmethod
    def create(cls, path: str | Path, task: str, *, resume: bool = False, overwrite: bool = False) -> RunDir:
        """Start a run directory for `task` (status `training`).

        An existing run directory is only reused with `resume` (same task, not complete) or replaced
        with `overwrite`; a non-empty folder that is not a run directory is never touched.
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
        if existing is not None and overwrite:
            import shutil

            shutil.rmtree(run.path)
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

    def set_status(self, status: str, **extra: Any) -> None:
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}")
        data = self.read_manifest()
        data["status"] = status
        data["updated"] = _now()
        data.update(extra)
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
    def clear(self, keep: tuple[str, ...] = (MANIFEST, "config.json")) -> None:
        """Delete everything in the directory but the files in `keep` (a non-chief worker's directory once
        training has ended)."""
        import shutil

        for entry in self.path.iterdir():
            if entry.name in keep:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()

    def write_json(self, name: str, obj: Any) -> Path:
        return atomic_write_json(self.path / name, obj)

    def read_json(self, name: str) -> Any:
        return json.loads((self.path / name).read_text(encoding="utf-8"))

    def write_text(self, name: str, text: str) -> Path:
        return atomic_write_text(self.path / name, text)

    def write_labels(self, labels: list[str]) -> Path:
        return atomic_write_text(self.labels_path, "".join(f"{label}\n" for label in labels))

    def read_labels(self) -> list[str]:
        try:
            return self.labels_path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            raise ModelError(f"{self.path} has no labels.txt") from None

    def read_config(self) -> dict[str, Any]:
        try:
            return json.loads(self.config_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ModelError(f"{self.path} has no config.json") from None
