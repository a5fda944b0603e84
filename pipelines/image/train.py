"""Train an image classifier into a run directory (resumable, early-stopped, evaluated at the end)."""
from __future__ import annotations

import logging
import math
from typing import Any

from sensorium.pipelines.common.batching import fixed_batch_size
from sensorium.pipelines.common.optimizers import make_optimizer
from sensorium.pipelines.common.rundir import RunDir
from sensorium.pipelines.image.config import ImageClassificationConfig, TrainConfig
from sensorium.runtime.errors import DataError

log = logging.getLogger(__name__)


def compile_classifier(model, cfg: TrainConfig, steps_per_epoch: int, num_classes: int) -> None:
    import keras

    k = min(cfg.top_k, num_classes)
    model.compile(
        optimizer=make_optimizer(cfg, steps_per_epoch),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        # weighted: the padding rows of the last training batch (weight 0) stay out of them
        weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
                          keras.metrics.SparseTopKCategoricalAccuracy(k=k, name=f"top_{k}_accuracy")],
    )


def train(config: ImageClassificationConfig, run: RunDir, *, resume: bool = False) -> dict[str, Any]:
    """Train into `run` (already created by the caller with status `training`); returns a summary.

    With a pretrained backbone, phase 1 trains the head on frozen features for `train.epochs`, then
    phase 2 also trains the backbone (or the variables `train.finetune_pattern` selects) for
    `train.finetune_epochs` at `train.finetune_learning_rate`."""
    from sensorium.models.backbones.finetune import find_backbone, set_backbone_trainable
    from sensorium.pipelines.common.callbacks import read_train_state
    from sensorium.pipelines.common.training import (
        Phase,
        fit_run,
        resume_or_build,
        run_summary,
        save_inference_model,
        start_training,
        write_split_lists,
    )
    from sensorium.pipelines.image.data import load_train_validation
    from sensorium.pipelines.image.defaults import check_pretrained_sizes, resolve_backbone
    from sensorium.runtime.errors import ModelError

    cfg, tcfg = config, config.train
    resolve_backbone(cfg)  # "auto": pretrained for colour images, else scratch (recorded in config.json)
    check_pretrained_sizes(cfg)
    cfg.model.image_size = _resolved_size(cfg)  # recorded, so config.json reproduces the run as is
    # mixed bfloat16 (where native) for our CNN from scratch: its step is 1.36x faster; a pretrained
    # backbone's depthwise convolutions gain nothing from it (README "oneDNN and bfloat16")
    policy, strategy = start_training(run, cfg, cpu_bf16_default=cfg.model.backbone is None)

    size = tuple(cfg.model.image_size)
    train_split, val_split = load_train_validation(cfg.data, seed=cfg.seed, image_size=size)
    if train_split.count < 2:
        raise DataError(f"{cfg.data.spec}: too few training images ({train_split.count})")
    labels = train_split.labels
    run.write_labels(labels)
    write_split_lists(run, [(s.split, s.ids) for s in (train_split, val_split)],
                      train_split.failures + [f for f in val_split.failures if f not in train_split.failures])
    log.info("data: %d training and %d validation images, %d classes (%s)", train_split.count,
             val_split.count, len(labels), ", ".join(labels[:10]) + (" ..." if len(labels) > 10 else ""))

    replicas = strategy.num_replicas_in_sync
    steps = math.ceil(train_split.count / fixed_batch_size(tcfg.batch_size, replicas))  # every batch full-size
    ckpt_dir = run.path / "checkpoints"
    state = read_train_state(ckpt_dir) if resume else None

    def build():
        model = _build(cfg, labels)
        backbone = find_backbone(model)
        if backbone is not None:
            set_backbone_trainable(backbone, False)  # phase 1: the head learns on frozen features
        compile_classifier(model, tcfg, steps, len(labels))
        return model

    model = resume_or_build(strategy, ckpt_dir, state, build)
    backbone = find_backbone(model)

    def fine_tune(model: Any) -> None:
        if backbone.trainable:  # a resumed run already in phase 2 keeps its compiled optimizer
            return
        log.info("phase 2: fine-tuning the backbone at learning rate %g for %d epochs",
                 tcfg.finetune_learning_rate, tcfg.finetune_epochs)
        count = set_backbone_trainable(backbone, True, tcfg.finetune_pattern,
                                       batchnorm_training=cfg.model.backbone_batchnorm_training)
        if count == 0:
            raise ModelError(f"--finetune-pattern {tcfg.finetune_pattern!r} selects no backbone variable")
        with strategy.scope():
            compile_classifier(model, _phase2(tcfg), steps, len(labels))

    phases = (Phase(tcfg.finetune_epochs, fine_tune),) if backbone is not None else ()
    train_ds = train_split.dataset(tcfg.batch_size, training=True, seed=cfg.seed, fixed=True,
                                   replicas=replicas)
    run_state = fit_run(run, model, train_ds, val_split.dataset(tcfg.batch_size), tcfg, steps, state, phases=phases)
    save_inference_model(run, model, lambda: _build(cfg, labels, pretrained=False))
    summary = run_summary(run_state, tcfg, policy, strategy, train_count=train_split.count,
                          validation_count=val_split.count)
    _report(run, cfg, run_state.history, summary, labels)
    return {**summary, "labels": labels}


def _build(cfg: ImageClassificationConfig, labels: list[str], pretrained: bool = True):
    from sensorium.models.backbones.hub import HubModuleError
    from sensorium.models.image import build_image_classifier
    from sensorium.runtime.errors import ModelError

    try:
        return build_image_classifier(cfg.model, num_classes=len(labels), labels=labels, pretrained=pretrained)
    except HubModuleError as exc:
        raise ModelError(str(exc)) from None


def _resolved_size(cfg: ImageClassificationConfig) -> list[int]:
    from sensorium.models.backbones.hub import HubModuleError
    from sensorium.models.image import resolve_image_size
    from sensorium.runtime.errors import ModelError

    try:
        return list(resolve_image_size(cfg.model))
    except HubModuleError as exc:
        raise ModelError(str(exc)) from None


def _phase2(tcfg: TrainConfig) -> TrainConfig:
    """Phase 2's optimisation: the same optimizer at the fine-tuning rate, cosine over its epochs."""
    from dataclasses import replace

    return replace(tcfg, learning_rate=tcfg.finetune_learning_rate, epochs=tcfg.finetune_epochs, warmup_epochs=0)


def _report(run: RunDir, cfg: ImageClassificationConfig, history: dict, summary: dict, labels: list[str]) -> None:
    """Plots, evaluation on the held-out split, model card; then the run is marked complete."""
    from sensorium.pipelines.common.training import finish_run
    from sensorium.pipelines.image.card import write_card
    from sensorium.pipelines.image.evaluate import evaluate

    finish_run(run, history=history, summary=summary,
               data_spec=cfg.data.spec, evaluate_on=cfg.evaluate_on,
               evaluate=lambda spec: evaluate(run.path, spec, require_complete=False),
               write_card=lambda metrics: write_card(run, cfg, {**summary, "labels": labels}, metrics))
