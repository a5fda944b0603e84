"""What every task's training shares: the optimisation settings and the end of a run
(training curves, evaluation on the held-out split, model card, status `complete`)."""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from sensorium.pipelines.common.rundir import RunDir
from sensorium.runtime.errors import DataError

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
    strategy: Literal["auto", "default", "mirrored", "multiworker"] = "auto"
    mixed_precision: Literal["auto", "on", "off"] = "auto"
    # Whether `auto` trains in mixed bfloat16 on a CPU that has it natively. A task turns it on where
    # bfloat16 makes its training step at least 1.2x faster and its quality over seeds was measured
    # equal to float32's (issue 25; README "oneDNN and bfloat16"); `--mixed-precision on` always may.
    cpu_bf16_default: ClassVar[bool] = False
    # TensorFlow's thread pools: default, split (half the cores per op, 2 ops at a time, on a CPU) or
    # INTRA,INTER (`strategy.set_threads`)
    threads: str = "default"

    def checks(self) -> list[tuple[bool, str]]:
        """(condition, message) pairs every task's `validate` raises a UsageError for when false."""
        return [
            (self.epochs >= 1, "train.epochs must be at least 1"),
            (self.batch_size >= 1, "train.batch_size must be at least 1"),
            (self.learning_rate > 0, "train.learning_rate must be positive"),
            *self._thread_checks(),
            *self._cluster_checks(),
        ]

    def _thread_checks(self) -> list[tuple[bool, str]]:
        from sensorium.pipelines.common.strategy import parse_threads
        from sensorium.runtime.errors import UsageError

        try:
            parse_threads(self.threads)
        except UsageError as exc:
            return [(False, str(exc))]
        return []

    def _cluster_checks(self) -> list[tuple[bool, str]]:
        """`multiworker` needs a usable TF_CONFIG: checked before a run directory is made."""
        from sensorium.pipelines.common.strategy import read_tf_config
        from sensorium.runtime.errors import UsageError

        if self.strategy != "multiworker":
            return []
        try:
            read_tf_config()
        except UsageError as exc:
            return [(False, str(exc))]
        return []


def check_config(checks: list[tuple[bool, str]], data: Any) -> None:
    """A config's `validate`: the first failed (condition, message) is a UsageError; then the data
    specs (`data.spec`, `data.validation_spec`) must parse (DataError)."""
    from sensorium.pipelines.common.dataspec import parse_spec
    from sensorium.runtime.errors import UsageError

    for ok, message in checks:
        if not ok:
            raise UsageError(message)
    parse_spec(data.spec)
    if data.validation_spec:
        parse_spec(data.validation_spec)


def start_training(run: RunDir, config: Any, *, cpu_bf16_default: bool | None = None) -> tuple[str, Any]:
    """The start of every task's training: the seed, the precision policy and the distribution
    strategy of `config.train`, and the resolved `config.json`. Returns (policy name, strategy).

    `cpu_bf16_default` (None: the train config's class default) says whether `--mixed-precision auto`
    trains in mixed bfloat16 on a CPU that has it natively (`strategy.choose_precision`).

    The strategy is made before anything else touches TensorFlow's devices (MultiWorkerMirroredStrategy
    needs that). In a non-chief worker of a multi-worker run, `run.chief` becomes False and the manifest
    says which worker the directory belongs to (see `finish_run`).
    """
    import keras

    from sensorium.pipelines.common.config import config_to_dict
    from sensorium.pipelines.common.strategy import (
        is_chief,
        is_multi_worker,
        make_strategy,
        set_precision,
        set_threads,
        worker_count,
        worker_task,
    )

    set_threads(config.train.threads)  # first: TensorFlow's pools are fixed once it runs
    keras.utils.set_random_seed(config.seed)
    if cpu_bf16_default is None:
        cpu_bf16_default = getattr(config.train, "cpu_bf16_default", False)
    policy = set_precision(config.train.mixed_precision, cpu_bf16_default=cpu_bf16_default)
    strategy = make_strategy(config.train.strategy)
    if is_multi_worker(strategy):
        run.chief = is_chief(strategy)
        job, index = worker_task(strategy)
        worker = None if run.chief else {"task": f"{job}:{index}", "workers": worker_count(strategy)}
        if worker is not None or run.read_manifest().get("worker"):
            run.set_status("training", worker=worker)
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


def resume_or_build(strategy: Any, ckpt_dir: Path, state: dict[str, Any] | None, build: Callable[[], Any], *,
                    custom_objects: dict[str, Any] | None = None) -> Any:
    """Under `strategy`'s scope: the checkpointed model (`ckpt_dir/last.keras`, optimizer state included,
    loaded by `load_keras`: safe mode, zip checks, pinned hub modules) when resuming after `state`'s epoch,
    else `build()` (a new, compiled model)."""
    from sensorium.pipelines.common.artifacts import load_keras

    with strategy.scope():
        if state is None:
            return build()
        model = load_keras(ckpt_dir / "last.keras", compile=True, custom_objects=custom_objects)
        log.info("resuming after epoch %d", state["epoch"])
        return model


def fit_callbacks(run: RunDir, run_state: Any, strategy: Any, epochs: int, steps: int) -> list[Any]:
    """The callbacks of every `fit`: RunState (checkpoints, history, early stopping), with a
    multi-worker strategy Keras' BackupAndRestore in `checkpoints/backup` (kept in step with RunState),
    the progress bar, TensorBoard logs (written by the chief only), and the run's deadline if it has one."""
    import keras

    from sensorium.pipelines.common.callbacks import BACKUP, Deadline, EpochBackup, Progress
    from sensorium.pipelines.common.strategy import is_multi_worker

    callbacks = [run_state]
    if run.deadline is not None:
        callbacks.insert(0, Deadline(run.deadline))
    if is_multi_worker(strategy):
        callbacks.append(EpochBackup(run_state.ckpt_dir / BACKUP, run_state.epochs_done))
    callbacks.append(Progress(epochs, steps))
    if run.chief:
        callbacks.append(keras.callbacks.TensorBoard(str(run.sub("logs")), write_graph=False, profile_batch=0))
    return callbacks


def fit_epochs(model: Any, train_ds: Any, val_ds: Any, *, epochs: int, initial_epoch: int,
               callbacks: list[Any]) -> None:
    """`model.fit` under the model's strategy: the datasets split across workers (`distribute_options`),
    and the Keras fixes that multi-worker training needs. A worker lost from the cluster is a one-line
    error that says how to go on."""
    import warnings

    import tensorflow as tf

    from sensorium.pipelines.common.strategy import (
        distribute_options,
        keras_multiworker_fixes,
        require_same_epoch,
        worker_count,
    )
    from sensorium.runtime.errors import SensoriumError

    strategy = model.distribute_strategy
    require_same_epoch(strategy, initial_epoch)
    try:
        with warnings.catch_warnings(), keras_multiworker_fixes(strategy):
            # length-bucketed batches: Keras cannot count them ahead
            warnings.filterwarnings("ignore", message=".*ran out of data.*")
            model.fit(distribute_options(train_ds, strategy), validation_data=distribute_options(val_ds, strategy),
                      epochs=epochs, initial_epoch=initial_epoch, callbacks=callbacks, verbose=0, shuffle=False)
    except (tf.errors.UnavailableError, tf.errors.AbortedError) as exc:
        if worker_count(strategy) < 2:
            raise
        raise SensoriumError("training lost a worker of the cluster (it stopped or cannot be reached): start every "
                             "worker again with the same TF_CONFIG and `sensorium train TASK --out RUN_DIR "
                             "--resume`") from exc


@dataclass(frozen=True)
class Phase:
    """A later phase of training (after `TrainSettings.epochs`): `epochs` more epochs that start with
    `begin(model)` (e.g. unfreeze a pretrained backbone and recompile at a lower learning rate).
    `begin` runs whenever the phase (re)starts, a resumed run included: it must leave a model that is
    already in the phase as it is."""

    epochs: int
    begin: Callable[[Any], None]


def fit_run(run: RunDir, model: Any, train_ds: Any, val_ds: Any, tcfg: TrainSettings, steps: int,
            state: dict[str, Any] | None, *, phases: tuple[Phase, ...] = (), callbacks: tuple[Any, ...] = ()) -> Any:
    """Fit from where the run stopped (checkpoints every epoch, early stopping, progress bar,
    TensorBoard; with several workers, a BackupAndRestore backup), through `tcfg.epochs` and then each
    of `phases`, and put the best epoch's weights back (a fixed schedule keeps its last); returns the
    RunState (history, best epoch). `callbacks` run before the run's own (an epoch's extra outputs
    exist once its checkpoint does). The strategy is the one `model` was built under."""
    from sensorium.pipelines.common.callbacks import RunState

    mode = "min" if "loss" in tcfg.monitor else "max"
    run_state = RunState(run.path / "checkpoints", run.history_path, monitor=tcfg.monitor, mode=mode,
                         patience=tcfg.early_stopping_patience, state=state)
    total = tcfg.epochs + sum(p.epochs for p in phases)
    all_callbacks = [*callbacks, *fit_callbacks(run, run_state, model.distribute_strategy, total, steps)]
    end = tcfg.epochs
    if run_state.epochs_done < end and not run_state.stopped_early:
        fit_epochs(model, train_ds, val_ds, epochs=end, initial_epoch=run_state.epochs_done, callbacks=all_callbacks)
    for phase in phases:
        end += phase.epochs
        if run_state.epochs_done < end and not run_state.stopped_early:
            phase.begin(model)
            fit_epochs(model, train_ds, val_ds, epochs=end, initial_epoch=run_state.epochs_done,
                       callbacks=all_callbacks)
    if tcfg.early_stopping_patience:
        run_state.restore_best(model)
    return run_state


def save_inference_model(run: RunDir, model: Any, build: Callable[[], Any]) -> Any:
    """`build()` (called under the float32 policy: an uncompiled model, no optimizer state) gets the
    trained weights and is saved atomically as the run's model.keras (by the chief only); returns it."""
    import keras

    from sensorium.runtime.atomic import atomic_path

    keras.mixed_precision.set_global_policy("float32")
    final = build()
    final.set_weights([w.numpy().astype(v.dtype) for w, v in zip(model.weights, final.weights)])
    if run.chief:
        with atomic_path(run.model_path) as tmp:
            final.save(tmp)
    return final


def run_summary(run_state: Any, tcfg: TrainSettings, policy: str, strategy: Any, **extra: Any) -> dict[str, Any]:
    """The summary a run's manifest records (epochs, best epoch and value, precision, whether TensorFlow's
    oneDNN kernels were on, replicas, and the workers of a multi-worker run, ...)."""
    from sensorium.pipelines.common.strategy import is_multi_worker, onednn_enabled, worker_count

    workers = {"workers": worker_count(strategy)} if is_multi_worker(strategy) else {}
    return {"epochs": run_state.epochs_done, "best_epoch": run_state.best_epoch,
            "best_" + tcfg.monitor: run_state.best, "stopped_early": run_state.stopped_early,
            **extra, "precision_policy": policy, "onednn": onednn_enabled(), "threads": _threads(),
            "replicas": strategy.num_replicas_in_sync, **workers}


def _threads() -> dict[str, int]:
    """TensorFlow's thread pools in this process (0: its default, one thread per core)."""
    import tensorflow as tf

    return {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op": tf.config.threading.get_inter_op_parallelism_threads()}


def finish_run(run: RunDir, *, history: dict, summary: dict[str, Any], data_spec: str, evaluate_on: str | None,
               evaluate: Callable[[str], dict[str, Any]], write_card: Callable[[dict[str, Any] | None], None]) -> None:
    """Plots, `evaluate(SPEC@evaluate_on)` (a data error is a warning, not a failed run), the model
    card, then the run is marked complete with `summary`.

    A non-chief worker (`run.chief` False) writes none of these: its directory is cleared down to the
    manifest and config.json and marked complete; the chief's run directory holds the run.
    """
    from sensorium.pipelines.common.reports import plot_training_curves

    if not run.chief:
        run.clear()
        run.set_status("complete", summary=summary)
        log.info("this worker is done; the model and its reports are in the chief's run directory")
        return

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
