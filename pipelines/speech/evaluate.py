"""Evaluate a speech recogniser on a data spec: WER and CER (jiwer) and per-utterance results."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from sensorium.pipelines.common.dataspec import parse_spec
from sensorium.pipelines.common.rundir import RunDir
from sensorium.runtime.errors import MissingExtraError
from sensorium.runtime.speech import SpeechRecognizer

log = logging.getLogger(__name__)

TASK = SpeechRecognizer.task


def error_rates(references: list[str], hypotheses: list[str]) -> dict[str, Any]:
    """Corpus WER and CER (jiwer) with the word-level error counts."""
    try:
        import jiwer
    except ImportError:
        raise MissingExtraError('WER needs jiwer: pip install "sensorium[full]"') from None
    words = jiwer.process_words(references, hypotheses)
    chars = jiwer.process_characters(references, hypotheses)
    return {"wer": float(words.wer), "cer": float(chars.cer), "substitutions": int(words.substitutions),
            "deletions": int(words.deletions), "insertions": int(words.insertions),
            "reference_words": int(sum(len(r.split()) for r in references)),
            "sentence_accuracy": float(sum(r == h for r, h in zip(references, hypotheses)) / max(1, len(references)))}


def evaluate(model_path: str | Path, data: str | None = None, *, out: str | Path | None = None,
             batch_size: int = 16, top_k: int = 5, beam: int = 1, vocabulary: Any = "model",
             language_model: Any = "model", lm_weight: float | None = None,
             require_complete: bool = True) -> dict[str, Any]:
    """Transcribe the split, write `metrics.json` and `eval_results.jsonl` (per utterance: id,
    reference, hypothesis, word errors) into `out`, else where `evaluation.destination` says (a finished
    run: `RUN/evaluations/<data>/`; a bare model file: nowhere). `top_k` is unused (the command line
    passes it to every task).

    `vocabulary` ("model": the model's own words when it has them; "none": open vocabulary; a file;
    a list of words) constrains decoding; with a vocabulary the open-vocabulary greedy error rates
    of the same model outputs are reported too (`metrics["open_vocabulary"]`). `language_model`
    ("model", "none", an ARPA or sentence file) and `lm_weight` score the words of vocabulary
    decoding; where one is used, the rates without it are reported too (`metrics["without_lm"]`)."""
    import jiwer

    from sensorium.pipelines.common.evaluation import evaluation_setup
    from sensorium.pipelines.speech.config import SpeechConfig, SpeechDataConfig
    from sensorium.pipelines.speech.data import load_speech_split
    from sensorium.pipelines.speech.predict import load
    from sensorium.runtime.atomic import atomic_write_text

    setup = evaluation_setup(model_path, TASK, SpeechConfig, SpeechDataConfig, data, out,
                             require_complete=require_complete)
    recognizer = load(setup.artifact).configure(vocabulary=vocabulary, language_model=language_model,
                                                **({"lm_weight": lm_weight} if lm_weight is not None else {}))
    seed, data_cfg, dest = setup.seed, setup.data_config, setup.dest
    spec = parse_spec(setup.data)
    split = load_speech_split(spec.text, data_cfg, seed=seed, default_split="test", model_spec=None)
    scores = recognizer.log_probs(split.waves, batch_size)
    hypotheses = recognizer.decode(scores, beam=beam)
    metrics = error_rates(split.texts, hypotheses)
    metrics["beam"] = beam
    metrics["decoding"] = recognizer.decoding
    if recognizer.lexicon is not None:
        open_rates = error_rates(split.texts, recognizer.decode(scores, beam=1, vocabulary="none"))
        metrics["open_vocabulary"] = {"decoding": "open vocabulary, greedy", "wer": open_rates["wer"],
                                      "cer": open_rates["cer"]}
        if recognizer.lm is not None and float(recognizer.lm_weight) > 0:
            plain = error_rates(split.texts, recognizer.decode(scores, beam=beam, lm_weight=0.0))
            metrics["without_lm"] = {"decoding": f"vocabulary of {len(recognizer.lexicon)} words, no language model",
                                     "wer": plain["wer"], "cer": plain["cer"]}
    metrics["hours"] = round(split.seconds / 3600, 4)
    if split.failures:
        metrics["skipped"] = len(split.failures)
    result = {"task": TASK, "data": spec.text, "split": split.split, "count": split.count, "metrics": metrics}
    if dest is not None:
        rows = []
        for uid, ref, hyp in zip(split.ids, split.texts, hypotheses):
            errors = jiwer.process_words(ref, hyp)
            rows.append(json.dumps({"id": uid, "reference": ref, "hypothesis": hyp,
                                    "word_errors": errors.substitutions + errors.deletions + errors.insertions,
                                    "words": len(ref.split())}))
        rows += [json.dumps({"id": uid, "error": reason}) for uid, reason in split.failures]
        atomic_write_text(dest / "eval_results.jsonl", "\n".join(rows) + "\n")
        RunDir(dest).write_json("metrics.json", result)
    return result
