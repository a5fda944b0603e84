"""tf.distribute strategy and precision policy that fit the devices at hand, and what training needs to
know about them: which process writes the run directory, how datasets are split across workers."""
from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sensorium.runtime.errors import UsageError

log = logging.getLogger(__name__)

STRATEGIES = ("auto", "default", "mirrored", "multiworker")
TRAINING_JOBS = ("chief", "worker")  # the jobs of a MultiWorkerMirroredStrategy cluster that train
TF_CONFIG_EXAMPLE = ('{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                     '"task": {"type": "worker", "index": 0}}')


def read_tf_config() -> dict[str, Any]:
    """The `TF_CONFIG` environment variable of a multi-worker run, checked: a `cluster` of `chief` (at
    most one) and `worker` host:port lists, and this process's `task` (type and index) in it.
    Anything else is a UsageError of one line."""
    raw = os.environ.get("TF_CONFIG", "").strip()
    if not raw:
        raise UsageError(f"--strategy multiworker needs the TF_CONFIG environment variable (the cluster and this "
                         f"process's task), e.g. TF_CONFIG='{TF_CONFIG_EXAMPLE}'")
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise UsageError(f"TF_CONFIG is not valid JSON: {exc}") from None
    cluster = data.get("cluster") if isinstance(data, dict) else None
    if not isinstance(cluster, dict) or not cluster:
        raise UsageError(f'TF_CONFIG needs a "cluster" object of job names and host:port lists, e.g. '
                         f"{TF_CONFIG_EXAMPLE}")
    for job, addresses in cluster.items():
        if job not in TRAINING_JOBS:
            raise UsageError(f"TF_CONFIG: job {job!r} is not supported by --strategy multiworker (only "
                             f"{' and '.join(TRAINING_JOBS)})")
        if (not isinstance(addresses, list) or not addresses
                or not all(isinstance(a, str) and _is_host_port(a) for a in addresses)):
            raise UsageError(f"TF_CONFIG: cluster.{job} must be a non-empty list of host:port strings, got "
                             f"{json.dumps(addresses)}")
    if len(cluster.get("chief", [])) > 1:
        raise UsageError("TF_CONFIG: a cluster has at most one chief")
    task = data.get("task")
    if not isinstance(task, dict) or task.get("type") not in cluster:
        raise UsageError(f'TF_CONFIG needs a "task" of one of the cluster\'s jobs ({", ".join(cluster)}), e.g. '
                         '"task": {"type": "worker", "index": 0}')
    index = task.get("index", 0)
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(cluster[task["type"]]):
        raise UsageError(f"TF_CONFIG: task index {index!r} is out of range: cluster.{task['type']} has "
                         f"{len(cluster[task['type']])} address(es)")
    return data


def _is_host_port(address: str) -> bool:
    host, sep, port = address.rpartition(":")
    return bool(host and sep and port.isdigit() and 0 < int(port) < 65536)


def make_strategy(name: str = "auto"):
    """`auto`: MirroredStrategy over all GPUs when there are several, else the default strategy.

    `mirrored` always uses MirroredStrategy (on a CPU-only machine it mirrors over the CPU, or over its
    logical CPU devices when `tf.config.set_logical_device_configuration` made several).
    `multiworker`: MultiWorkerMirroredStrategy over the cluster that `TF_CONFIG` describes (every GPU,
    else the CPU, of every worker); it must be made before anything else initialises TensorFlow's devices.
    """
    import tensorflow as tf

    if name == "multiworker":
        read_tf_config()
        try:
            strategy = tf.distribute.MultiWorkerMirroredStrategy()
        except RuntimeError as exc:
            if "at program startup" not in str(exc):
                raise
            raise UsageError("--strategy multiworker: TensorFlow had started before training did (a hub backbone "
                             "loaded to find its input size? pass --image-size)") from None
        task = worker_task(strategy)
        log.info("strategy: MultiWorkerMirroredStrategy with %d replica(s) on %d worker(s); this is %s:%d%s",
                 strategy.num_replicas_in_sync, worker_count(strategy), task[0], task[1],
                 " (the chief: it writes the run directory)" if is_chief(strategy) else "")
        return strategy
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; known: {', '.join(STRATEGIES)}")
    if name == "auto" and os.environ.get("TF_CONFIG"):
        log.warning("TF_CONFIG is set but the strategy is auto: this process trains on its own; use "
                    "--strategy multiworker to train with the cluster")
    gpus = tf.config.list_logical_devices("GPU")
    cpus = tf.config.list_logical_devices("CPU")
    if name == "default" or (name == "auto" and len(gpus) < 2):
        strategy = tf.distribute.get_strategy()
    elif not gpus and len(cpus) > 1:
        strategy = tf.distribute.MirroredStrategy([d.name for d in cpus])
    else:
        strategy = tf.distribute.MirroredStrategy()
    log.info("strategy: %s with %d replica(s) (%d GPU(s) visible)", type(strategy).__name__,
             strategy.num_replicas_in_sync, len(gpus))
    return strategy


def is_multi_worker(strategy: Any) -> bool:
    """Whether `strategy` is a MultiWorkerMirroredStrategy (of any number of workers)."""
    import tensorflow as tf

    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def worker_task(strategy: Any) -> tuple[str, int]:
    """This process's (job, index) in a multi-worker cluster; ("worker", 0) for a one-machine strategy."""
    resolver = strategy.cluster_resolver if is_multi_worker(strategy) else None
    if resolver is None or not resolver.task_type:
        return "worker", 0
    return resolver.task_type, int(resolver.task_id or 0)


def worker_count(strategy: Any) -> int:
    """The number of training processes (chief and workers) of `strategy`'s cluster; 1 on one machine."""
    resolver = strategy.cluster_resolver if is_multi_worker(strategy) else None
    if resolver is None:
        return 1
    spec = resolver.cluster_spec()
    return max(1, sum(spec.num_tasks(job) for job in TRAINING_JOBS if job in spec.jobs))


def is_chief(strategy: Any) -> bool:
    """Whether this process writes the run directory: always on one machine; in a multi-worker cluster,
    the `chief` task, or worker 0 when the cluster has no chief."""
    if not is_multi_worker(strategy):
        return True
    job, index = worker_task(strategy)
    resolver = strategy.cluster_resolver
    has_chief = resolver is not None and "chief" in resolver.cluster_spec().jobs
    return job == "chief" or (job == "worker" and index == 0 and not has_chief)


def distribute_options(dataset: Any, strategy: Any) -> Any:
    """`dataset` ready for `fit` under `strategy`. With several workers it is sharded by DATA: every
    worker runs the same pipeline and keeps its share of each global batch (Keras splits every batch
    into per-replica parts), so the workers together train on exactly the global batches one process
    would. Other strategies get `dataset` unchanged."""
    if dataset is None or not is_multi_worker(strategy):
        return dataset
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def require_same_epoch(strategy: Any, epoch: int) -> None:
    """With several workers, check that all of them start `fit` at `epoch` (a collective: every worker
    calls it); a worker that resumed from other checkpoints would make the others wait for ever."""
    if not is_multi_worker(strategy) or worker_count(strategy) < 2:
        return
    import tensorflow as tf

    from sensorium.runtime.errors import ModelError

    local = strategy.experimental_distribute_values_from_function(lambda _: tf.constant([epoch], tf.int32))
    epochs = sorted({int(e) for e in strategy.gather(local, axis=0).numpy()})
    if len(epochs) > 1:
        raise ModelError(f"the workers' checkpoints are of different epochs ({', '.join(map(str, epochs))}): one "
                         f"stopped while the others saved; copy the checkpoints folder of a worker at epoch "
                         f"{epochs[-1]} into the others' run directories and resume them all again")


@contextlib.contextmanager
def keras_multiworker_fixes(strategy: Any) -> Iterator[None]:
    """Make Keras 3 `fit`/`evaluate` work across several workers while the block runs.

    Keras 3.15 fails there (keras-team/keras#20585) at two places, both fixed here as Keras intends them:
    its model build reduces the first input batch across workers only to read its shapes and dtypes
    (it cannot reduce a tuple; the local part has the same ones), and it averages each step's scalar
    logs across workers with `axis=0` (a scalar has no axis 0; `axis=None` averages the replicas).
    A no-op for other strategies and for a one-worker cluster.
    """
    if not is_multi_worker(strategy) or worker_count(strategy) < 2:
        yield
        return
    from keras import tree
    from keras.src.backend.tensorflow import trainer as tf_trainer

    trainer_cls = tf_trainer.TensorFlowTrainer
    original_build, original_reduce = trainer_cls._maybe_symbolic_build, tf_trainer.reduce_per_replica

    def local_symbolic_build(self, iterator=None, data_batch=None):
        if iterator is not None:
            for _, _, it in iterator:
                data_batch = next(it)
                break
        data_batch = tree.map_structure(lambda v: self.distribute_strategy.experimental_local_results(v)[0],
                                        data_batch)
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    def reduce_per_replica(values, strategy, reduction="auto"):
        if reduction in ("auto", "mean") and is_multi_worker(strategy) and worker_count(strategy) > 1:
            return tree.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return original_reduce(values, strategy, reduction)

    trainer_cls._maybe_symbolic_build, tf_trainer.reduce_per_replica = local_symbolic_build, reduce_per_replica
    try:
        yield
    finally:
        trainer_cls._maybe_symbolic_build, tf_trainer.reduce_per_replica = original_build, original_reduce


BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags of CPUs with native bfloat16 arithmetic


def cpu_has_bf16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU computes bfloat16 natively: `avx512_bf16` or `amx_bf16` among the `flags` of
    `/proc/cpuinfo` (or of the `cpuinfo` text given). False where the file cannot be read (not Linux)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            return False
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags" and set(value.split()) & set(BF16_FLAGS):
            return True
    return False


def parse_threads(setting: str) -> tuple[int, int] | str:
    """`train.threads`: "default", "split", or "INTRA,INTER" (two integers >= 0; 0 is TensorFlow's
    default) -> the pair, or the keyword. Anything else is a UsageError naming the setting."""
    text = str(setting).strip()
    if text in ("default", "split"):
        return text
    parts = text.split(",")
    if len(parts) == 2 and all(p.strip().isdigit() and int(p) <= 1024 for p in parts):
        return int(parts[0]), int(parts[1])
    raise UsageError(f"train.threads must be default, split or INTRA,INTER (two integers 0-1024), got {setting!r}")


def set_threads(setting: str) -> tuple[int, int]:
    """Size TensorFlow's thread pools for training (before TensorFlow runs its first op) and return
    (intra-op, inter-op) as set, 0 meaning TensorFlow's default (one thread per core).

    "split" on a CPU-only machine gives each op half the cores and runs 2 ops at a time: a
    bidirectional LSTM's two directions then step side by side instead of sharing each small matmul
    between the cores (issue 25: the speech step 1.13x faster on 2 cores). With a GPU, "split" keeps
    TensorFlow's defaults. Once TensorFlow is initialised its pools cannot change: a warning says so."""
    import tensorflow as tf

    wanted = parse_threads(setting)
    if wanted == "default" or (wanted == "split" and tf.config.list_physical_devices("GPU")):
        return (tf.config.threading.get_intra_op_parallelism_threads(),
                tf.config.threading.get_inter_op_parallelism_threads())
    if wanted == "split":
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        wanted = (max(1, cores // 2), 2)
    intra, inter = wanted
    try:
        tf.config.threading.set_intra_op_parallelism_threads(intra)
        tf.config.threading.set_inter_op_parallelism_threads(inter)
    except RuntimeError:
        log.warning("TensorFlow is already running: its thread pools stay as they are (train.threads %s not "
                    "applied)", setting)
    else:
        log.info("TensorFlow threads: %d per op, %d ops at a time", intra, inter)
    return (tf.config.threading.get_intra_op_parallelism_threads(),
            tf.config.threading.get_inter_op_parallelism_threads())


def onednn_enabled() -> bool:
    """Whether TensorFlow runs its oneDNN CPU kernels in this process (on by default on x86 Linux;
    `TF_ENABLE_ONEDNN_OPTS=0` turns them off before TensorFlow is imported)."""
    import tensorflow as tf  # noqa: F401  (the flag is read when TensorFlow loads)
    from tensorflow.python.util import _pywrap_util_port

    return bool(_pywrap_util_port.IsMklEnabled())


def choose_precision(mode: str, *, has_gpu: bool, bf16: bool, onednn: bool, cpu_bf16_default: bool = False) -> str:
    """The Keras dtype policy for `mode` on a machine with (`has_gpu`) a GPU, (`bf16`) a CPU with native
    bfloat16 and (`onednn`) TensorFlow's oneDNN kernels on.

    `off`: float32. On a GPU, `auto` and `on`: mixed_float16. On a CPU, `on` (and `auto` for a task whose
    quality was checked in bfloat16, `cpu_bf16_default`): mixed_bfloat16 when the CPU has it natively and
    oneDNN is on (the Eigen kernels emulate bfloat16, slower than float32), else float32."""
    if mode not in ("auto", "on", "off"):
        raise ValueError(f"unknown mixed precision mode {mode!r}; known: auto, on, off")
    if mode == "off":
        return "float32"
    if has_gpu:
        return "mixed_float16"
    wanted = mode == "on" or cpu_bf16_default
    return "mixed_bfloat16" if wanted and bf16 and onednn else "float32"


def set_precision(mode: str = "auto", *, cpu_bf16_default: bool = False) -> str:
    """Set Keras' global dtype policy (see `choose_precision`) and return its name. Where bfloat16 was
    wanted but the CPU or TensorFlow's kernels lack it, one log line says float32 is used instead."""
    import keras
    import tensorflow as tf

    has_gpu = bool(tf.config.list_physical_devices("GPU"))
    bf16, onednn = cpu_has_bf16(), onednn_enabled()
    policy = choose_precision(mode, has_gpu=has_gpu, bf16=bf16, onednn=onednn, cpu_bf16_default=cpu_bf16_default)
    if not has_gpu and policy == "float32" and (mode == "on" or (mode == "auto" and cpu_bf16_default)):
        why = ("oneDNN is off (TF_ENABLE_ONEDNN_OPTS=0)" if bf16 else
               f"this CPU has no native bfloat16 ({' or '.join(BF16_FLAGS)})")
        log.info("mixed precision: %s, training in float32", why)
    keras.mixed_precision.set_global_policy(policy)
    return policy
