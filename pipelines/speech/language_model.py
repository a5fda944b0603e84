"""Record a word language model in a trained speech run, weights unchanged.

A speech run made since 0.9 carries a Kneser-Ney trigram model of its training transcripts
(`sensorium.runtime.ngram`), which vocabulary decoding uses by default. This writes one into a run
that has none (trained before), or replaces it with one made from sentences of the user's domain,
so that the model and every later export carry it:

    python -m sensorium.pipelines.speech.language_model --model RUN [--text FILE] [--order 3]
    sensorium export --model RUN --format tflite      # the exports carry the new model

Without `--text`, the transcripts are the run's own training split (its config.json's data, split
as training split it). With `--text FILE` (UTF-8, one sentence per line, `#` comment lines; or an
ARPA file, kept as it is), the model's vocabulary is extended by the file's words.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def record_language_model(model: str | Path, *, text: str | Path | None = None, order: int = 3) -> dict[str, Any]:
    """Write a language model into the speech run `model` (its model.keras, atomically); returns
    {"order", "ngrams", "words", "source"}."""
    from sensorium.pipelines.common.run_info import rewrite_run_info
    from sensorium.pipelines.speech.rewrite import training_split
    from sensorium.runtime.ngram import WordNgramLM
    from sensorium.runtime.vocabulary import Vocabulary

    found: dict[str, Any] = {}

    def update(info: dict[str, Any], artifact: Any) -> dict[str, Any]:
        if text is not None:
            lm = WordNgramLM.from_file(text, order=order)
            source = str(text)
        else:
            train_split, cfg = training_split(artifact, model, "pass --text FILE")
            lm = WordNgramLM.train(train_split.texts, order=order, source=f"{cfg.data.spec}@train")
            source = f"{cfg.data.spec}@train ({train_split.count} transcripts)"
        words = sorted(set(info.get("vocabulary") or []) | set(lm.words))
        Vocabulary.from_words(words, str(info.get("alphabet", "")), source=source)  # every word spellable: one line
        found.update(order=lm.order, ngrams=len(lm), words=len(lm.words), source=source)
        return {**info, "language_model": lm.to_dict(), "vocabulary": words}

    path = rewrite_run_info(model, "speech", "a language model", update)
    log.info("recorded a %d-gram language model (%d n-grams, %d words) from %s in %s; export the run again to "
             "carry it into its .tflite files", found["order"], found["ngrams"], found["words"], found["source"], path)
    return found


def main(argv: list[str] | None = None) -> int:
    from sensorium.pipelines.common.run_info import recorder_main

    def options(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--text", help="sentences, one per line (or an ARPA file); default: the run's training "
                                           "transcripts")
        parser.add_argument("--order", type=int, default=3, help="n-gram order, 1 to 5 (default 3)")

    def record(args: argparse.Namespace) -> str:
        result = record_language_model(args.model, text=args.text, order=args.order)
        return (f"{args.model}: {result['order']}-gram language model, {result['ngrams']} n-grams, "
                f"{result['words']} words, from {result['source']}")

    return recorder_main(argv, module="sensorium.pipelines.speech.language_model", doc=__doc__, task="speech",
                         options=options, record=record)



if __name__ == "__main__":
    sys.exit(main())
