"""Optimizers and learning-rate schedules shared by every task's training."""
from __future__ import annotations

from typing import Any


def make_optimizer(cfg: Any, steps_per_epoch: int):
    """Adam/AdamW/SGD with linear warm-up then cosine decay (or a constant rate), from a train config
    with epochs, warmup_epochs, schedule, learning_rate, optimizer, weight_decay, momentum and
    optionally clipnorm."""
    import keras

    total = max(1, cfg.epochs * steps_per_epoch)
    warmup = min(cfg.warmup_epochs * steps_per_epoch, total // 2)
    if cfg.schedule == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=cfg.learning_rate if warmup == 0 else cfg.learning_rate * 0.1,
            decay_steps=total - warmup, alpha=0.01,
            warmup_target=cfg.learning_rate if warmup else None, warmup_steps=warmup)
    else:
        lr = cfg.learning_rate
    clip = {"clipnorm": cfg.clipnorm} if getattr(cfg, "clipnorm", None) else {}
    if cfg.optimizer == "adam":
        return keras.optimizers.Adam(lr, **clip)
    if cfg.optimizer == "adamw":
        return keras.optimizers.AdamW(lr, weight_decay=cfg.weight_decay, **clip)
    return keras.optimizers.SGD(lr, momentum=cfg.momentum, nesterov=True, **clip)


def planned_steps(optimizer: Any) -> int | None:
    """The number of steps the optimizer's learning-rate schedule was planned for (warm-up plus decay), or
    None for a constant rate. A restored optimizer keeps the plan it was compiled with, whatever the
    config says now, so this is what a run's card reports."""
    import keras

    schedule = getattr(optimizer, "_learning_rate", None)
    if not isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
        return None
    config = schedule.get_config()
    if "decay_steps" not in config:
        return None
    return int(config["decay_steps"]) + int(config.get("warmup_steps") or 0)
