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
