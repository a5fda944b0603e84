"""Long translation runs made practical (issue 26): validation chrF at set intervals with progress and ETA,
the chrF stopping rule and an hour cap, frequent rotating checkpoints that a resume falls back through
when one is corrupt, warm start from another translator, and averaging of the last checkpoints.

Checkpoints are `checkpoints/step-NNNNNNNNN.keras` (model and optimizer) with a `.json` beside each
(written after it): the global step, the epochs finished, the epoch history and the stopping rule's state
(evaluations, best chrF, evaluations without gain, hours). A resume takes the newest checkpoint whose
two files load; a killed epoch is run again from the mid-epoch weights, so no finished epoch is lost.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras

from sensorium.runtime.atomic import atomic_path, atomic_write_json
from sensorium.runtime.errors import ModelError

log = logging.getLogger(__name__)

PREFIX = "step-"
CHRF_FILE = "validation_chrf.csv"  # in the run directory: one row per evaluation
STOP_REASONS = ("chrf_plateau", "max_hours", "early_stopping", "epochs")


def checkpoint_path(ckpt_dir: Path, step: int) -> Path:
    return Path(ckpt_dir) / f"{PREFIX}{step:09d}.keras"


def list_checkpoints(ckpt_dir: Path) -> list[Path]:
    """The step checkpoints in `ckpt_dir`, oldest first."""
    found = []
    for path in Path(ckpt_dir).glob(f"{PREFIX}*.keras"):
        digits = path.stem[len(PREFIX):]
        if digits.isdigit():
            found.append((int(digits), path))
    return [p for _, p in sorted(found)]


SIDECAR_SHAPE: dict[str, Any] = {"step": int, "epochs_done": int, "history": {}, "evaluations": [dict],
                                 "best_chrf": (int, float, type(None)), "stale": int, "hours": (int, float),
                                 "stop_reason": (str, type(None))}


@dataclass
class Resumed:
    """What a resume starts from: the loaded model, its checkpoint, and the state beside it."""

    model: Any
    path: Path
    state: dict[str, Any]


def load_newest_good(ckpt_dir: Path, strategy: Any) -> Resumed | None:
    """The newest step checkpoint whose model and state both load (a refused one is one warning line
    naming it, then the previous is tried). None when there are no step checkpoints; a ModelError when
    there are some and none is usable."""
    from sensorium.pipelines.common.artifacts import load_keras
    from sensorium.pipelines.common.rundir import read_json_object

    candidates = list_checkpoints(ckpt_dir)
    if not candidates:
        return None
    for path in reversed(candidates):
        try:
            state = read_json_object(path.with_suffix(".json"), SIDECAR_SHAPE)
            if not isinstance(state["history"], dict) or not all(
                    isinstance(v, list) and all(isinstance(x, (int, float)) for x in v)
                    for v in state["history"].values()):
                raise ModelError(f"{path.with_suffix('.json')}: history is not lists of numbers")
            with strategy.scope():
                model = load_keras(path, compile=True)
        except (ModelError, OSError, ValueError) as exc:
            reason = " ".join(str(exc).split())[:300]
            log.warning("refusing checkpoint %s (%s); trying the previous one", path.name, reason)
            continue
        log.info("resuming from checkpoint %s (step %d, %d epochs done, %.2f h so far)", path.name, state["step"],
                 state["epochs_done"], state["hours"])
        return Resumed(model, path, state)
    raise ModelError(f"{ckpt_dir}: no usable checkpoint ({len(candidates)} refused); start the run again with "
                     "--overwrite")


def run_state_from(state: dict[str, Any], *, monitor: str, patience: int) -> dict[str, Any]:
    """The shared RunState's state at a step checkpoint: its epochs and history, the early-stopping
    counters recomputed from that history; a run that had met its stopping rule does not train again."""
    history = state["history"]
    values = history.get(monitor, [])[: state["epochs_done"]]
    best, best_epoch, wait = None, None, 0
    higher = "loss" not in monitor
    for i, v in enumerate(values):
        if best is None or (v > best if higher else v < best):
            best, best_epoch, wait = v, i + 1, 0
        else:
            wait += 1
    done = state["stop_reason"] is not None or bool(patience and wait >= patience)
    return {"epoch": state["epochs_done"], "history": history, "best": best, "best_epoch": best_epoch,
            "wait": wait, "stopped_early": done}


def average_checkpoints(paths: list[Path]) -> tuple[list[Any], list[str]]:
    """The element-wise mean of the weights of the checkpoints in `paths` that load (refused ones are
    one warning line each), and the names of those used."""
    import numpy as np

    from sensorium.pipelines.common.artifacts import load_keras

    total, used = None, []
    for path in paths:
        try:
            weights = load_keras(path).get_weights()
        except ModelError as exc:
            log.warning("not averaging checkpoint %s (%s)", path.name, " ".join(str(exc).split())[:300])
            continue
        if total is not None and [w.shape for w in weights] != [t.shape for t in total]:
            log.warning("not averaging checkpoint %s: its weights differ in shape", path.name)
            continue
        total = [w.astype(np.float64) for w in weights] if total is None else [t + w for t, w in zip(total, weights)]
        used.append(path.name)
    if total is None:
        return [], []
    return [t / len(used) for t in total], used


@dataclass
class LongRunSettings:
    eval_every_steps: int = 0  # 0: at the end of each epoch
    chrf_min_gain: float = 0.3
    chrf_patience: int = 2  # 0: no chrF stopping rule
    max_hours: float | None = None
    keep: int = 3  # checkpoints kept (at least 2)


@dataclass
class LongRunState:
    evaluations: list[dict[str, Any]] = field(default_factory=list)
    best_chrf: float | None = None
    stale: int = 0
    hours: float = 0.0
    stop_reason: str | None = None


class LongRun(keras.callbacks.Callback):
    """Validation chrF (greedy, on a capped sample) every `eval_every_steps` steps or epoch (and, with
    `reference`, of the warm-start model before its first step: row 0), a log line with progress and
    ETA, a step checkpoint at each evaluation and each epoch's end, and the stopping rule (chrF gains
    below `chrf_min_gain` for `chrf_patience` evaluations in a row, or `max_hours`).

    Runs before the shared RunState, so the epoch's `val_chrf` reaches history.csv."""

    def __init__(self, ckpt_dir: Path, settings: LongRunSettings, *, translate: Any, sources: list[str],
                 references: list[str], steps_per_epoch: int, epochs: int, write_chrf: Any,
                 resumed: dict[str, Any] | None = None, reference: bool = False) -> None:
        super().__init__()
        self.reference = reference  # a warm start: score the starting model first (not part of the rule)
        self.ckpt_dir, self.settings = Path(ckpt_dir), settings
        self.translate, self.sources, self.references = translate, sources, references
        self.steps_per_epoch, self.epochs, self.write_chrf = steps_per_epoch, epochs, write_chrf
        self.total_steps = steps_per_epoch * epochs  # set from the first epoch this session runs
        r = resumed or {}
        self.state = LongRunState(list(r.get("evaluations", [])), r.get("best_chrf"), r.get("stale", 0),
                                  float(r.get("hours", 0.0)), r.get("stop_reason"))
        self.history: dict[str, list[float]] = {k: list(v) for k, v in r.get("history", {}).items()}
        self.epochs_done = int(r.get("epochs_done", 0))
        self.step = 0
        self.epoch = 0
        self._last_chrf: float | None = None
        self._first_epoch: int | None = None

    # --- time --------------------------------------------------------------------------------
    def hours(self) -> float:
        return self._hours_before + (time.monotonic() - self._t0) / 3600

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._t0, self._hours_before = time.monotonic(), self.state.hours
        self.step = self._session_start_step = int(self.model.optimizer.iterations.numpy())
        if self.reference and self.sources:  # a warm start (never a resume): no evaluation yet
            chrf = self._chrf()
            self.state.evaluations.append({"step": 0, "epoch": 0, "chrf": round(chrf, 4), "hours": 0.0,
                                           "reference": True})
            log.info("the warm start scores validation chrF %.2f before training: the reference the run must "
                     "beat (the stopping rule counts from the first evaluation in training)", chrf)
            self.write_chrf(self.state.evaluations)

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self._first_epoch is None:  # a resume runs a killed epoch again, whole, from its mid-epoch weights
            self._first_epoch = epoch
            self.total_steps = self._session_start_step + self.steps_per_epoch * (self.epochs - epoch)
        self.epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.step += 1
        every = self.settings.eval_every_steps
        if every and self.step % every == 0:
            self._evaluate()
            self._checkpoint(self.epochs_done)
        cap = self.settings.max_hours
        if cap is not None and self.state.stop_reason is None and self.hours() >= cap:
            self._stop("max_hours", f"the hour cap ({cap:g} h) is reached")

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if logs is not None:
            if not self.settings.eval_every_steps:
                self._evaluate()
            if self._last_chrf is not None:
                logs["val_chrf"] = self._last_chrf
            for key, value in logs.items():
                self.history.setdefault(key, []).append(float(value))
        self.epochs_done = epoch + 1
        self._checkpoint(self.epochs_done)

    # --- the work ----------------------------------------------------------------------------
    def _chrf(self) -> float:
        """Greedy chrF of the model as it is now on the validation sample."""
        from sensorium.pipelines.translation.evaluate import corpus_scores

        return corpus_scores(self.translate(self.sources), self.references)["chrf"]

    def _evaluate(self) -> None:
        if not self.sources:
            return
        started = time.monotonic()
        chrf = self._chrf()
        hours = self.hours()
        s = self.state
        gain = math.inf if s.best_chrf is None else chrf - s.best_chrf
        s.stale = 0 if gain >= self.settings.chrf_min_gain else s.stale + 1
        if s.best_chrf is None or chrf > s.best_chrf:
            s.best_chrf = chrf
        s.hours = hours
        s.evaluations.append({"step": self.step, "epoch": self.epoch + 1, "chrf": round(chrf, 4),
                              "hours": round(hours, 4)})
        self._last_chrf = chrf
        done = self.step - self._session_start_step
        rate = (time.monotonic() - self._t0) / max(done, 1)
        left = max(self.total_steps - self.step, 0)
        log.info("step %d/%d (%.0f%%), epoch %d: validation chrF %.2f (best %.2f, %d without a %.2f gain), "
                 "%.2f h so far, ETA %.2f h at most (%.1f s to evaluate)", self.step, self.total_steps,
                 100 * min(self.step / max(self.total_steps, 1), 1), self.epoch + 1, chrf, s.best_chrf, s.stale,
                 self.settings.chrf_min_gain, hours, left * rate / 3600, time.monotonic() - started)
        self.write_chrf(s.evaluations)
        if self.settings.chrf_patience and s.stale >= self.settings.chrf_patience:
            self._stop("chrf_plateau", f"validation chrF gained less than {self.settings.chrf_min_gain:g} over "
                                       f"{s.stale} evaluations in a row")

    def _stop(self, reason: str, why: str) -> None:
        if self.state.stop_reason is None:
            self.state.stop_reason = reason
            log.info("stopping at step %d: %s (%.2f h)", self.step, why, self.hours())
        self.model.stop_training = True

    def _checkpoint(self, epochs_done: int) -> None:
        """The model and optimizer at this step, then its state file, then the oldest beyond `keep` go."""
        path = checkpoint_path(self.ckpt_dir, self.step)
        self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        self.state.hours = self.hours()
        with atomic_path(path) as tmp:
            self.model.save(tmp)
        atomic_write_json(path.with_suffix(".json"), {
            "step": self.step, "epochs_done": epochs_done, "history": self.history,
            "evaluations": self.state.evaluations, "best_chrf": self.state.best_chrf, "stale": self.state.stale,
            "hours": self.state.hours, "stop_reason": self.state.stop_reason})
        for old in list_checkpoints(self.ckpt_dir)[: -max(self.settings.keep, 2)]:
            old.with_suffix(".json").unlink(missing_ok=True)
            old.unlink(missing_ok=True)
