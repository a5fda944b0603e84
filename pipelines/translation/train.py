"""Train a translator into a run directory (resumable, early-stopped, evaluated at the end).

The run directory gets the tokenizer(s) (learned on the training pairs only, placeholders as single
symbols) and `model.keras`, whose metadata carries the tokenizers too.
"""
from __future__ import annotations

import base64
import logging
import math
from pathlib import Path
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


def _build(cfg: TranslationConfig, tokenizers: Any, length_penalty: float | None = None):
    """The translator network; `length_penalty` (the one chosen on validation) goes into its metadata."""
    from sensorium.models.translation import build_translator

    info = tokenizer_info(tokenizers)
    if length_penalty is not None:
        info["length_penalty"] = float(length_penalty)
    return build_translator(cfg.model, source_vocab=tokenizers.source.vocab_size,
                            target_vocab=tokenizers.target.vocab_size, info=info)


def _validation_translator(cfg: TranslationConfig, model: Any, tokenizers: Any) -> Any:
    """A runtime Translator over the Keras `model` as it is now (greedy unless told otherwise)."""
    import numpy as np

    from sensorium.pipelines.translation.predict import keras_functions
    from sensorium.runtime.translation import Translator

    encode, step = keras_functions(model)
    return Translator(lambda s: np.asarray(encode(s), np.float32), lambda *a: np.asarray(step(*a), np.float32),
                      tokenizers, cfg.model.max_source_length, cfg.model.max_target_length, "validation", beam=1)


def _choose_length_penalty(cfg: TranslationConfig, model: Any, tokenizers: Any, val_split: Any) -> Any:
    """The length penalty chosen from `train.length_penalty_grid` on the first `length_penalty_pairs`
    validation pairs at the run's beam (a LengthPenaltyChoice), or None when the run asks for none."""
    from sensorium.pipelines.translation.length_penalty import choose_length_penalty

    tcfg = cfg.train
    if not tcfg.length_penalty_grid:
        return None
    if cfg.beam <= 1:
        log.info("no length penalty chosen: the run decodes greedily (beam 1), where it has no effect")
        return None
    translator = _validation_translator(cfg, model, tokenizers)
    n = min(tcfg.length_penalty_pairs, val_split.count)
    return choose_length_penalty(translator, list(val_split.sources[:n]), list(val_split.targets[:n]),
                                 grid=tcfg.length_penalty_grid, beam=cfg.beam)


def train(config: TranslationConfig, run: RunDir, *, resume: bool = False) -> dict[str, Any]:
    """Train into `run` (already created by the caller with status `training`); returns a summary."""

    from sensorium.models.translation import training_objects
    from sensorium.pipelines.common.callbacks import read_train_state
    from sensorium.pipelines.common.optimizers import planned_steps
    from sensorium.pipelines.common.training import (
        fit_run,
        resume_or_build,
        run_summary,
        save_inference_model,
        start_training,
        write_split_lists,
    )
    from sensorium.pipelines.common.warmstart import warm_start
    from sensorium.pipelines.translation.data import held_out_sources, load_extra, load_train_validation
    from sensorium.pipelines.translation.longrun import load_newest_good, run_state_from

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
    init = _init_model(cfg, run) if tcfg.init_from and not resume else None
    tokenizers = init[1] if init is not None else _tokenizers(cfg, run, src_txt, tgt_txt, resume)

    loss_cls, accuracy = training_objects()
    kw = dict(max_source=m.max_source_length, max_target=m.max_target_length)
    per_epoch = cfg.data.extra_pairs_per_epoch
    train_ds = train_split.dataset(tcfg.batch_size, tokenizers, training=True, seed=cfg.seed, extra=extra,
                                   extra_per_epoch=per_epoch, **kw)
    val_ds = val_split.dataset(tcfg.batch_size, tokenizers, **kw)
    steps = math.ceil(train_split.training_pairs_per_epoch(extra, per_epoch) / tcfg.batch_size)
    ckpt_dir = run.path / "checkpoints"
    resumed = load_newest_good(ckpt_dir, strategy) if resume else None
    if resumed is not None:
        state = run_state_from(resumed.state, monitor=tcfg.monitor, patience=tcfg.early_stopping_patience)
    else:
        state = read_train_state(ckpt_dir) if resume else None

    def build():
        model = _build(cfg, tokenizers)
        model.compile(optimizer=make_optimizer(tcfg, steps), loss=loss_cls(tcfg.label_smoothing), metrics=[accuracy])
        return model

    model = resumed.model if resumed is not None else resume_or_build(strategy, ckpt_dir, state, build)
    schedule_steps = planned_steps(model.optimizer)  # a restored optimizer keeps the plan it was compiled with
    if init is not None:
        warm_start(model, init[0])
    longrun = _long_run(cfg, run, model, tokenizers, val_split, steps,
                        resumed.state if resumed is not None else None, reference=init is not None)
    run_state = fit_run(run, model, train_ds, val_ds, tcfg, steps, state, callbacks=(longrun,))
    averaged = _average(model, ckpt_dir, tcfg.average_last)
    choice = _choose_length_penalty(cfg, model, tokenizers, val_split)  # on the weights that ship (averaged)
    alpha = choice.alpha if choice is not None else None  # recorded in the model, even when it is the default
    final = save_inference_model(run, model, lambda: _build(cfg, tokenizers, length_penalty=alpha))
    stop_reason = longrun.state.stop_reason or ("early_stopping" if run_state.stopped_early else "epochs")
    hours = longrun.hours() if hasattr(longrun, "_t0") else longrun.state.hours
    log.info("training stopped (%s) after %.2f h", stop_reason, hours)
    start = [e for e in longrun.state.evaluations if e.get("reference")]  # the warm start's own chrF
    trained = [e for e in longrun.state.evaluations if not e.get("reference")]
    summary = run_summary(
        run_state, tcfg, policy, strategy,
        train={"spec": train_split.spec, "pairs": train_split.count, "placeholder_mismatches_left_out": mismatched,
               **({"extra_spec": extra.spec, "extra_pairs": extra.count, "extra_pairs_per_epoch": per_epoch}
                  if extra is not None else {})},
        validation={"spec": val_split.spec, "pairs": val_split.count},
        vocab_size={"source": tokenizers.source.vocab_size, "target": tokenizers.target.vocab_size,
                    "shared": tokenizers.shared},
        parameters=int(final.count_params()), steps_per_epoch=steps,
        **({"schedule_steps": schedule_steps} if schedule_steps is not None else {}),
        stop_reason=stop_reason, hours=round(hours, 4),
        validation_chrf={"evaluations": len(trained), "best": longrun.state.best_chrf,
                         "last": trained[-1]["chrf"] if trained else None,
                         **({"start": start[0]["chrf"]} if start else {}),
                         "pairs": min(tcfg.eval_pairs, val_split.count)},
        **({"averaged_checkpoints": averaged} if averaged else {}),
        **({"length_penalty": choice.summary()} if choice is not None else {}),
        **({"init_from": tcfg.init_from} if tcfg.init_from else {}))
    _report(run, cfg, run_state.history, summary)
    return summary


def _init_model(cfg: TranslationConfig, run: RunDir) -> tuple[Any, Any]:
    """The warm-start translator of `train.init_from` (a bundled name, run directory or .keras) and its
    tokenizers, which the run takes over (saved into it); a one-line error for anything else."""
    from sensorium.models.translation import training_objects
    from sensorium.pipelines.common.warmstart import load_init_source
    from sensorium.runtime.errors import UsageError
    from sensorium.runtime.tokenizer import tokenizers_from

    name = str(cfg.train.init_from)
    training_objects()
    source = load_init_source(name, "translation", "translator")
    tokenizers = tokenizers_from(str(source.keras_path), info=source.info)
    if tokenizers.shared != cfg.model.shared_vocab:
        raise UsageError(f"--init-from {name}: its vocabulary is {'' if tokenizers.shared else 'not '}shared "
                         "between the languages; set --shared-vocab to match or train from scratch")
    if tokenizers.shared:
        tokenizers.source.save(run.path / SHARED_FILE)
    else:
        tokenizers.source.save(run.path / SOURCE_FILE)
        tokenizers.target.save(run.path / TARGET_FILE)
    return source, tokenizers


def _long_run(cfg: TranslationConfig, run: RunDir, model: Any, tokenizers: Any, val_split: Any, steps: int,
              resumed: dict[str, Any] | None, reference: bool = False) -> Any:
    """The LongRun callback: greedy validation chrF on the first `eval_pairs` validation pairs (with
    `reference`, of the warm-start model too, before training)."""
    from sensorium.pipelines.translation.longrun import CHRF_FILE, LongRun, LongRunSettings

    tcfg = cfg.train
    translator = _validation_translator(cfg, model, tokenizers)
    n = min(tcfg.eval_pairs, val_split.count)

    def write(evaluations: list[dict[str, Any]]) -> None:
        rows = "".join(f"{e['step']},{e['epoch']},{e['chrf']},{e['hours']}\n" for e in evaluations)
        run.write_text(CHRF_FILE, "step,epoch,chrf,hours\n" + rows)

    settings = LongRunSettings(tcfg.eval_every_steps, tcfg.chrf_min_gain, tcfg.chrf_patience, tcfg.max_hours,
                               max(tcfg.keep_checkpoints, tcfg.average_last))
    return LongRun(run.path / "checkpoints", settings, translate=lambda texts: translator.translate(texts, beam=1),
                   sources=list(val_split.sources[:n]), references=list(val_split.targets[:n]),
                   steps_per_epoch=steps, epochs=tcfg.epochs, write_chrf=write, resumed=resumed, reference=reference)


def _average(model: Any, ckpt_dir: Path, k: int) -> list[str]:
    """With k >= 2, put the mean of the last k step checkpoints' weights into `model`; their names."""
    from sensorium.pipelines.translation.longrun import average_checkpoints, list_checkpoints

    if k < 2:
        return []
    weights, used = average_checkpoints(list_checkpoints(ckpt_dir)[-k:])
    if len(used) < 2:
        log.warning("no checkpoint averaging: fewer than two usable checkpoints")
        return []
    model.set_weights([w.astype(v.dtype) for w, v in zip(weights, model.weights)])
    log.info("the model is the mean of %d checkpoints: %s", len(used), ", ".join(used))
    return used


def _report(run: RunDir, cfg: TranslationConfig, history: dict, summary: dict) -> None:
    from sensorium.pipelines.common.training import finish_run
    from sensorium.pipelines.translation.card import write_card
    from sensorium.pipelines.translation.evaluate import evaluate

    finish_run(run, history=history, summary=summary, data_spec=cfg.data.spec, evaluate_on=cfg.evaluate_on,
               evaluate=lambda spec: evaluate(run.path, spec, beam=cfg.beam, require_complete=False),
               write_card=lambda metrics: write_card(run, cfg, summary, metrics))
