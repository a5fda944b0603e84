"""Sentiment outside the training domain: our model against VADER on positive-vs-negative texts.

    sensorium data sentiment-domains        # once: builtin:imdb-reviews, builtin:drug-reviews
    python tests/benchmarks/sentiment_domains.py [--model RUN_DIR] [--labels three|binary]
                                                 [--long-text sentences|truncate] [--fusion lexicon|none]
                                                 [--boot 1000] [--json FILE]

For each set (builtin:imdb-reviews, builtin:drug-reviews and, for reference, the training domain's
builtin:tweets@test) it keeps the items labelled positive or negative and reports the macro-F1 of the
binary decision, with a paired bootstrap 95% interval of the difference ours - VADER (the same
resampled texts score both; `--boot` resamples, seeded):

- ours: the model's choice between its positive and negative probabilities (the neutral probability
  is left out, so a 3-way model is not penalised for a class these items cannot have; a tie goes to
  positive); with `--labels binary`, the calibrated binary head's (p(positive) >= 0.5), with the lexicon
  expert added where the model records one (`--fusion none`: the head alone). Long texts are
  read as `--long-text` says (the runtime's default: sentence by sentence past the model's training
  length). Run through the Python API (`sensorium.pipeline("sentiment", model=...)`) on the Keras
  model of the run directory and on each exported `.tflite` (the edge runtime).
- VADER (vaderSentiment, PyPI): positive when its compound score is >= 0, else negative.

A second table compares how well each ranks the set, whatever its threshold: the ROC AUC of ours'
p(positive) (Keras) and of VADER's compound, with the same paired bootstrap of the difference, and each
one's best macro-F1 over thresholds picked on the set's own labels (a diagnostic, not a rule: a deployed
model has no labels of the texts it reads).

Prints a Markdown table on stdout and the JSON figures on stderr (or into `--json`).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from sentiment_benchmark import macro_f1, paired_bootstrap, paired_difference, roc_auc  # noqa: E402

SETS = ("builtin:imdb-reviews@test", "builtin:drug-reviews@test", "builtin:tweets@test")
NEG, POS = 0, 1  # the binary labels


def binary_items(spec: str, seed: int) -> tuple[list[str], np.ndarray, dict[str, int]]:
    """(texts, labels 0 negative / 1 positive, counts per label of the whole set) of the set's
    positive and negative items."""
    from sensorium.pipelines.sentiment.config import TextDataConfig
    from sensorium.pipelines.sentiment.data import load_text_split

    split = load_text_split(spec, TextDataConfig(), seed=seed, default_split="test")
    names = split.labels
    counts = {name: int(c) for name, c in zip(names, np.bincount(split.items.labels, minlength=len(names)))}
    pos, neg = names.index("positive"), names.index("negative")
    keep = [i for i, y in enumerate(split.items.labels) if y in (pos, neg)]
    texts = [split.items.texts[i] for i in keep]
    y = np.asarray([POS if split.items.labels[i] == pos else NEG for i in keep], dtype=np.int64)
    return texts, y, counts


def ours_binary(predict, texts: list[str], batch: int = 256) -> tuple[np.ndarray, np.ndarray, float]:
    """(binary predictions, scores, seconds): positive when p(positive) >= p(negative); the score (N,) is
    p(positive) / (p(positive) + p(negative)), which ranks the texts (ROC AUC)."""
    t0 = time.perf_counter()
    records = [r for i in range(0, len(texts), batch) for r in predict(texts[i:i + batch])]
    seconds = time.perf_counter() - t0
    bad = [r for r in records if not r.get("ok")]
    if bad:
        raise SystemExit(f"the model failed on {len(bad)} texts, e.g. {bad[0].get('error')}")
    pos = np.asarray([r["scores"]["positive"] for r in records], np.float64)
    neg = np.asarray([r["scores"]["negative"] for r in records], np.float64)
    pred = np.where(pos >= neg, POS, NEG)
    return pred, pos / np.maximum(pos + neg, 1e-12), seconds


def best_threshold_f1(y: np.ndarray, score: np.ndarray) -> tuple[float, float]:
    """(the best macro-F1 of `score >= t` over thresholds t at the score's 1st..99th percentiles, that t):
    a threshold chosen on the set's own labels, so a diagnostic of ranking, not a rule."""
    best = (-1.0, 0.0)
    for t in np.unique(np.percentile(score, np.arange(1, 100))):
        best = max(best, (macro_f1(y, np.where(score >= t, POS, NEG), 2), float(t)))
    return best


def vader_compound(texts: list[str]) -> tuple[np.ndarray, float]:
    """(compound scores, seconds)."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    t0 = time.perf_counter()
    compound = np.asarray([analyzer.polarity_scores(t)["compound"] for t in texts])
    return compound, time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="run directory (default: the bundled sentiment model)")
    parser.add_argument("--data", nargs="+", default=list(SETS), metavar="SPEC", help="the sets (default: %(default)s)")
    parser.add_argument("--boot", type=int, default=1000, help="bootstrap resamples (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    parser.add_argument("--labels", choices=("three", "binary"), default="three",
                        help="three: p(positive) >= p(negative) of the model's labels; binary: the calibrated binary "
                             "head (default: %(default)s)")
    parser.add_argument("--long-text", choices=("sentences", "truncate"), default="sentences",
                        help="how long texts are read (default: %(default)s)")
    parser.add_argument("--fusion", choices=("lexicon", "none"), default="lexicon",
                        help="binary: add the lexicon expert where the model records one (default), or not")
    parser.add_argument("--no-tflite", action="store_true", help="skip the exported .tflite files")
    parser.add_argument("--json", metavar="FILE", help="write the figures here")
    args = parser.parse_args()

    import sensorium
    from sensorium.runtime.predictor import bundled_model

    run_dir = Path(args.model) if args.model else bundled_model("sentiment")[1]
    cfg = json.loads((run_dir / "config.json").read_text(encoding="utf-8")) if (run_dir / "config.json").is_file() \
        else {}
    options = {"label_set": "binary" if args.labels == "binary" else None, "long_text": args.long_text,
               "fusion": args.fusion}
    models = {"keras": sensorium.pipeline("sentiment", model=str(run_dir), runtime="keras", **options)}
    if not args.no_tflite:
        for tfl in sorted((run_dir / "exports").glob("*.tflite")):
            models[tfl.stem] = sensorium.pipeline("sentiment", model=str(tfl), runtime="edge", **options)
    t_all = time.perf_counter()
    results = []
    for spec in args.data:
        texts, y, counts = binary_items(spec, int(cfg.get("seed", 42)))
        compound, vader_s = vader_compound(texts)
        vader = np.where(compound >= 0, POS, NEG)  # the rule of the table
        # sensitivity only: a text without sentiment words (compound 0) to the set's larger class instead
        larger = POS if (y == POS).sum() > (y == NEG).sum() else NEG
        vader_ties = np.where(compound > 0, POS, np.where(compound < 0, NEG, larger))
        row = {"data": spec, "count": len(y), "positive": int((y == POS).sum()), "negative": int((y == NEG).sum()),
               "set_counts": counts, "mean_chars": float(np.mean([len(t) for t in texts])),
               "vader": {"macro_f1": macro_f1(y, vader, 2), "accuracy": float((vader == y).mean()),
                         "predicted_positive": float(vader.mean()), "compound_zero": int((compound == 0).sum()),
                         "macro_f1_zero_to_larger_class": macro_f1(y, vader_ties, 2), "seconds": vader_s,
                         "roc_auc": roc_auc(y, compound), "best_threshold": best_threshold_f1(y, compound)}}
        keras_pred = None
        for name, predict in models.items():
            pred, score, seconds = ours_binary(predict, texts)
            diff, low, high = paired_bootstrap(y, pred, vader, 2, args.boot, args.seed)
            row[name] = {"macro_f1": macro_f1(y, pred, 2), "accuracy": float((pred == y).mean()),
                         "predicted_positive": float(pred.mean()),
                         "difference_vs_vader": {"value": diff, "ci95": [low, high]}, "seconds": seconds}
            if name == "keras":  # threshold-free: how well each ranks the set, whatever its decision threshold
                d_auc, lo_auc, hi_auc = paired_difference(y, score, compound, roc_auc, args.boot, args.seed)
                row[name].update(roc_auc=roc_auc(y, score), best_threshold=best_threshold_f1(y, score),
                                 roc_auc_difference_vs_vader={"value": d_auc, "ci95": [lo_auc, hi_auc]})
            if keras_pred is None:
                keras_pred = pred
            else:
                row[name]["agreement_with_keras"] = float((pred == keras_pred).mean())
        results.append(row)
        print(f"{spec}: done", file=sys.stderr, flush=True)
    fused = args.labels == "binary" and models["keras"].fused() is not None
    rule = ("positive if the binary head's p(positive) >= 0.5" + (" (fused with the lexicon expert)" if fused else "")
            if args.labels == "binary" else "positive if p(positive) >= p(negative)")
    out = {"model": str(run_dir), "bootstrap_resamples": args.boot, "seed": args.seed, "labels": args.labels,
           "long_text": args.long_text, "fusion": "lexicon" if fused else "none",
           "rule": {"ours": rule, "vader": "positive if compound >= 0"},
           "sets": results, "wall_seconds": time.perf_counter() - t_all}
    text = json.dumps(out, indent=2)
    if args.json:
        Path(args.json).write_text(text + "\n", encoding="utf-8")
    else:
        print(text, file=sys.stderr)

    extra = [name for name in models if name != "keras"]
    head = ["set", "items (pos / neg)", "ours (Keras)", "VADER", "ours - VADER [95% CI]", *extra]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for row in results:
        k, d = row["keras"], row["keras"]["difference_vs_vader"]
        cells = [f"`{row['data']}`", f"{row['count']:,} ({row['positive']:,} / {row['negative']:,})",
                 f"{k['macro_f1']:.3f}", f"{row['vader']['macro_f1']:.3f}",
                 f"{100 * d['value']:+.1f} pts [{100 * d['ci95'][0]:+.1f}, {100 * d['ci95'][1]:+.1f}]"]
        for name in extra:
            e = row[name]
            cells.append(f"{e['macro_f1']:.3f} ({100 * e['difference_vs_vader']['value']:+.1f} pts "
                         f"[{100 * e['difference_vs_vader']['ci95'][0]:+.1f}, "
                         f"{100 * e['difference_vs_vader']['ci95'][1]:+.1f}]; agrees {100 * e['agreement_with_keras']:.1f}%)")
        print("| " + " | ".join(cells) + " |")
    print(f"\nmacro-F1 of the positive-vs-negative decision on the items labelled positive or negative; paired "
          f"bootstrap, {args.boot} resamples, seed {args.seed}. Ours: {rule} (long texts: {args.long_text}); "
          "VADER: compound >= 0.")

    print("\n| set | ROC AUC, ours (Keras) | VADER | ours - VADER [95% CI] | best-threshold macro-F1, ours (at p) | "
          "VADER (at compound) |")
    print("|" + "---|" * 6)
    for row in results:
        k, v, d = row["keras"], row["vader"], row["keras"]["roc_auc_difference_vs_vader"]
        print(f"| `{row['data']}` | {k['roc_auc']:.3f} | {v['roc_auc']:.3f} | {100 * d['value']:+.1f} pts "
              f"[{100 * d['ci95'][0]:+.1f}, {100 * d['ci95'][1]:+.1f}] | {k['best_threshold'][0]:.3f} "
              f"({k['best_threshold'][1]:.3f}) | {v['best_threshold'][0]:.3f} ({v['best_threshold'][1]:+.3f}) |")
    print("\nThreshold-free: ROC AUC of ours' p(positive) and of VADER's compound (paired bootstrap as above); the "
          "best-threshold macro-F1 picks each one's threshold on the set's own labels, a diagnostic of ranking only.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
