"""Train a speech recogniser into a run directory (resumable, early-stopped, evaluated at the end)."""
from __future__ import annotations

import logging
import math
from typing import Any

from sensorium.pipelines.common.optimizers import make_optimizer
from sensorium.pipelines.common.rundir import RunDir
from sensorium.pipelines.speech.config import SpeechConfig
from sensorium.runtime.errors import DataError

log = logging.getLogger(__name__)


def train(config: SpeechConfig, run: RunDir, *, resume: bool = False) -> dict[str, Any]:
    """Train into `run` (already created by the caller with status `training`); returns a summary."""

    from sensorium.models.speech import build_speech_recognizer, ctc_loss
    from sensorium.pipelines.common.callbacks import read_train_state
    from sensorium.pipelines.common.training import (
        fit_run,
        resume_or_build,
        run_summary,
        save_inference_model,
        start_training,
        write_split_lists,
    )
    from sensorium.pipelines.speech.augment import Augmenter
    from sensorium.pipelines.speech.data import describe, feature_statistics, load_train_validation, typical_tail
    from sensorium.runtime.transcripts import ALPHABET
    from sensorium.runtime.vocabulary import words_of

    cfg, tcfg = config, config.train
    policy, strategy = start_training(run, cfg)

    train_split, val_split = load_train_validation(cfg.data, seed=cfg.seed, model_spec=cfg.model)
    if train_split.count < 2:
        raise DataError(f"{cfg.data.spec}: too few training utterances ({train_split.count})")
    write_split_lists(run, [(s.split, s.ids) for s in (train_split, val_split)],
                      train_split.failures + val_split.failures)
    log.info("data: %d training utterances (%.2f h), %d validation", train_split.count,
             train_split.seconds / 3600, val_split.count)

    steps = math.ceil(train_split.count / tcfg.batch_size)
    ckpt_dir = run.path / "checkpoints"
    state = read_train_state(ckpt_dir) if resume else None

    vocabulary = words_of(train_split.texts)  # the model's default decoding vocabulary
    language_model = transcript_language_model(train_split.texts)  # and its default word n-gram model
    stats: dict[str, Any] = {"tail_silence": typical_tail(train_split.waves)}  # how the clips end, for recognisers
    if cfg.model.normalization == "global":
        stats["feature_mean"], stats["feature_variance"] = feature_statistics(train_split.waves, cfg.model)

    def build():
        model = build_speech_recognizer(cfg.model, ALPHABET, vocabulary=vocabulary, language_model=language_model,
                                        lead_silence=cfg.data.lead_silence, **stats)
        model.compile(optimizer=make_optimizer(tcfg, steps), loss=ctc_loss)
        return model

    model = resume_or_build(strategy, ckpt_dir, state, build, custom_objects={"ctc_loss": ctc_loss})
    augmenter = Augmenter(cfg.augment, pool=train_split.waves) if cfg.augment.levers else None
    if augmenter:
        log.info("augmentation: %s", ", ".join(cfg.augment.levers))
    run_state = fit_run(run, model, train_split.dataset(tcfg.batch_size, cfg.model, training=True, seed=cfg.seed,
                                                        augment=augmenter),
                        val_split.dataset(tcfg.batch_size, cfg.model), tcfg, steps, state)
    if cfg.model.normalization == "global":  # the statistics the model holds (a resumed run's own)
        norm = model.get_layer("feature_normalization")
        stats.update(feature_mean=norm.input_mean, feature_variance=norm.input_variance)
    save_inference_model(run, model, lambda: build_speech_recognizer(cfg.model, ALPHABET, vocabulary=vocabulary,
                                                                      language_model=language_model,
                                                                      lead_silence=cfg.data.lead_silence, **stats))
    summary = run_summary(run_state, tcfg, policy, strategy, train=describe(train_split),
                          validation=describe(val_split))
    _report(run, cfg, run_state.history, summary)
    return summary


def transcript_language_model(texts: list[str], order: int = 3, max_ngrams: int = 200_000) -> dict[str, Any] | None:
    """A Kneser-Ney word n-gram model of the training transcripts (`WordNgramLM.to_dict()`), at the
    highest order up to `order` that stays within `max_ngrams` n-grams (the model's metadata carries
    it into every export); None when even a unigram model is too large."""
    from sensorium.runtime.errors import InputError
    from sensorium.runtime.ngram import WordNgramLM

    for k in range(order, 0, -1):
        try:
            lm = WordNgramLM.train(texts, order=k, source="the training transcripts")
        except InputError as exc:  # no words at all, or too many n-grams to count at this order
            log.warning("language model: %s", exc)
            continue
        if len(lm) <= max_ngrams:
            log.info("language model: %d-gram, %d n-grams from %d transcripts", k, len(lm), len(texts))
            return lm.to_dict()
    log.warning("language model: left out (more than %d n-grams even as unigrams)", max_ngrams)
    return None


def _report(run: RunDir, cfg: SpeechConfig, history: dict, summary: dict) -> None:
    """Plots, evaluation on the held-out split, model card; then the run is marked complete."""
    from sensorium.pipelines.common.training import finish_run
    from sensorium.pipelines.speech.card import write_card
    from sensorium.pipelines.speech.evaluate import evaluate

    finish_run(run, history=history, summary=summary, data_spec=cfg.data.spec, evaluate_on=cfg.evaluate_on,
               evaluate=lambda spec: evaluate(run.path, spec, beam=cfg.beam, require_complete=False),
               write_card=lambda metrics: write_card(run, cfg, summary, metrics))
