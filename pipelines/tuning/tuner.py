"""`sensorium tune TASK`: a KerasTuner search whose trials are ordinary training runs.

Each trial is the task's own `train` function run into `TUNE_DIR/trials/NNNN/` (a complete run
directory, reproducible with `sensorium train TASK --config TUNE_DIR/trials/NNNN/config.json`), with
the trial's values set in the base config and no test-split evaluation (the search sees validation
data only). The objective is a column of the run's history.csv (the task's search space names it) at
the epoch whose weights the run keeps.

TUNE_DIR:
```
tune.json          what the search is (task, algorithm, space, base config) and its progress
space.json         the resolved (narrowed) search space
keras_tuner/       KerasTuner's oracle and trial records (the search resumes from them)
trials/NNNN/       one run directory per trial
trials.csv, results.md, plots/objective.png      the table of trials, rewritten after each trial
best_config.json   the best trial's config: `sensorium train TASK --config best_config.json` trains it again
```
A search killed at any moment and started again with the same command keeps every finished trial,
continues an interrupted trial from its last finished epoch, and goes on. `--budget-minutes` counts
the search's time over all its sessions; when it runs out inside a trial, training stops between
batches and the trial waits, resumable, for a larger budget.

Distributed tuning is KerasTuner's: the same command on every machine (TUNE_DIR on a shared file
system), with KERASTUNER_TUNER_ID (`chief` on the oracle's host, `tuner0`, `tuner1`, ... on the
workers), KERASTUNER_ORACLE_IP and KERASTUNER_ORACLE_PORT set; the chief serves the oracle and writes the
results when every worker is done.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import functools
import io
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sensorium.pipelines.common.config import set_path
from sensorium.pipelines.common.rundir import read_history
from sensorium.pipelines.tuning.report import (
    TrialRow,
    best_row,
    plot_objective,
    results_markdown,
    text_table,
    write_trials_csv,
)
from sensorium.pipelines.tuning.space import SearchSpace
from sensorium.runtime.atomic import atomic_write_json
from sensorium.runtime.errors import SensoriumError, UsageError

log = logging.getLogger(__name__)

ALGORITHMS = ("hyperband", "bayesian", "random")
TUNE_FILE = "tune.json"
PROJECT = "keras_tuner"
SCHEMA_VERSION = 1
# Settings that may change when a search is started again (the others must match the first start).
RESUMABLE_CHANGES = ("max_trials", "budget_minutes")


@dataclass
class TuneRequest:
    """What `sensorium tune` was asked: the task, TUNE_DIR, the base config (a resolved config dict:
    defaults < --config < flags), the (narrowed) space and the search's limits."""

    task: str
    out: Path
    base: dict[str, Any]
    space: SearchSpace
    algorithm: str = "hyperband"
    max_trials: int | None = None  # random / bayesian default to 10; Hyperband runs its brackets
    budget_minutes: float | None = None
    overwrite: bool = False
    factor: int = 3  # Hyperband's reduction factor
    seed: int | None = None  # the oracle's seed (default: the base config's seed)

    def identity(self) -> dict[str, Any]:
        """What must match when a search is started again in the same TUNE_DIR."""
        return {"task": self.task, "algorithm": self.algorithm, "space": self.space.to_dict(), "base_config": self.base,
                "factor": self.factor if self.algorithm == "hyperband" else None, "seed": self._seed()}

    def _seed(self) -> int:
        return int(self.seed if self.seed is not None else self.base.get("seed", 42))


@functools.cache
def _budget_spent() -> type:
    """The exception that ends a search when its time budget runs out inside a trial: a KerasTuner
    FatalError, so the trial is not recorded as failed but stays ongoing (resumed by the next start)."""
    import keras_tuner as kt

    class BudgetSpent(kt.errors.FatalError):
        pass

    return BudgetSpent


# === The TUNE_DIR ===
def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def read_tune_dir(path: Path) -> dict[str, Any]:
    """TUNE_DIR/tune.json, or a UsageError saying what the folder is instead."""
    from sensorium.pipelines.common.rundir import RunDir

    file = Path(path) / TUNE_FILE
    if not file.is_file():
        if RunDir.is_run_dir(path):
            raise UsageError(f"{path} is a run directory, not a tuning directory")
        raise UsageError(f"{path} is not a tuning directory (no {TUNE_FILE})")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"{file} is unreadable: {exc}") from None
    if not isinstance(data, dict) or data.get("kind") != "tune" or "task" not in data:
        raise UsageError(f"{file} is not a Sensorium tuning record")
    return data


def _open_tune_dir(request: TuneRequest) -> dict[str, Any]:
    """Create TUNE_DIR or check that it holds this very search (then it resumes); returns tune.json."""
    out = request.out
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        state = read_tune_dir(out)
        if state["task"] != request.task:
            raise UsageError(f"{out} is a tuning directory of the '{state['task']}' task, not '{request.task}'")
        if request.overwrite:
            shutil.rmtree(out)
        else:
            mine = request.identity()
            differs = [k for k in mine if json.dumps(state["identity"].get(k), sort_keys=True)
                       != json.dumps(mine[k], sort_keys=True)]
            if differs:
                raise UsageError(f"{out} holds a search with a different {', '.join(differs).replace('_', ' ')}; "
                                 "start it again with the same options, or use --overwrite or another --out")
            return state
    out.mkdir(parents=True, exist_ok=True)
    state = {"schema_version": SCHEMA_VERSION, "kind": "tune", "task": request.task, "status": "searching",
             "created": _now(), "identity": request.identity(), "objective": request.space.objective,
             "direction": request.space.direction, "spent_seconds": 0.0, "sessions": []}
    atomic_write_json(out / TUNE_FILE, state)
    atomic_write_json(out / "space.json", request.space.to_dict())
    return state


# === KerasTuner pieces ===
def _oracle(request: TuneRequest, hyperparameters: Any, deadline: float | None, first_default: bool) -> Any:
    """The algorithm's KerasTuner oracle, extended with our limits: no new trial after the deadline or
    beyond `max_trials` (all algorithms), and the base configuration as the first trial (random and
    bayesian, when it lies in the space)."""
    import keras_tuner as kt
    from keras_tuner.src.engine import trial as trial_module

    base_cls = {"hyperband": kt.oracles.HyperbandOracle, "bayesian": kt.oracles.BayesianOptimizationOracle,
                "random": kt.oracles.RandomSearchOracle}[request.algorithm]

    class LimitedOracle(base_cls):  # type: ignore[misc, valid-type]
        def populate_space(self, trial_id: str) -> dict[str, Any]:
            stopped = {"status": trial_module.TrialStatus.STOPPED, "values": None}
            if deadline is not None and time.monotonic() >= deadline:
                return stopped
            if request.max_trials is not None and len(self.trials) >= request.max_trials:
                return stopped
            if first_default and not self.trials:
                return {"status": trial_module.TrialStatus.RUNNING, "values": self.hyperparameters.values.copy()}
            return super().populate_space(trial_id)

    objective = kt.Objective(request.space.objective, direction=request.space.direction)
    common = dict(objective=objective, hyperparameters=hyperparameters, allow_new_entries=False,
                  tune_new_entries=False, seed=request._seed(), max_consecutive_failed_trials=3)
    if request.algorithm == "hyperband":
        epochs = int(request.base["train"]["epochs"])
        if epochs < 2:
            raise UsageError("hyperband needs train.epochs >= 2 (its largest trial's epochs); use --epochs")
        return LimitedOracle(max_epochs=epochs, factor=request.factor, **common)
    if request.algorithm == "bayesian":  # fewer random starts than KerasTuner's 3 per dimension on small searches
        dims = len(request.space.params)
        common["num_initial_points"] = min(3 * dims, max(3, (request.max_trials or 10) // 3))
    return LimitedOracle(max_trials=None, **common)


class _LogWriter(io.TextIOBase):
    """KerasTuner prints its notices; they go to our log (stderr), never to stdout."""

    def write(self, text: str) -> int:
        for line in text.splitlines():
            if line.strip():
                log.debug("keras-tuner: %s", line.strip())
        return len(text)


def _keras_tuner_output() -> contextlib.AbstractContextManager:
    return contextlib.redirect_stdout(_LogWriter())


class Search:
    """One session of a search: runs trials for the KerasTuner tuner and keeps TUNE_DIR's reports."""

    def __init__(self, request: TuneRequest, state: dict[str, Any]) -> None:
        from sensorium.runtime.tasks import TASKS

        self.request, self.state = request, state
        self.task = TASKS.get(request.task)
        self.config_cls = self.task.load("config")
        self.space = request.space
        self.started = time.monotonic()
        self.spent_before = float(state.get("spent_seconds", 0.0))
        self.deadline: float | None = None
        if request.budget_minutes is not None:
            self.deadline = self.started + request.budget_minutes * 60.0 - self.spent_before
        self.trial_started: dict[str, float] = {}

    # --- paths ---
    @property
    def out(self) -> Path:
        return self.request.out

    def trial_dir(self, trial_id: str) -> Path:
        return self.out / "trials" / trial_id

    # --- one trial ---
    def trial_config(self, values: dict[str, Any]) -> Any:
        """The config of a trial: the base with the trial's values (Hyperband's epochs included), and
        no test-split evaluation."""
        from sensorium.pipelines.common.config import config_from_dict

        data = self.space.apply(self.request.base, values)
        if "tuner/epochs" in values:
            set_path(data, "train.epochs", int(values["tuner/epochs"]))
        data["evaluate_on"] = None
        config = config_from_dict(self.config_cls, data, "trial config")
        validate = getattr(config, "validate", None)
        if validate is not None:
            validate()
        return config

    def run_trial(self, trial: Any) -> dict[str, float]:
        """Train trial `trial` into its run directory (continuing it if an earlier session was cut off)
        and return its objective."""
        import keras
        import keras_tuner as kt

        from sensorium.pipelines.common.callbacks import DeadlinePassed, read_train_state
        from sensorium.pipelines.common.rundir import RunDir

        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise _budget_spent()("the time budget ran out")
        try:
            config = self.trial_config(trial.hyperparameters.values)
        except SensoriumError as exc:  # a combination the task rejects: a failed trial, the search goes on
            raise kt.errors.FailedTrialError(str(exc)) from None
        path = self.trial_dir(trial.trial_id)
        manifest = RunDir(path).read_manifest() if RunDir.is_run_dir(path) else None
        if manifest and manifest["status"] == "complete":  # trained, but the session ended before it was recorded
            return {self.space.objective: self.objective_of(RunDir(path), config)}
        resume = bool(manifest and manifest["status"] == "training" and read_train_state(path / "checkpoints"))
        run = RunDir.create(path, self.task.name, resume=resume, overwrite=not resume)
        if not resume:
            run.set_status("training", tuning={"dir": str(self.out), "trial": trial.trial_id})
        run.deadline = self.deadline
        keras.backend.clear_session()
        try:
            self.task.load("train")(config, run, resume=resume)
        except DeadlinePassed:
            raise _budget_spent()("the time budget ran out") from None
        except SensoriumError as exc:
            run.set_status("failed")
            raise kt.errors.FailedTrialError(str(exc)) from None
        except Exception as exc:
            run.set_status("failed")
            first = (str(exc).strip().splitlines() or [""])[0][:300]
            log.debug("trial %s failed", trial.trial_id, exc_info=True)
            raise kt.errors.FailedTrialError(f"unexpected {type(exc).__name__}: {first}") from None
        return {self.space.objective: self.objective_of(run, config)}

    def objective_of(self, run: Any, config: Any) -> float:
        """The objective column of the run's history at the epoch whose weights the run kept (the best
        epoch with early stopping, else the last)."""
        import keras_tuner as kt

        from sensorium.pipelines.common.callbacks import read_train_state

        history = read_history(run.history_path)
        column = history.get(self.space.objective)
        if not column:
            raise kt.errors.FailedTrialError(f"the run's history has no {self.space.objective} column")
        index = len(column) - 1
        best_epoch = (run.read_manifest().get("summary") or {}).get("best_epoch")  # what the finished run kept
        if best_epoch is None:
            best_epoch = (read_train_state(run.path / "checkpoints") or {}).get("best_epoch")
        if config.train.early_stopping_patience and best_epoch:
            index = min(int(best_epoch) - 1, index)
        return float(column[index])

    # --- reports ---
    def rows(self, oracle: Any, final: bool = False) -> list[TrialRow]:
        """Every trial the oracle knows, in start order, with what its run directory says (at the end of
        a session, a trial still running was cut off by the budget: INTERRUPTED, resumed next time)."""
        rows = []
        for trial_id in sorted(oracle.trials):
            trial = oracle.trials[trial_id]
            status = str(trial.status)
            if final and status == "RUNNING":
                status = "INTERRUPTED"
            objective = trial.score if status == "COMPLETED" else None
            epochs, minutes = _trial_progress(self.trial_dir(trial_id))
            message = ""
            if trial.message:
                lines = [ln for ln in str(trial.message).strip().splitlines() if ln.strip()]
                message = lines[-1][:300] if lines else ""
            rows.append(TrialRow(trial_id, status, self.space.decoded(trial.hyperparameters.values),
                                 None if objective is None else float(objective), epochs, minutes, message))
        return rows

    def spent(self) -> float:
        return self.spent_before + (time.monotonic() - self.started)

    def write_reports(self, oracle: Any, *, status: str | None = None) -> list[TrialRow]:
        """trials.csv, results.md, plots/objective.png, best_config.json and tune.json, atomically
        (`status`: the search's, at the end of a session)."""
        rows = self.rows(oracle, final=status is not None)
        names = self.space.names
        objective, direction = self.space.objective, self.space.direction
        write_trials_csv(self.out / "trials.csv", rows, names, objective)
        header = {"algorithm": self.request.algorithm, "trials": len(rows),
                  "finished": sum(r.status == "COMPLETED" for r in rows),
                  "search minutes": round(self.spent() / 60.0, 1)}
        if self.request.budget_minutes is not None:
            header["budget minutes"] = self.request.budget_minutes
        from sensorium.runtime.atomic import atomic_write_text

        atomic_write_text(self.out / "results.md", results_markdown(rows, names, task=self.task.name,
                                                                    objective=objective, direction=direction,
                                                                    header=header))
        (self.out / "plots").mkdir(exist_ok=True)
        plot_objective(rows, self.out / "plots" / "objective.png", objective=objective, direction=direction)
        best = best_row(rows, direction)
        if best is not None:
            atomic_write_json(self.out / "best_config.json", self.best_config(best.trial_id))
        self.state["spent_seconds"] = round(self.spent(), 1)
        self.state["trials"] = len(rows)
        self.state["best"] = None if best is None else {"trial": best.trial_id, objective: best.objective,
                                                        "values": best.values}
        if status is not None:
            self.state["status"] = status
        self.state["updated"] = _now()
        atomic_write_json(self.out / TUNE_FILE, self.state)
        return rows

    def best_config(self, trial_id: str) -> dict[str, Any]:
        """The best trial's resolved config.json, evaluated on the base config's split again: a valid
        `--config` that trains the same model (same seed) and scores it on the test split."""
        data = json.loads((self.trial_dir(trial_id) / "config.json").read_text(encoding="utf-8"))
        data["evaluate_on"] = self.request.base.get("evaluate_on", "test")
        return data


def _trial_progress(path: Path) -> tuple[int | None, float | None]:
    """(epochs trained, minutes from creation to the last update) of a trial's run directory."""
    from sensorium.pipelines.common.rundir import RunDir

    if not RunDir.is_run_dir(path):
        return None, None
    history = read_history(path / "history.csv")
    epochs = len(history.get("epoch", [])) or None
    try:
        manifest = RunDir(path).read_manifest()
        start = _dt.datetime.fromisoformat(manifest["created"])
        end = _dt.datetime.fromisoformat(manifest.get("updated", manifest["created"]))
        minutes = max(0.0, (end - start).total_seconds() / 60.0)
    except (SensoriumError, KeyError, ValueError):
        minutes = None
    return epochs, minutes


def _make_tuner(search: Search, oracle: Any) -> Any:
    import keras_tuner as kt

    class SensoriumTuner(kt.engine.base_tuner.BaseTuner):
        """Trials are Sensorium training runs (see `Search.run_trial`); the live table goes to the log."""

        def run_trial(self, trial: Any, *args: Any, **kwargs: Any) -> dict[str, float]:
            return search.run_trial(trial)

        def on_trial_begin(self, trial: Any) -> None:
            values = search.space.decoded(trial.hyperparameters.values)
            epochs = trial.hyperparameters.values.get("tuner/epochs")
            shown = ", ".join(f"{k.split('.')[-1]}={v}" for k, v in values.items())
            log.info("trial %s starts%s: %s", trial.trial_id, f" ({epochs} epochs)" if epochs else "", shown)

        def on_trial_end(self, trial: Any) -> None:
            super().on_trial_end(trial)
            rows = search.write_reports(self.oracle)
            log.info("after trial %s (%.1f min searched):\n%s", trial.trial_id, search.spent() / 60.0,
                     text_table(rows, search.space.names, search.space.objective, search.space.direction))

        def save_model(self, trial_id: str, model: Any, step: int = 0) -> None:
            """The trial's run directory holds its model."""

        def load_model(self, trial: Any) -> Any:
            from sensorium.pipelines.common.rundir import RunDir

            return RunDir(search.trial_dir(trial.trial_id)).model_path

    return SensoriumTuner(oracle, directory=str(search.out), project_name=PROJECT, overwrite=False)


def tune(request: TuneRequest) -> dict[str, Any]:
    """Run (or resume) a search; returns the summary also written to tune.json."""
    from keras_tuner.src.distribute import utils as dist_utils

    if request.algorithm not in ALGORITHMS:
        raise UsageError(f"unknown algorithm {request.algorithm!r}; choose one of {', '.join(ALGORITHMS)}")
    if request.budget_minutes is not None and not request.budget_minutes > 0:
        raise UsageError("--budget-minutes must be positive")
    if request.max_trials is not None and request.max_trials < 1:
        raise UsageError("--max-trials must be at least 1")
    if request.max_trials is None and request.algorithm != "hyperband":
        request.max_trials = 10
    worker = dist_utils.has_chief_oracle() and not dist_utils.is_chief_oracle()
    state = read_tune_dir(request.out) if worker else _open_tune_dir(request)
    search = Search(request, state)
    hyperparameters = request.space.to_hyperparameters(request.base)
    first_default = request.algorithm != "hyperband" and request.space.base_in_space(request.base)
    with _keras_tuner_output():
        oracle = _oracle(request, hyperparameters, search.deadline, first_default)
        tuner = _make_tuner(search, oracle)
    done = sum(str(t.status) == "COMPLETED" for t in tuner.oracle.trials.values()) if not worker else 0
    if not worker:
        state["sessions"] = state.get("sessions", []) + [{"started": _now(), "trials_before": done}]
        state["status"] = "searching"
        state["settings"] = {k: getattr(request, k) for k in RESUMABLE_CHANGES}
        atomic_write_json(request.out / TUNE_FILE, state)
        if done:
            log.info("resuming the search in %s: %d finished trial(s) are kept", request.out, done)
    stopped_by_budget = False
    try:
        with _keras_tuner_output():
            tuner.search(verbose=0)
    except _budget_spent():
        stopped_by_budget = True
    except RuntimeError as exc:  # KerasTuner gives up after consecutive failed trials
        if "consecutive failures" not in str(exc):
            raise
        search.write_reports(tuner.oracle, status="failed")
        last = [ln for ln in str(exc).splitlines() if ln.strip()][-1]
        raise SensoriumError(f"the search stopped: 3 trials in a row failed; the last: {last}") from None
    if worker:
        log.info("this worker is done; the chief writes the results")
        return {"task": request.task, "worker": os.environ.get("KERASTUNER_TUNER_ID")}
    budget_out = stopped_by_budget or (search.deadline is not None and time.monotonic() >= search.deadline)
    status = "stopped" if budget_out else "complete"
    rows = search.write_reports(tuner.oracle, status=status)
    best = best_row(rows, request.space.direction)
    if best is None:
        raise SensoriumError(f"no trial finished{' within the budget' if budget_out else ''}; see "
                             f"{request.out / 'results.md'}")
    return {"task": request.task, "out": str(request.out), "status": status, "trials": len(rows),
            "finished": sum(r.status == "COMPLETED" for r in rows), "objective": request.space.objective,
            "best_trial": best.trial_id, "best_value": best.objective, "best_values": best.values,
            "best_config": str(request.out / "best_config.json"), "minutes": round(search.spent() / 60.0, 2),
            "table": text_table(rows, request.space.names, request.space.objective, request.space.direction)}
