"""Train a translator into a run directory (resumable, early-stopped, evaluated at the end).

The run directory gets the tokenizer(s) (learned on the training pairs only, placeholders as single
symbols) and `model.keras`, whose metadata carries the tokenizers too.
"""
from __future__ import annotations

import base64
import logging
import math
from typing import Any

from sensorium.pipelines.common.optimizers import make_optimizer
from sensorium.pipelines.common.rundir import RunDir
from sensorium.pipelines.translation.config import TranslationConfig
from sensorium.runtime.errors import DataError

log = logging.getLogger(__name__)

SHARED_FILE, SOURCE_FILE, TARGET_FILE = "tokenizer.model", "source_tokenizer.model", "target_tokenizer.model"


def tokenizer_info(tokenizers: Any) -> dict[str, Any]:
    from sensorium.runtime.placeholders import PLACEHOLDER_SYMBOLS
    from sensorium.runtime.tokenizer import BOS_ID, EOS_ID, PAD_ID

    b64 = lambda tok: base64.b64encode(tok.proto).decode("ascii")  # noqa: E731
    info: dict[str, Any] = {"tokenizer": "sentencepiece-bpe", "pad_id": PAD_ID, "bos_id": BOS_ID, "eos_id": EOS_ID,
                            "placeholder_symbols": list(PLACEHOLDER_SYMBOLS), "shared_vocab": tokenizers.shared}
    if tokenizers.shared:
        info["tokenizer_model"] = b64(tokenizers.source)
    else:
        info.update(source_tokenizer_model=b64(tokenizers.source), target_tokenizer_model=b64(tokenizers.target))
    return info


def _tokenizers(cfg: TranslationConfig, run: RunDir, sources: list[str], targets: list[str], resume: bool):
    from sensorium.runtime.placeholders import PLACEHOLDER_SYMBOLS
    from sensorium.runtime.tokenizer import SubwordTokenizer, Tokenizers

    files = [SHARED_FILE] if cfg.model.shared_vocab else [SOURCE_FILE, TARGET_FILE]
    if resume and all((run.path / f).is_file() for f in files):
        loaded = [SubwordTokenizer.load(run.path / f) for f in files]
        return Tokenizers(loaded[0], loaded[-1])
    n = cfg.model.vocab_size
    if cfg.model.shared_vocab:
        tok = SubwordTokenizer.train(sources + targets, n, symbols=PLACEHOLDER_SYMBOLS, case_fold=False)
        tok.save(run.path / SHARED_FILE)
        return Tokenizers(tok, tok)
    src = SubwordTokenizer.train(sources, n, symbols=PLACEHOLDER_SYMBOLS, case_fold=False)
    tgt = SubwordTokenizer.train(targets, n, symbols=PLACEHOLDER_SYMBOLS, case_fold=False)
    src.save(run.path / SOURCE_FILE)
    tgt.save(run.path / TARGET_FILE)
    return Tokenizers(src, tgt)


def _build(cfg: TranslationConfig, tokenizers: Any):
    from sensorium.models.translation import build_translator

    return build_translator(cfg.model, source_vocab=tokenizers.source.vocab_size,
                            target_vocab=tokenizers.target.vocab_size, info=tokenizer_info(tokenizers))


def train(config: TranslationConfig, run: RunDir, *, resume: bool = False) -> dict[str, Any]:
    """Train into `run` (already created by the caller with status `training`); returns a summary."""

    from sensorium.models.translation import training_objects
    from sensorium.pipelines.common.callbacks import read_train_state
    from sensorium.pipelines.common.training import (
        fit_run,
        resume_or_build,
        run_summary,
        save_inference_model,
        start_training,
        write_split_lists,
    )
    from sensorium.pipelines.translation.data import held_out_sources, load_extra, load_train_validation

    cfg, tcfg, m = config, config.train, config.model
    policy, strategy = start_training(run, cfg)
    train_split, val_split = load_train_validation(cfg.data, seed=cfg.seed)
    if train_split.count < 2:
        raise DataError(f"{cfg.data.spec}: too few training pairs ({train_split.count})")
    write_split_lists(run, [(s.split, s.ids) for s in (train_split, val_split)],
                      train_split.failures + val_split.failures)
    extra = load_extra(cfg.data, held_out_sources(cfg.data, val_split, seed=cfg.seed), seed=cfg.seed)
    src_txt, tgt_txt, same = train_split.protected()
    mismatched = same.count(False)
    log.info("data: %d training pairs (%d with placeholders that differ between the sides, left out), "
             "%d validation", train_split.count, mismatched, val_split.count)
    if extra is not None:
        extra_src, extra_tgt, _ = extra.protected()
        src_txt, tgt_txt = src_txt + extra_src, tgt_txt + extra_tgt
    tokenizers = _tokenizers(cfg, run, src_txt, tgt_txt, resume)

    loss_cls, accuracy = training_objects()
    kw = dict(max_source=m.max_source_length, max_target=m.max_target_length)
    per_epoch = cfg.data.extra_pairs_per_epoch
    train_ds = train_split.dataset(tcfg.batch_size, tokenizers, training=True, seed=cfg.seed, extra=extra,
                                   extra_per_epoch=per_epoch, **kw)
    val_ds = val_split.dataset(tcfg.batch_size, tokenizers, **kw)
    steps = math.ceil(train_split.training_pairs_per_epoch(extra, per_epoch) / tcfg.batch_size)
    ckpt_dir = run.path / "checkpoints"
    state = read_train_state(ckpt_dir) if resume else None

    def build():
        model = _build(cfg, tokenizers)
        model.compile(optimizer=make_optimizer(tcfg, steps), loss=loss_cls(tcfg.label_smoothing), metrics=[accuracy])
        return model

    model = resume_or_build(strategy, ckpt_dir, state, build)
    run_state = fit_run(run, model, train_ds, val_ds, tcfg, steps, state)
    final = save_inference_model(run, model, lambda: _build(cfg, tokenizers))
    summary = run_summary(
        run_state, tcfg, policy, strategy,
        train={"spec": train_split.spec, "pairs": train_split.count, "placeholder_mismatches_left_out": mismatched,
               **({"extra_spec": extra.spec, "extra_pairs": extra.count, "extra_pairs_per_epoch": per_epoch}
                  if extra is not None else {})},
        validation={"spec": val_split.spec, "pairs": val_split.count},
        vocab_size={"source": tokenizers.source.vocab_size, "target": tokenizers.target.vocab_size,
                    "shared": tokenizers.shared},
        parameters=int(final.count_params()))
    _report(run, cfg, run_state.history, summary)
    return summary


def _report(run: RunDir, cfg: TranslationConfig, history: dict, summary: dict) -> None:
    from sensorium.pipelines.common.training import finish_run
    from sensorium.pipelines.translation.card import write_card
    from sensorium.pipelines.translation.evaluate import evaluate

    finish_run(run, history=history, summary=summary, data_spec=cfg.data.spec, evaluate_on=cfg.evaluate_on,
               evaluate=lambda spec: evaluate(run.path, spec, beam=cfg.beam, require_complete=False),
               write_card=lambda metrics: write_card(run, cfg, summary, metrics))
