"""What every task's training shares: the optimisation settings and the end of a run
(training curves, evaluation on the held-out split, model card, status `complete`)."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Literal

from sensorium.pipelines.common.errors import DataError
from sensorium.pipelines.common.rundir import RunDir

log = logging.getLogger(__name__)


@dataclass
class TrainSettings:
    """Optimisation settings common to the tasks (each task's TrainConfig extends them)."""

    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 2e-3
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    weight_decay: float = 1e-4  # adamw only
    momentum: float = 0.9  # sgd only
    schedule: Literal["cosine", "constant"] = "cosine"
    warmup_epochs: int = 1
    early_stopping_patience: int = 8  # 0: no early stopping, run the whole schedule and keep the last epoch
    monitor: str = "val_loss"  # for early stopping and the best epoch
    strategy: Literal["auto", "default", "mirrored"] = "auto"
    mixed_precision: Literal["auto", "on", "off"] = "auto"

    def checks(self) -> list[tuple[bool, str]]:
        """(condition, message) pairs every task's `validate` raises a UsageError for when false."""
        return [
            (self.epochs >= 1, "train.epochs must be at least 1"),
            (self.batch_size >= 1, "train.batch_size must be at least 1"),
            (self.learning_rate > 0, "train.learning_rate must be positive"),
        ]


def check_config(checks: list[tuple[bool, str]], data: Any) -> None:
    """A config's `validate`: the first failed (condition, message) is a UsageError; then the data
    specs (`data.spec`, `data.validation_spec`) must parse (DataError)."""
    from sensorium.pipelines.common.dataspec import parse_spec
    from sensorium.pipelines.common.errors import UsageError

    for ok, message in checks:
        if not ok:
            raise UsageError(message)
    parse_spec(data.spec)
    if data.validation_spec:
        parse_spec(data.validation_spec)


def start_training(run: RunDir, config: Any) -> tuple[str, Any]:
    """The start of every task's training: the seed, the precision policy and the distribution
    strategy of `config.train`, and the resolved `config.json`. Returns (policy name, strategy)."""
    import keras

    from sensorium.pipelines.common.config import config_to_dict
    from sensorium.pipelines.common.strategy import make_strategy, set_precision

    keras.utils.set_random_seed(config.seed)
    policy = set_precision(config.train.mixed_precision)
    strategy = make_strategy(config.train.strategy)
    run.write_json("config.json", config_to_dict(config))
    return policy, strategy


def write_split_lists(run: RunDir, splits: list[tuple[str, list[str]]], failures: list[tuple[str, str]]) -> None:
    """`splits/NAME.txt` (the item ids of each split) and `splits/skipped.tsv` (items that failed)."""
    run.sub("splits")
    for name, ids in splits:
        name = "validation" if name.startswith("validation") else name
        run.write_text(f"splits/{name}.txt", "".join(f"{i}\n" for i in ids))
    if failures:
        run.write_text("splits/skipped.tsv", "".join(f"{i}\t{e}\n" for i, e in failures))


def fit_run(run: RunDir, model: Any, train_ds: Any, val_ds: Any, tcfg: TrainSettings, steps: int,
            state: dict[str, Any] | None) -> Any:
    """Fit from where the run stopped (checkpoints every epoch, early stopping, progress bar,
    TensorBoard) and put the best epoch's weights back; returns the RunState (history, best epoch)."""
    import warnings

    import keras

    from sensorium.pipelines.common.callbacks import Progress, RunState

    mode = "min" if "loss" in tcfg.monitor else "max"
    run_state = RunState(run.path / "checkpoints", run.history_path, monitor=tcfg.monitor, mode=mode,
                         patience=tcfg.early_stopping_patience, state=state)
    callbacks = [run_state, Progress(tcfg.epochs, steps),
                 keras.callbacks.TensorBoard(str(run.sub("logs")), write_graph=False, profile_batch=0)]
    if run_state.epochs_done < tcfg.epochs and not run_state.stopped_early:
        with warnings.catch_warnings():  # length-bucketed batches: Keras cannot count them ahead
            warnings.filterwarnings("ignore", message=".*ran out of data.*")
            model.fit(train_ds, validation_data=val_ds, epochs=tcfg.epochs, initial_epoch=run_state.epochs_done,
                      callbacks=callbacks, verbose=0, shuffle=False)
    if tcfg.early_stopping_patience:
        run_state.restore_best(model)
    return run_state


def save_inference_model(run: RunDir, model: Any, build: Callable[[], Any]) -> Any:
    """`build()` (called under the float32 policy: an uncompiled model, no optimizer state) gets the
    trained weights and is saved atomically as the run's model.keras; returns it."""
    import keras

    from sensorium.pipelines.common.atomic import atomic_path

    keras.mixed_precision.set_global_policy("float32")
    final = build()
    final.set_weights([w.numpy().astype(v.dtype) for w, v in zip(model.weights, final.weights)])
    with atomic_path(run.model_path) as tmp:
        final.save(tmp)
    return final


def run_summary(run_state: Any, tcfg: TrainSettings, policy: str, strategy: Any, **extra: Any) -> dict[str, Any]:
    """The summary a run's manifest records (epochs, best epoch and value, precision, replicas, ...)."""
    return {"epochs": run_state.epochs_done, "best_epoch": run_state.best_epoch,
            "best_" + tcfg.monitor: run_state.best, "stopped_early": run_state.stopped_early,
            **extra, "precision_policy": policy, "replicas": strategy.num_replicas_in_sync}


def finish_run(run: RunDir, *, history: dict, summary: dict[str, Any], data_spec: str, evaluate_on: str | None,
               evaluate: Callable[[str], dict[str, Any]], write_card: Callable[[dict[str, Any] | None], None]) -> None:
    """Plots, `evaluate(SPEC@evaluate_on)` (a data error is a warning, not a failed run), the model
    card, then the run is marked complete with `summary`."""
    from sensorium.pipelines.common.reports import plot_training_curves

    if history:
        plot_training_curves(history, run.sub("plots") / "training_curves.png")
    metrics = None
    if evaluate_on:
        source = data_spec.rsplit("@", 1)[0] if "@" in data_spec else data_spec
        try:
            metrics = evaluate(f"{source}@{evaluate_on}")
        except DataError as exc:
            log.warning("no evaluation on @%s: %s", evaluate_on, exc)
    write_card(metrics)
    run.set_status("complete", summary=summary)
