"""Evaluate a translator on a data spec: BLEU and chrF (sacrebleu), placeholder preservation, and the
hypotheses (`eval_translations.tsv`: id, source, reference, hypothesis)."""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from sensorium.runtime.errors import MissingExtraError
from sensorium.runtime.translation import Translator

log = logging.getLogger(__name__)

TASK = Translator.task


def corpus_scores(hypotheses: list[str], references: list[str]) -> dict[str, float]:
    """Corpus BLEU and chrF (sacrebleu defaults: 13a tokenisation, chrF with character 6-grams)."""
    try:
        import sacrebleu
    except ImportError:
        raise MissingExtraError('BLEU and chrF need sacrebleu: pip install "sensorium[full]"') from None
    return {"bleu": float(sacrebleu.corpus_bleu(hypotheses, [references]).score),
            "chrf": float(sacrebleu.corpus_chrf(hypotheses, [references]).score)}


def placeholder_rate(sources: list[str], outputs: list[str]) -> tuple[float, int]:
    """(share of the sources with placeholders whose output keeps every one, how many sources had any)."""
    from sensorium.runtime.placeholders import PLACEHOLDER_PATTERN, placeholders_preserved

    with_ph = [(s, o) for s, o in zip(sources, outputs) if PLACEHOLDER_PATTERN.search(s)]
    if not with_ph:
        return 1.0, 0
    return sum(placeholders_preserved(s, o) for s, o in with_ph) / len(with_ph), len(with_ph)


def evaluate(model_path: str | Path, data: str | None = None, *, out: str | Path | None = None,
             batch_size: int = 32, top_k: int = 5, beam: int = 4, require_complete: bool = True) -> dict[str, Any]:
    """Translate the split, write `metrics.json` and `eval_translations.tsv` into `out`, else where
    `evaluation.destination` says (a finished run: `RUN/evaluations/<data>/`; a bare model file:
    nowhere). `top_k` is unused (the command line passes it to every task)."""
    from sensorium.pipelines.common.evaluation import evaluation_setup
    from sensorium.pipelines.common.rundir import RunDir
    from sensorium.pipelines.translation.config import ParallelDataConfig, TranslationConfig
    from sensorium.pipelines.translation.data import load_parallel_split
    from sensorium.pipelines.translation.predict import load

    setup = evaluation_setup(model_path, TASK, TranslationConfig, ParallelDataConfig, data, out,
                             require_complete=require_complete)
    translator = load(setup.artifact)
    translator.max_batch = batch_size
    split = load_parallel_split(setup.data, setup.data_config, seed=setup.seed, default_split="test")
    started = time.perf_counter()
    hypotheses = translator.translate(split.sources, beam=beam)
    seconds = time.perf_counter() - started
    metrics: dict[str, Any] = corpus_scores(hypotheses, split.targets)
    rate, with_ph = placeholder_rate(split.sources, hypotheses)
    metrics.update(placeholders_preserved=rate, items_with_placeholders=with_ph, beam=beam,
                   seconds=round(seconds, 2), sentences_per_second=round(len(hypotheses) / max(seconds, 1e-9), 2))
    if split.failures:
        metrics["skipped"] = len(split.failures)
    result = {"task": TASK, "data": setup.data, "split": split.split, "count": split.count, "metrics": metrics}
    if setup.dest is not None:
        target = RunDir(setup.dest)
        esc = lambda t: t.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")  # noqa: E731
        target.write_text("eval_translations.tsv", "id\tsource\treference\thypothesis\n" + "".join(
            f"{i}\t{esc(s)}\t{esc(r)}\t{esc(h)}\n" for i, s, r, h in zip(split.ids, split.sources, split.targets,
                                                                          hypotheses)))
        target.write_json("metrics.json", result)
    return result
