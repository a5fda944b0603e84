#!/usr/bin/env python
"""Transfer that generalises (issue 21): fine-tuned EfficientNet-Lite0 against training from scratch, on an icon
style the model never saw.

Data: `sensorium data icons` (CACHE/datasets/icons-1, built first if missing): the same visual categories (emote,
calendar, device, folder, mail, media file, text file, office document) drawn by two artists' icon themes.
Style A (--train-theme, default oxygen: glossy KDE 4 drawings) is split once, by the `group` column of its
images.csv (every size of an icon name and near-identical drawings stay on one side), stratified by class,
80/10/10 into OUT/split/{train,validation,test}.csv. Every method trains on A-train, uses A-validation only for
early stopping and model selection, and is scored on A-test (a held-out part of the training style) and on all
of style B (--test-theme, default numix: flat drawings). Nothing is tuned on B.

Methods, each over --seeds seeds (0 .. N-1), all through the CLIs (`nice`d subprocesses) but the last:
1. scratch-default: `sensorium train image --backbone none --image-size 64 --channels 3`, every other option at
   its default (ResNet 32,64,128, 30 epochs, batch 64, lr 2e-3, cosine schedule, early stopping on val_loss);
2. scratch-tuned: `sensorium tune image` with the same base flags, bayesian, 10 trials (seed 0, validation on
   A-validation only), then `sensorium train image --config TUNE/best_config.json --seed S`;
3. finetune: `--backbone hub:efficientnet_lite0 --epochs 10 --finetune-epochs 10` at the backbone's 224 px (head
   first at lr 2e-3, then every layer at the default 1e-4, batch norms frozen; the README's example settings);
4. logreg: frozen EfficientNet-Lite0 features (`load_pretrained("efficientnet_lite0").network`, 224x224 RGB in
   [0, 1] -> 1,280) and scikit-learn's logistic regression, C picked on A-validation; deterministic, so its
   seeds agree.

The bar: finetune's mean accuracy on B beats the better of scratch-default and scratch-tuned by >= 15 points.
Also measured: fine-tuning throughput (images/s of a training step with every layer trainable, batch 64, 224 px,
on this machine) and inference throughput of the same model.

Resumable: finished runs (status complete, scores recorded) are skipped, an interrupted run continues with
--resume, the tuning search continues where it stopped. Prints a Markdown table and writes OUT/results.json and
OUT/results.md.

    python tests/benchmarks/icon_transfer.py [--seeds 5] [--out /tmp/icon-transfer] [--icons DIR]
        [--train-theme oxygen] [--test-theme numix] [--methods scratch-default,scratch-tuned,finetune,logreg]
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import csv  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402
from pathlib import Path  # noqa: E402

METHODS = ("scratch-default", "scratch-tuned", "finetune", "logreg")
SCRATCH = ["--backbone", "none", "--image-size", "64", "--channels", "3"]
FINETUNE = ["--backbone", "hub:efficientnet_lite0", "--epochs", "10", "--finetune-epochs", "10"]
TUNE = ["--algorithm", "bayesian", "--max-trials", "10", "--seed", "0"]
FEATURE_SIZE = 224  # EfficientNet-Lite0's input
LOGREG_C = (0.01, 0.1, 1.0, 10.0, 100.0)
BAR_POINTS = 15.0
NICE = ["nice", "-n", "10"]


def sensorium(*args: str, capture: bool = False) -> subprocess.CompletedProcess:
    """`sensorium ARGS` in a niced subprocess of this Python (progress on our stderr unless captured)."""
    cmd = [*NICE, sys.executable, "-m", "sensorium", *args]
    print("$ " + " ".join(cmd[3:]).replace(sys.executable + " -m sensorium", "sensorium"), file=sys.stderr,
          flush=True)
    return subprocess.run(cmd, text=True, stdout=subprocess.PIPE if capture else None, check=False)


# === Data ===
def split_style_a(theme_dir: Path, out: Path, seed: int = 0) -> dict[str, Path]:
    """OUT/split/{train,validation,test}.csv: style A split by group, stratified by class, 80/10/10 (seeded).
    An existing split is kept (resumable runs must see the same one)."""
    folder = out / "split"
    files = {part: folder / f"{part}.csv" for part in ("train", "validation", "test")}
    if all(f.is_file() for f in files.values()):
        return files
    with open(theme_dir / "images.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    by_label: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        by_label[row["label"]][row["group"]].append(row)
    parts: dict[str, list[dict]] = {"train": [], "validation": [], "test": []}
    rng = random.Random(seed)
    for label in sorted(by_label):
        groups = sorted(by_label[label])
        rng.shuffle(groups)
        total = sum(len(by_label[label][g]) for g in groups)
        taken = {"test": 0, "validation": 0}
        for g in groups:  # fill test, then validation, to 10% each; the rest trains
            part = next((p for p in ("test", "validation") if taken[p] < round(0.1 * total)), "train")
            parts[part] += by_label[label][g]
            if part != "train":
                taken[part] += len(by_label[label][g])
    folder.mkdir(parents=True, exist_ok=True)
    for part, chosen in parts.items():
        tmp = files[part].with_suffix(".tmp")
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["path", "label", "group"])
            writer.writerows([str((theme_dir / r["path"]).resolve()), r["label"], r["group"]] for r in chosen)
        tmp.replace(files[part])
    groups = {p: {r["group"] for r in chosen} for p, chosen in parts.items()}
    assert not (groups["train"] & groups["test"]) and not (groups["train"] & groups["validation"])
    return files


def read_split(path: Path) -> tuple[list[str], list[str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return [r["path"] for r in rows], [r["label"] for r in rows]


def folder_items(root: Path) -> tuple[list[str], list[str]]:
    paths, labels = [], []
    for cls in sorted(p for p in root.iterdir() if p.is_dir()):
        for f in sorted(cls.glob("*.png")):
            paths.append(str(f))
            labels.append(cls.name)
    return paths, labels


# === Runs ===
def complete(run: Path) -> bool:
    try:
        return json.loads((run / "sensorium.json").read_text())["status"] == "complete"
    except (OSError, ValueError, KeyError):
        return False


def train(run: Path, args: list[str], timing: dict) -> None:
    """Train into `run` unless it is complete (an interrupted run resumes); wall time adds up in `timing`."""
    if complete(run):
        return
    resume = ["--resume"] if (run / "sensorium.json").is_file() else []
    t0 = time.perf_counter()
    done = sensorium("train", "image", "--out", str(run), *resume, *args, "-q")
    timing[str(run)] = timing.get(str(run), 0.0) + time.perf_counter() - t0
    if done.returncode != 0 or not complete(run):
        raise SystemExit(f"training {run} failed (exit {done.returncode}); run the benchmark again to resume it")


def evaluate(run: Path, spec: str) -> float:
    done = sensorium("evaluate", "--model", str(run), "--data", spec, "--json", "-q", capture=True)
    if done.returncode != 0:
        raise SystemExit(f"evaluating {run} on {spec} failed (exit {done.returncode})")
    return float(json.loads(done.stdout)["metrics"]["accuracy"])


def epochs_trained(run: Path) -> int:
    try:
        with open(run / "history.csv", newline="") as fh:
            return sum(1 for _ in csv.DictReader(fh))
    except OSError:
        return 0


def run_cli_method(name: str, args: list[str], seeds: int, out: Path, splits: dict[str, Path], b_dir: Path,
                   results: dict, timing: dict, save) -> None:
    for seed in range(seeds):
        key = f"seed{seed}"
        if key in results.setdefault(name, {}):
            continue
        run = out / "runs" / f"{name}-{key}"
        train(run, ["--data", f"{splits['train']}@all", "--validation-data", f"{splits['validation']}@all",
                    "--seed", str(seed), *args], timing)
        record = {"a_test": evaluate(run, f"{splits['test']}@all"), "b": evaluate(run, f"{b_dir}@all"),
                  "train_seconds": round(timing.get(str(run), float("nan")), 1), "epochs": epochs_trained(run),
                  "run": str(run)}
        results[name][key] = record
        save()
        print(f"{name:16s} seed {seed}: A-test {record['a_test']:.4f}  B {record['b']:.4f}  "
              f"({record['train_seconds']:.0f} s, {record['epochs']} epochs)", flush=True)


def tune(out: Path, splits: dict[str, Path], timing: dict) -> Path:
    folder = out / "tune"
    best = folder / "best_config.json"
    status = {}
    try:
        status = json.loads((folder / "tune.json").read_text())
    except (OSError, ValueError):
        pass
    if not (best.is_file() and status.get("status") == "complete"):
        t0 = time.perf_counter()
        done = sensorium("tune", "image", "--out", str(folder), "--data", f"{splits['train']}@all",
                         "--validation-data", f"{splits['validation']}@all", *SCRATCH, *TUNE, "-q")
        timing[str(folder)] = timing.get(str(folder), 0.0) + time.perf_counter() - t0
        if done.returncode != 0 or not best.is_file():
            raise SystemExit(f"the tuning search in {folder} failed (exit {done.returncode}); run again to resume")
    return best


# === Frozen features + logistic regression ===
def features(network, paths: list[str], batch: int = 32):
    import numpy as np

    from sensorium.runtime.image_io import load_image

    out = []
    for i in range(0, len(paths), batch):
        images = np.stack([load_image(p, size=(FEATURE_SIZE, FEATURE_SIZE)) for p in paths[i:i + batch]])
        out.append(np.asarray(network(images.astype("float32") / 255.0, training=False)))
    return np.concatenate(out)


def run_logreg(seeds: int, splits: dict[str, Path], b_dir: Path, results: dict, save) -> None:
    if all(f"seed{s}" in results.get("logreg", {}) for s in range(seeds)):
        return
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from sensorium.pipelines.datasets.backbones import load_pretrained

    t0 = time.perf_counter()
    network = load_pretrained("efficientnet_lite0").network
    data = {"train": read_split(splits["train"]), "validation": read_split(splits["validation"]),
            "test": read_split(splits["test"]), "b": folder_items(b_dir)}
    feats = {k: features(network, paths) for k, (paths, _) in data.items()}
    labels = {k: np.asarray(y) for k, (_, y) in data.items()}
    extract_s = time.perf_counter() - t0
    for seed in range(seeds):
        key = f"seed{seed}"
        if key in results.setdefault("logreg", {}):
            continue
        t1 = time.perf_counter()

        def fit(c: float, seed: int = seed):
            model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000, random_state=seed))
            return model.fit(feats["train"], labels["train"])

        scores = {c: fit(c).score(feats["validation"], labels["validation"]) for c in LOGREG_C}
        best_c = max(LOGREG_C, key=lambda c: (scores[c], -c))  # ties: the stronger regularisation
        model = fit(best_c)
        record = {"a_test": float(model.score(feats["test"], labels["test"])),
                  "b": float(model.score(feats["b"], labels["b"])), "C": best_c,
                  "validation_by_C": {str(c): round(float(s), 4) for c, s in scores.items()},
                  "train_seconds": round(extract_s * len(data["train"][0]) / sum(len(p) for p, _ in data.values())
                                         + time.perf_counter() - t1, 1), "epochs": 0}
        results["logreg"][key] = record
        save()
        print(f"{'logreg':16s} seed {seed}: A-test {record['a_test']:.4f}  B {record['b']:.4f}  (C={best_c})",
              flush=True)


# === Throughput ===
def throughput(run: Path, splits: dict[str, Path], results: dict, save, steps: int = 4, batch: int = 64) -> None:
    """Images/s of a fine-tuning step (every layer trainable, batch norms frozen, as in phase 2) and of inference,
    timed on the finished fine-tuned model with A-train images."""
    if "throughput" in results:
        return
    import keras
    import numpy as np

    from sensorium.models.backbones.finetune import find_backbone, set_backbone_trainable
    from sensorium.pipelines.common.artifacts import load_keras
    from sensorium.runtime.image_io import load_image

    model = load_keras(run / "model.keras")
    size = tuple(json.loads((run / "config.json").read_text())["model"]["image_size"] or (FEATURE_SIZE,) * 2)
    paths, labels = read_split(splits["train"])
    names = sorted(set(labels))
    x = np.stack([load_image(p, size=size) for p in paths[:batch]])
    y = np.asarray([names.index(v) for v in labels[:batch]])
    set_backbone_trainable(find_backbone(model), True)
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="sparse_categorical_crossentropy")
    model.train_on_batch(x, y)  # build and trace
    t0 = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    train_ips = steps * batch / (time.perf_counter() - t0)
    model.predict_on_batch(x)
    t0 = time.perf_counter()
    for _ in range(steps):
        model.predict_on_batch(x)
    infer_ips = steps * batch / (time.perf_counter() - t0)
    results["throughput"] = {"finetune_images_per_s": round(train_ips, 1), "inference_images_per_s":
                             round(infer_ips, 1), "batch": batch, "image_size": list(size),
                             "trainable_weights": len(model.trainable_weights), "cpus": os.cpu_count()}
    save()


# === Report ===
def summary(results: dict, seeds: int) -> tuple[str, dict]:
    rows, means = [], {}
    for name in METHODS:
        recs = [results.get(name, {}).get(f"seed{s}") for s in range(seeds)]
        recs = [r for r in recs if r]
        if not recs:
            continue
        b = [100 * r["b"] for r in recs]
        a = [100 * r["a_test"] for r in recs]
        sd = lambda v: statistics.stdev(v) if len(v) > 1 else 0.0  # noqa: E731
        means[name] = statistics.mean(b)
        rows.append(f"| {name} | {statistics.mean(a):.1f} ± {sd(a):.1f} | {statistics.mean(b):.1f} ± {sd(b):.1f} | "
                    f"{', '.join(f'{v:.1f}' for v in b)} | {statistics.mean(r['train_seconds'] for r in recs):.0f} s "
                    f"| {len(recs)} |")
    table = ["| method | style-A held-out acc % (mean ± sd) | style-B acc % (mean ± sd) | style-B per seed | "
             "train time (mean) | seeds |", "|---|---|---|---|---|---|", *rows]
    verdict = {}
    scratch = [means[m] for m in ("scratch-default", "scratch-tuned") if m in means]
    if "finetune" in means and scratch:
        gap = means["finetune"] - max(scratch)
        verdict = {"finetune_b": round(means["finetune"], 2), "best_scratch_b": round(max(scratch), 2),
                   "gap_points": round(gap, 2), "bar_points": BAR_POINTS, "pass": gap >= BAR_POINTS}
        table += ["", f"fine-tuned EfficientNet-Lite0 - best from-scratch on style B: {gap:+.1f} points "
                      f"(bar: >= +{BAR_POINTS:.0f}) -> {'PASS' if gap >= BAR_POINTS else 'FAIL'}"]
    if "throughput" in results:
        t = results["throughput"]
        table += [f"fine-tuning throughput: {t['finetune_images_per_s']} images/s (every layer trainable, batch "
                  f"{t['batch']}, {t['image_size'][0]} px, {t['cpus']} CPUs); inference {t['inference_images_per_s']}"
                  " images/s"]
    return "\n".join(table), verdict


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("/tmp/icon-transfer"))
    parser.add_argument("--icons", type=Path, help="the icon benchmark (default: the cache's; built if missing)")
    parser.add_argument("--train-theme", default="oxygen")
    parser.add_argument("--test-theme", default="numix")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset of " + ", ".join(METHODS))
    args = parser.parse_args()
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        parser.error(f"unknown method {unknown[0]}; known: {', '.join(METHODS)}")

    from sensorium.pipelines.datasets.icons import default_icons_dir

    icons = args.icons or default_icons_dir()
    if not (icons / "icons.json").is_file():
        if sensorium("data", "icons", "--out", str(icons)).returncode != 0:
            return 1
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    results_file = out / "results.json"
    state = json.loads(results_file.read_text()) if results_file.is_file() else {}
    results, timing = state.setdefault("results", {}), state.setdefault("timing", {})
    state.update({"icons": str(icons), "train_theme": args.train_theme, "test_theme": args.test_theme,
                  "commands": {"scratch-default": ["sensorium", "train", "image", *SCRATCH],
                               "scratch-tuned": ["sensorium", "tune", "image", *SCRATCH, *TUNE],
                               "finetune": ["sensorium", "train", "image", *FINETUNE]}})

    def save() -> None:
        tmp = results_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2) + "\n")
        tmp.replace(results_file)

    splits = split_style_a(icons / args.train_theme, out)
    state["split"] = {p: len(read_split(f)[0]) for p, f in splits.items()}
    b_dir = icons / args.test_theme
    state["split"]["b"] = len(folder_items(b_dir)[0])
    save()
    t0 = time.perf_counter()
    if "scratch-default" in methods:
        run_cli_method("scratch-default", SCRATCH, args.seeds, out, splits, b_dir, results, timing, save)
    if "finetune" in methods:
        run_cli_method("finetune", FINETUNE, args.seeds, out, splits, b_dir, results, timing, save)
        throughput(out / "runs" / "finetune-seed0", splits, results, save)
    if "logreg" in methods:
        run_logreg(args.seeds, splits, b_dir, results, save)
    if "scratch-tuned" in methods:
        best = tune(out, splits, timing)
        state["tuned_config"] = json.loads(best.read_text())
        run_cli_method("scratch-tuned", ["--config", str(best)], args.seeds, out, splits, b_dir, results, timing,
                       save)
    table, verdict = summary(results, args.seeds)
    state["verdict"] = verdict
    state["seconds_this_session"] = round(time.perf_counter() - t0)
    save()
    header = (f"Style A (train) = {args.train_theme}, style B (test) = {args.test_theme}; A split "
              f"{state['split']['train']}/{state['split']['validation']}/{state['split']['test']} "
              f"(train/validation/held-out), B {state['split']['b']} images.")
    (out / "results.md").write_text(header + "\n\n" + table + "\n")
    print("\n" + header + "\n\n" + table)
    return 0 if not verdict or verdict["pass"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
