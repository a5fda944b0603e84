"""Translation quality and speed: the model against two baselines on the same test split, greedy vs
beam, and the edge runner's decoding speed against the Keras loop.

    python tests/benchmarks/translation_benchmark.py [--model RUN_DIR] [--data SPEC] [--limit N]

Baselines, measured in the same run on the same sentences:
- copy: the source sentence unchanged (UI strings share names, numbers and placeholders);
- dictionary: word by word through a dictionary learned from the training pairs (for each source
  word, the target word with the highest Dice association over the pairs; unknown words and
  placeholders are copied). When the model trained on extra pairs too (`data.extra_specs`), two
  dictionaries are measured: one from the main training split, one from everything the model saw;
  the margin is taken over the best of all baselines.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

WORD = re.compile(r"\w+(?:['’]\w+)*|[^\w\s]", re.UNICODE)


def dictionary_baseline(sources: list[str], targets: list[str]):
    """A word-for-word translator learned from the pairs (Dice association of word types)."""
    from sensorium.runtime.placeholders import PLACEHOLDER_PATTERN

    src_count, tgt_count, pair_count = Counter(), Counter(), Counter()
    for s, t in zip(sources, targets):
        sw = set(w.lower() for w in WORD.findall(PLACEHOLDER_PATTERN.sub(" ", s)))
        tw = set(WORD.findall(PLACEHOLDER_PATTERN.sub(" ", t)))
        src_count.update(sw)
        tgt_count.update(tw)
        pair_count.update((a, b) for a in sw for b in tw)
    best: dict[str, tuple[float, str]] = {}
    for (a, b), c in pair_count.items():
        score = 2 * c / (src_count[a] + tgt_count[b])
        if score > best.get(a, (0.0, ""))[0]:
            best[a] = (score, b)
    table = {a: b for a, (score, b) in best.items() if score >= 0.1}

    def translate(text: str) -> str:
        out, pos = [], 0
        for m in PLACEHOLDER_PATTERN.finditer(text):
            out.append(_words(text[pos : m.start()], table))
            out.append(m.group())
            pos = m.end()
        out.append(_words(text[pos:], table))
        return "".join(out)
    return translate


def _words(segment: str, table: dict[str, str]) -> str:
    return re.sub(WORD, lambda m: table.get(m.group().lower(), m.group()), segment)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="run directory (default: the bundled translation model)")
    parser.add_argument("--data", help="test data spec (default: the run's data @test)")
    parser.add_argument("--limit", type=int, default=0, help="at most this many test sentences (0: all)")
    parser.add_argument("--beam", type=int, default=4)
    parser.add_argument("--length-penalty", type=float, help="beam search's GNMT alpha (default: the decoder's)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures here")
    args = parser.parse_args()

    from sensorium.pipelines.common.artifacts import inspect_artifact, run_config
    from sensorium.pipelines.translation.config import TranslationConfig
    from sensorium.pipelines.translation.data import (
        held_out_sources,
        load_extra,
        load_parallel_split,
        load_train_validation,
    )
    from sensorium.pipelines.translation.evaluate import corpus_scores, placeholder_rate
    from sensorium.pipelines.translation.predict import load
    from sensorium.runtime.predictor import bundled_model
    from sensorium.runtime.translation import Translator

    model = Path(args.model) if args.model else bundled_model("translation")[1]
    artifact = inspect_artifact(model)
    cfg = run_config(artifact, TranslationConfig) or TranslationConfig()
    base = cfg.data.spec.rsplit("@", 1)[0]
    test = load_parallel_split(args.data or f"{base}@test", cfg.data, seed=cfg.seed, default_split="test")
    train, validation = load_train_validation(cfg.data, seed=cfg.seed)
    extra = load_extra(cfg.data, held_out_sources(cfg.data, validation, seed=cfg.seed), seed=cfg.seed)
    sources, refs = test.sources, test.targets
    if args.limit:
        sources, refs = sources[: args.limit], refs[: args.limit]
    result: dict = {"model": str(model), "data": test.spec, "count": len(sources)}

    def score(name: str, outputs: list[str], seconds: float | None = None, tokenizer=None) -> None:
        row = corpus_scores(outputs, refs)
        row["placeholders_preserved"], row["items_with_placeholders"] = placeholder_rate(sources, outputs)
        if seconds is not None:
            row["seconds"] = seconds
            row["sentences_per_second"] = len(outputs) / seconds
            if tokenizer is not None:
                tokens = sum(len(tokenizer.encode_pieces([o])[0]) + 1 for o in outputs)
                row["tokens_per_second"] = tokens / seconds
        result[name] = row
        print(f"{name:24s} chrF {row['chrf']:6.2f}  BLEU {row['bleu']:6.2f}  placeholders "
              f"{row['placeholders_preserved']:.1%}" + (f"  {row.get('tokens_per_second', 0):.0f} tokens/s"
                                                        if seconds else ""), file=sys.stderr)

    score("copy_baseline", list(sources))
    dictionary = dictionary_baseline(train.sources, train.targets)
    score("dictionary_baseline", [dictionary(s) for s in sources])
    baselines = ["copy_baseline", "dictionary_baseline"]
    if extra is not None:
        dictionary = dictionary_baseline(train.sources + extra.sources, train.targets + extra.targets)
        score("dictionary_all_training_pairs", [dictionary(s) for s in sources])
        baselines.append("dictionary_all_training_pairs")
    keras_tr = load(artifact)
    keras_tr.length_penalty = args.length_penalty
    tok = keras_tr.tokenizers.target
    for beam in (1, args.beam):
        t0 = time.perf_counter()
        out = keras_tr.translate(sources, beam=beam)
        score(f"keras_beam{beam}", out, time.perf_counter() - t0, tok)
    exports = artifact.run.path / "exports" if artifact.run is not None else None
    for tfl in sorted(exports.glob("*.tflite")) if exports and exports.is_dir() else []:
        edge = Translator.from_tflite(tfl)
        edge.length_penalty = args.length_penalty
        for beam in (1, args.beam):
            t0 = time.perf_counter()
            out = edge.translate(sources, beam=beam)
            score(f"{tfl.stem}_beam{beam}", out, time.perf_counter() - t0, tok)
    best_baseline = max(result[name]["chrf"] for name in baselines)
    result["chrf_margin_over_best_baseline"] = result[f"keras_beam{args.beam}"]["chrf"] - best_baseline
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
