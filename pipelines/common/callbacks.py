"""Training callbacks shared by every task: per-epoch checkpoints that make `--resume` exact to the
epoch, early stopping whose state survives a resume, history, a progress bar on stderr, and the
multi-worker backup (Keras' BackupAndRestore kept in step with those checkpoints)."""
from __future__ import annotations

import csv
import io
import json
import logging
import math
import shutil
from pathlib import Path
from typing import Any

import keras

from sensorium.pipelines.common.progress import progress, show_progress
from sensorium.runtime.atomic import atomic_path, atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)

STATE = "state.json"
LAST = "last.keras"
BEST = "best.weights.h5"
BACKUP = "backup"  # BackupAndRestore's folder inside the checkpoints folder


def read_train_state(ckpt_dir: Path) -> dict[str, Any] | None:
    """The state of the last finished epoch, or None when no epoch has finished."""
    path = Path(ckpt_dir) / STATE
    if not path.is_file() or not (Path(ckpt_dir) / LAST).is_file():
        return None
    from sensorium.pipelines.common.rundir import read_json_object

    number = (int, float, type(None))
    return read_json_object(path, {"epoch": int, "history?": {}, "best?": number, "best_epoch?": (int, type(None)),
                                   "wait?": int, "stopped_early?": bool})


class RunState(keras.callbacks.Callback):
    """Checkpoint every epoch, keep the best weights, stop early, and record history.

    After each epoch, in this order: `last.keras` (model and optimizer), `best.weights.h5` when the
    monitored value improved, then `state.json` (epochs done, history, early-stopping counters) and
    `history.csv`. A run killed at any moment resumes from the last finished epoch.
    """

    def __init__(self, ckpt_dir: Path, history_path: Path, *, monitor: str = "val_accuracy",
                 mode: str = "max", patience: int = 0, state: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.ckpt_dir = Path(ckpt_dir)
        self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        self.history_path = Path(history_path)
        self.monitor, self.mode, self.patience = monitor, mode, patience
        state = state or {}
        self.epochs_done: int = state.get("epoch", 0)
        self.history: dict[str, list[float]] = state.get("history", {})
        self.best: float | None = state.get("best")
        self.best_epoch: int | None = state.get("best_epoch")
        self.wait: int = state.get("wait", 0)
        self.stopped_early: bool = state.get("stopped_early", False)

    def _improved(self, value: float) -> bool:
        if self.best is None or math.isnan(self.best):
            return not math.isnan(value)
        return value > self.best if self.mode == "max" else value < self.best

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = {k: float(v) for k, v in (logs or {}).items()}
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)
        self.epochs_done = epoch + 1
        with atomic_path(self.ckpt_dir / LAST) as tmp:
            self.model.save(tmp)
        value = logs.get(self.monitor)
        if value is None:
            log.warning("early stopping: metric %s is not available; keeping the last weights", self.monitor)
        elif self._improved(value):
            self.best, self.best_epoch, self.wait = value, self.epochs_done, 0
            with atomic_path(self.ckpt_dir / BEST) as tmp:
                self.model.save_weights(tmp)
        else:
            self.wait += 1
            if self.patience and self.wait >= self.patience:
                self.stopped_early = True
                self.model.stop_training = True
                log.info("early stopping after epoch %d: %s has not improved for %d epochs (best %.4f at "
                         "epoch %d)", self.epochs_done, self.monitor, self.wait, self.best, self.best_epoch)
        atomic_write_json(self.ckpt_dir / STATE, self.state())
        atomic_write_text(self.history_path, history_csv(self.history))

    def state(self) -> dict[str, Any]:
        return {"epoch": self.epochs_done, "history": self.history, "best": self.best,
                "best_epoch": self.best_epoch, "wait": self.wait, "stopped_early": self.stopped_early,
                "monitor": self.monitor}

    def restore_best(self, model: keras.Model) -> None:
        """Load the best epoch's weights into `model` (no-op when none were saved)."""
        path = self.ckpt_dir / BEST
        if path.is_file():
            model.load_weights(path)
            log.info("restored the weights of epoch %s (%s %.4f)", self.best_epoch, self.monitor, self.best)


class EpochBackup(keras.callbacks.BackupAndRestore):
    """Keras' BackupAndRestore (weights, optimizer state and epoch at the end of every epoch, restored when
    `fit` starts again, deleted when it ends), made to agree with RunState's checkpoints.

    RunState's `state.json` is the run's record (history, early-stopping counters), so it wins: a backup of
    another epoch than `epochs_done` (a worker stopped between the two writes) is dropped before `fit`,
    and the epoch Keras keeps on the model after a restore is cleared when `fit` ends, so a later `fit` of
    the same model (a second training phase) starts where it is told.
    """

    def __init__(self, backup_dir: Path, epochs_done: int) -> None:
        backup_dir = Path(backup_dir)
        epoch = backup_epoch(backup_dir)
        if backup_dir.exists() and epoch != epochs_done:
            log.warning("dropping the backup in %s (%s): the checkpoints are of epoch %d", backup_dir,
                        "incomplete" if epoch is None else f"epoch {epoch}", epochs_done)
            shutil.rmtree(backup_dir, ignore_errors=True)
        super().__init__(str(backup_dir))

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        restoring = backup_epoch(Path(self.backup_dir))
        super().on_train_begin(logs)
        if restoring is not None:
            log.info("restored the backup of epoch %d from %s", restoring, self.backup_dir)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        super().on_train_end(logs)
        self.model._initial_epoch = None


def backup_epoch(backup_dir: Path) -> int | None:
    """The epoch of the BackupAndRestore backup in `backup_dir`; None when there is none or it is incomplete."""
    try:
        meta = json.loads((Path(backup_dir) / "training_metadata.json").read_text(encoding="utf-8"))
        return int(meta["epoch"]) if (Path(backup_dir) / "latest.weights.h5").is_file() else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def history_csv(history: dict[str, list[float]]) -> str:
    keys = sorted(history)
    n = max((len(v) for v in history.values()), default=0)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["epoch", *keys])
    for i in range(n):
        writer.writerow([i + 1, *(f"{history[k][i]:.6g}" if i < len(history[k]) else "" for k in keys)])
    return buf.getvalue()


class DeadlinePassed(Exception):
    """Training stopped because its time budget ran out (the run resumes from its last epoch)."""


class Deadline(keras.callbacks.Callback):
    """Stop training, between batches, once `time.monotonic()` passes `deadline`, by raising
    DeadlinePassed. RunState has checkpointed every finished epoch, so the run directory stays
    `training` and `--resume` (or a resumed tuning search) continues it from the last epoch."""

    def __init__(self, deadline: float) -> None:
        super().__init__()
        self.deadline = float(deadline)

    def _check(self) -> None:
        import time

        if time.monotonic() >= self.deadline:
            raise DeadlinePassed("the time budget ran out")

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self._check()

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._check()


class Progress(keras.callbacks.Callback):
    """A tqdm progress bar per epoch on stderr (results stay on stdout), plus one log line per epoch."""

    def __init__(self, epochs: int, steps: int | None, enabled: bool | None = None) -> None:
        super().__init__()
        self.epochs, self.steps = epochs, steps
        self.enabled = show_progress() if enabled is None else enabled
        self.bar = None

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.epoch = epoch
        if self.enabled:
            self.bar = progress(total=self.steps, desc=f"epoch {epoch + 1}/{self.epochs}", unit="batch", leave=False)

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self.bar is not None:
            self.bar.update(1)
            if logs and batch % 10 == 0:
                self.bar.set_postfix({k: f"{float(v):.4f}" for k, v in logs.items()}, refresh=False)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        shown = "  ".join(f"{k} {float(v):.4f}" for k, v in sorted((logs or {}).items()) if k != "learning_rate")
        log.info("epoch %d/%d  %s", epoch + 1, self.epochs, shown)
