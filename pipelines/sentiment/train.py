"""Train a sentiment classifier into a run directory (resumable, early-stopped, evaluated at the end).

The run directory gets `tokenizer.model` (learned on the training texts only), `labels.txt` and
`model.keras`; the model's metadata carries the tokenizer too, so a bare `.keras` file is complete.
At the end, the binary head is calibrated on the validation split (`calibration.py`) and recorded in
the metadata.

`train.init_from` (a bundled name, run directory or .keras) continues training a sentiment model on
new data: the run takes over its weights, tokenizer and labels (the data's labels must be among them:
positive/negative texts fine-tune a three-way model), and its model settings when it is a run directory.
"""
from __future__ import annotations

import base64
import logging
import math
from typing import Any

from sensorium.pipelines.common.optimizers import make_optimizer
from sensorium.pipelines.common.rundir import RunDir
from sensorium.pipelines.sentiment.config import SentimentConfig
from sensorium.runtime.errors import DataError

log = logging.getLogger(__name__)


def tokenizer_info(tokenizer: Any) -> dict[str, Any]:
    """What the model's metadata records about its tokenizer (the model itself, base64)."""
    from sensorium.runtime.tokenizer import BOS_ID, PAD_ID

    return {"tokenizer": "sentencepiece-bpe", "tokenizer_model": base64.b64encode(tokenizer.proto).decode("ascii"),
            "pad_id": PAD_ID, "bos_id": BOS_ID}


def _build(cfg: SentimentConfig, labels: list[str], tokenizer: Any, extra_info: dict[str, Any] | None = None):
    from sensorium.models.sentiment import build_text_classifier

    if cfg.model.uses_hub:
        return build_text_classifier(cfg.model, labels, info=extra_info)
    return build_text_classifier(cfg.model, labels, vocab_size=tokenizer.vocab_size,
                                 info={**tokenizer_info(tokenizer), **(extra_info or {})})


def _init_source(cfg: SentimentConfig, run: RunDir) -> Any:
    """The warm-start model of `train.init_from`; a run directory's model settings become the config's
    (and the run's config.json says so)."""
    from sensorium.pipelines.common.config import config_from_dict, config_to_dict
    from sensorium.pipelines.common.warmstart import load_init_source
    from sensorium.runtime.errors import SensoriumError, UsageError
    from sensorium.runtime.text_norm import normalization_of

    source = load_init_source(str(cfg.train.init_from), "sentiment", "sentiment model")
    if source.run_dir is not None and (source.run_dir / "config.json").is_file():
        try:
            saved = RunDir(source.run_dir).read_config()
            cfg.model = config_from_dict(type(cfg.model), saved["model"], f"{source.run_dir}/config.json model")
        except (KeyError, SensoriumError) as exc:
            raise UsageError(f"--init-from {source.name}: its config.json has no usable model section "
                             f"({exc})") from None
        if run.chief:
            run.write_json("config.json", config_to_dict(cfg))
    cfg.model.text_normalization = normalization_of(source.info, source.name)  # the source's own, whatever given
    if source.info.get("input") == "text" and not cfg.model.uses_hub:
        raise UsageError(f"--init-from {source.name}: it takes strings (a hub encoder); give its run directory")
    if source.info.get("encoder") and source.info["encoder"] != cfg.model.encoder:
        raise UsageError(f"--init-from {source.name}: its encoder is {source.info['encoder']}, this config's "
                         f"{cfg.model.encoder}; use its run directory or its model settings")
    return source


def _calibrate(model: Any, val_ds: Any, val_split: Any, prior: tuple[float, float]) -> dict[str, Any] | None:
    """The binary head's calibration on the validation split, pulled towards `prior` (None when it has too
    few polar texts)."""
    import numpy as np

    from sensorium.pipelines.sentiment.calibration import binary_accuracy, fit_binary_calibration

    labels = val_split.labels
    if "positive" not in labels or "negative" not in labels:
        return None
    probs = np.concatenate([np.asarray(model(x, training=False), np.float32) for x, *_ in val_ds])
    cal = fit_binary_calibration(probs, val_split.items.labels, labels, prior=prior)
    if cal is None:
        log.info("binary head: too few positive or negative validation texts to fit its calibration")
        return None
    log.info("binary head: scale %.3f, bias %+.3f (balanced accuracy on validation %.4f, uncalibrated %.4f)",
             cal["scale"], cal["bias"], binary_accuracy(probs, val_split.items.labels, labels, cal),
             binary_accuracy(probs, val_split.items.labels, labels, None))
    return cal


def _fit_fusion(splits: list[Any], prior: tuple[float, ...], seed: int,
                opinions: str = "vader") -> dict[str, Any] | None:
    """The lexicon expert of the binary head (hearing `opinions`), fitted on the texts of `splits` (training
    and validation: `expert_items`) and pulled towards `prior` (`lexicon_fusion`); None without
    vaderSentiment (logged) or with too few polar texts."""
    from sensorium.pipelines.sentiment.calibration import fit_expert
    from sensorium.runtime.errors import MissingExtraError

    try:
        fusion = fit_expert(splits, prior=prior, opinions=opinions, seed=seed)
    except MissingExtraError as exc:
        log.warning("binary head: no lexicon expert recorded (%s)", exc)
        return None
    if fusion is not None:
        log.info("lexicon expert (%s): scale %.3f, bias %+.3f%s%s on %d positive and negative training and "
                 "validation texts (added to the binary head)", fusion["lexicon"], fusion["scale"], fusion["bias"],
                 f", opinion lexicon {fusion['opinion_scale']:.3f}" if "opinion_scale" in fusion else "",
                 f", {len(fusion['words'])} domain words (weight {fusion['words_scale']:.3f})"
                 if "words" in fusion else "", fusion["negative"] + fusion["positive"])
    return fusion


def _kept_from(source: Any, labels: list[str],
               fusion: dict[str, Any] | None) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(binary head, lexicon expert) of a warm start whose validation split could not fit the head (too few
    positive or negative texts: a user's small or lopsided set): the head uncorrected (1, 0), what its fit
    pulled towards (1, 0) gives with no texts, beside the expert fitted on all its texts (`fusion`) or,
    when they are too few too, the source's expert; (None, None) when the source has no lexicon expert."""
    from sensorium.runtime.lexicon_fusion import lexicon_fusion

    expert = lexicon_fusion(source.info)
    if expert is None or not {"positive", "negative"} <= set(labels):
        return None, None
    unfitted = "no: too few positive or negative validation texts"
    if fusion is None:
        unfitted_expert = "no: too few positive or negative training and validation texts"
        fusion = {**expert.record(), "fitted": unfitted_expert, "kept_from": source.name}
    log.info("binary head: uncorrected (scale 1, bias 0), with the lexicon expert %s (scale %.3f, bias %+.3f)",
             f"of {source.name}" if "kept_from" in fusion else "fitted on its texts", fusion["scale"], fusion["bias"])
    return {"scale": 1.0, "bias": 0.0, "fitted": unfitted}, fusion


def train(config: SentimentConfig, run: RunDir, *, resume: bool = False) -> dict[str, Any]:
    """Train into `run` (already created by the caller with status `training`); returns a summary."""

    from sensorium.models.sentiment import classification_loss
    from sensorium.pipelines.common.callbacks import read_train_state
    from sensorium.pipelines.common.training import (
        fit_run,
        resume_or_build,
        run_summary,
        save_inference_model,
        start_training,
        write_split_lists,
    )
    from sensorium.pipelines.common.warmstart import warm_start
    from sensorium.pipelines.sentiment.data import class_weights, describe, load_train_validation
    from sensorium.runtime.lexicon_fusion import lexicon_fusion
    from sensorium.runtime.text_norm import normalize, with_normalization
    from sensorium.runtime.tokenizer import TOKENIZER_FILE, SubwordTokenizer, tokenizers_from

    cfg, tcfg = config, config.train
    policy, strategy = start_training(run, cfg)

    source = _init_source(cfg, run) if tcfg.init_from else None
    train_split, val_split = load_train_validation(cfg.data, seed=cfg.seed,
                                                   label_names=source.labels if source is not None else None)
    if train_split.count < 2:
        raise DataError(f"{cfg.data.spec}: too few training texts ({train_split.count})")
    labels = train_split.labels
    run.write_labels(labels)
    write_split_lists(run, [(s.split, s.items.ids) for s in (train_split, val_split)],
                      train_split.failures + val_split.failures)
    log.info("data: %d training texts, %d validation; labels %s", train_split.count, val_split.count,
             ", ".join(labels))

    tokenizer = None
    if not cfg.model.uses_hub:
        tok_path = run.path / TOKENIZER_FILE
        if source is not None and not (resume and tok_path.is_file()):
            tokenizer = tokenizers_from(str(source.keras_path), info=source.info).source
            tokenizer.save(tok_path)
        elif resume and tok_path.is_file():
            tokenizer = SubwordTokenizer.load(tok_path)
        else:
            tokenizer = SubwordTokenizer.train(normalize(train_split.items.texts, cfg.model.text_normalization),
                                               cfg.model.vocab_size)
            tokenizer.save(tok_path)
        tokenizer = with_normalization(tokenizer, cfg.model.text_normalization)

    weights = class_weights(train_split.items.labels, len(labels)) if tcfg.class_weights else None
    train_ds = train_split.dataset(tcfg.batch_size, tokenizer=tokenizer, max_length=cfg.model.max_length,
                                   training=True, seed=cfg.seed, sample_weights=weights)
    val_ds = val_split.dataset(tcfg.batch_size, tokenizer=tokenizer, max_length=cfg.model.max_length)
    steps = math.ceil(train_split.count / tcfg.batch_size)
    ckpt_dir = run.path / "checkpoints"
    state = read_train_state(ckpt_dir) if resume else None

    loss = classification_loss(tcfg.label_smoothing)  # registered before a checkpoint compiled with it loads

    def build():
        model = _build(cfg, labels, tokenizer)
        model.compile(optimizer=make_optimizer(tcfg, steps), loss=loss, metrics=["accuracy"])
        return model

    model = resume_or_build(strategy, ckpt_dir, state, build)
    if source is not None and state is None:
        warm_start(model, source)
    run_state = fit_run(run, model, train_ds, val_ds, tcfg, steps, state)
    # The binary head's fit starts from no correction, (1, 0), a warm start's too: the source's correction
    # was for the source's lean on its own domain, which fine-tuning on the new domain's labels re-learns
    # (chosen on 600 IMDb reviews outside the test set, two draws: +1.3 and +1.8 fused macro-F1 over a
    # pull towards the source's). The lexicon expert, which fine-tuning leaves as it was, is pulled towards
    # the source's; a warm start's few texts then adjust both (the head on the validation texts, the expert,
    # which learns nothing from the training texts, on those too).
    info = source.info if source is not None else {}
    calibration = _calibrate(model, val_ds, val_split, (1.0, 0.0))
    fusion = (_fit_fusion([train_split, val_split], lexicon_fusion(info) or (1.0, 0.0), cfg.seed, tcfg.opinions())
              if calibration or source is not None else None)
    if calibration is None and source is not None:
        calibration, fusion = _kept_from(source, val_split.labels, fusion)
    if calibration is None:
        log.info("binary head: left uncalibrated (scale 1, bias 0)")
    long_text = _long_text_record(tokenizer, train_split.items.texts, cfg.model.max_length)
    extra_info = {**({"binary_calibration": calibration} if calibration else {}),
                  **({"lexicon_fusion": fusion} if fusion else {}), **long_text} or None
    final = save_inference_model(run, model, lambda: _build(cfg, labels, tokenizer, extra_info))
    summary = run_summary(run_state, tcfg, policy, strategy, train=describe(train_split),
                          validation=describe(val_split), vocab_size=tokenizer.vocab_size if tokenizer else None,
                          parameters=int(final.count_params()),
                          **({"binary_calibration": calibration} if calibration else {}),
                          **({"lexicon_fusion": fusion} if fusion else {}), **long_text,
                          **({"init_from": tcfg.init_from} if tcfg.init_from else {}))
    _report(run, cfg, run_state.history, summary)
    return summary


def _long_text_record(tokenizer: Any, texts: list[str], max_length: int) -> dict[str, int]:
    """{"long_text_pieces": the training texts' 99th-percentile length, at most the window's} for the
    runtime's reading of long texts (`sensorium.runtime.text_windows`); nothing for a model that takes
    strings itself."""
    from sensorium.pipelines.sentiment.long_text import typical_pieces

    pieces = typical_pieces(tokenizer, texts, max_length) if tokenizer is not None else None
    if pieces is not None:
        log.info("long texts: over %d pieces (the training texts' 99th percentile, at most the window) are read "
                 "sentence by sentence", pieces)
    return {"long_text_pieces": pieces} if pieces is not None else {}


def _report(run: RunDir, cfg: SentimentConfig, history: dict, summary: dict) -> None:
    """Plots, evaluation on the held-out split, model card; then the run is marked complete."""
    from sensorium.pipelines.common.training import finish_run
    from sensorium.pipelines.sentiment.card import write_card
    from sensorium.pipelines.sentiment.evaluate import evaluate

    finish_run(run, history=history, summary=summary, data_spec=cfg.data.spec, evaluate_on=cfg.evaluate_on,
               evaluate=lambda spec: evaluate(run.path, spec, require_complete=False),
               write_card=lambda metrics: write_card(run, cfg, summary, metrics))
