"""Tuning quality bars: a budgeted search, then tuned vs default test accuracy, and reproducibility.

    python tests/benchmarks/tuning_benchmark.py --out DIR [--data builtin:digits] [--budget-minutes 10]
        [--epochs 10] [--algorithm hyperband] [--json FILE]

1. `sensorium tune image --data SPEC --out DIR/tune --budget-minutes M --epochs E --algorithm A`: the
   search sees the training and validation splits only and picks the best trial on validation accuracy.
2. `sensorium train image --config DIR/tune/best_config.json --out DIR/tuned`: the best configuration
   trained again and scored on the test split.
3. `sensorium train image --data SPEC --out DIR/default`: the task's default configuration, scored on
   the same test split. Bar: tuned >= default.
4. `sensorium train image --config DIR/tuned/config.json --out DIR/tuned-again`: the tuned run reproduced
   from its own config.json (same seed). Bar: test accuracy within 0.5 point.

Every step runs in this process through the CLI entry point; wall times are printed.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _sensorium(argv: list[str]) -> float:
    from sensorium.apps import main as sensorium_app

    start = time.monotonic()
    code = sensorium_app.main(argv)
    if code != 0:
        sys.exit(f"sensorium {' '.join(argv)} exited {code}")
    return time.monotonic() - start


def _test_accuracy(run: Path) -> float:
    return float(json.loads((run / "metrics.json").read_text())["metrics"]["accuracy"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--data", default="builtin:digits")
    parser.add_argument("--budget-minutes", type=float, default=10.0)
    parser.add_argument("--epochs", type=int, default=10, help="epochs of the search's longest trial")
    parser.add_argument("--algorithm", default="hyperband")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)

    times = {}
    times["tune"] = _sensorium(["tune", "image", "--data", args.data, "--out", str(out / "tune"), "--budget-minutes",
                                str(args.budget_minutes), "--epochs", str(args.epochs), "--algorithm", args.algorithm,
                                "-q"])
    state = json.loads((out / "tune" / "tune.json").read_text())
    times["tuned"] = _sensorium(["train", "image", "--config", str(out / "tune" / "best_config.json"), "--out",
                                 str(out / "tuned"), "--overwrite", "-q"])
    times["default"] = _sensorium(["train", "image", "--data", args.data, "--out", str(out / "default"), "--overwrite",
                                   "-q"])
    times["again"] = _sensorium(["train", "image", "--config", str(out / "tuned" / "config.json"), "--out",
                                 str(out / "tuned-again"), "--overwrite", "-q"])
    tuned, default, again = (_test_accuracy(out / name) for name in ("tuned", "default", "tuned-again"))
    best = state["best"]
    report = {
        "data": args.data, "algorithm": args.algorithm, "budget_minutes": args.budget_minutes, "epochs": args.epochs,
        "search": {"trials": state["trials"], "status": state["status"], "minutes": round(times["tune"] / 60, 2),
                   "best_trial": best["trial"], "best_val_accuracy": best[state["objective"]],
                   "best_values": best["values"]},
        "test_accuracy": {"tuned": tuned, "default": default, "tuned_reproduced": again},
        "bars": {"tuned_at_least_default": tuned >= default, "reproduced_within_half_point": abs(tuned - again) <= 0.005},
        "train_minutes": {k: round(v / 60, 2) for k, v in times.items() if k != "tune"},
    }
    print(f"search: {state['trials']} trials in {times['tune'] / 60:.1f} min ({state['status']}), best trial "
          f"{best['trial']} val_accuracy {best[state['objective']]:.4f}: {best['values']}")
    print("| configuration | test accuracy | train minutes |")
    print("|---|---|---|")
    print(f"| tuned (best_config.json) | {tuned:.4f} | {times['tuned'] / 60:.1f} |")
    print(f"| default | {default:.4f} | {times['default'] / 60:.1f} |")
    print(f"| tuned, again from its config.json | {again:.4f} | {times['again'] / 60:.1f} |")
    print(f"bars: tuned >= default: {report['bars']['tuned_at_least_default']}; reproduced within 0.5 point: "
          f"{report['bars']['reproduced_within_half_point']} (difference {abs(tuned - again) * 100:.2f} points)")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
