"""tf.distribute strategy and precision policy that fit the devices at hand."""
from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def make_strategy(name: str = "auto"):
    """`auto`: MirroredStrategy over all GPUs when there are several, else the default strategy.

    `mirrored` always uses MirroredStrategy (on a CPU-only machine it mirrors over the CPU).
    """
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    if name == "default" or (name == "auto" and len(gpus) < 2):
        strategy = tf.distribute.get_strategy()
    elif name in ("auto", "mirrored"):
        strategy = tf.distribute.MirroredStrategy()
    else:
        raise ValueError(f"unknown strategy {name!r}; known: auto, default, mirrored")
    log.info("strategy: %s with %d replica(s) (%d GPU(s) visible)", type(strategy).__name__,
             strategy.num_replicas_in_sync, len(gpus))
    return strategy


def set_precision(mode: str = "auto") -> str:
    """Set Keras' global dtype policy: `mixed_float16` on a GPU for `auto`/`on`, else float32."""
    import keras
    import tensorflow as tf

    has_gpu = bool(tf.config.list_physical_devices("GPU"))
    policy = "mixed_float16" if (mode == "on" or (mode == "auto" and has_gpu)) else "float32"
    if mode == "on" and not has_gpu:
        log.warning("mixed precision requested without a GPU: it will run, but slower than float32")
    keras.mixed_precision.set_global_policy(policy)
    return policy
