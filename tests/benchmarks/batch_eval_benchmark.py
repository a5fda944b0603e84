"""Batch evaluation throughput per artifact kind, and the cost of writing results as they come.

    python tests/benchmarks/batch_eval_benchmark.py [--data builtin:mnist@test] [--repeats 3]

For the bundled image model as a run directory (Keras), a SavedModel (exported into a temporary
folder) and each bundled .tflite, it times the same items, batches and code path twice:
- in memory: load + predict every batch (`predict_items`) and keep the records in a list;
- the job: `run_job` into a fresh folder (records appended and flushed per batch, fsync'ed every
  2 s, job.json, then metrics, report and plots).
Both sides load the model afresh (untimed) and are timed from the first batch, its tracing included,
to the last record (for the job, its own session time as recorded in job.json, which includes
draining the writer); listing and the job's finish (metrics.json, report.md, plots) are outside, and
the whole job command's time is printed apart. The best of `--repeats` runs is kept.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[2]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "assets" / "models" / "mnist"))
    parser.add_argument("--data", default="builtin:mnist@test")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()

    from sensorium.apps.cli import quiet_tensorflow

    quiet_tensorflow()
    from sensorium.export.api import export
    from sensorium.pipelines.batch import job as jobs
    from sensorium.pipelines.common.artifacts import inspect_artifact
    from sensorium.runtime.tasks import TASKS

    model = Path(args.model)
    tmp = Path(tempfile.mkdtemp(prefix="sensorium-batch-bench-"))
    saved = tmp / "saved_model"
    export(model, "saved_model", out=str(saved), parity_data=f"{args.data}[:64]")
    artifacts = [("keras (run dir)", model), ("saved_model", saved)]
    artifacts += [(f"tflite {p.stem.split('-')[-1]}", p) for p in sorted((model / "exports").glob("*.tflite"))]
    rows = []
    for name, path in artifacts:
        artifact = inspect_artifact(path)
        task = TASKS.get(artifact.task).batch_task({"top_k": 5})
        items = jobs.all_items(task.list_items(artifact, args.data))
        memory, written = [], []
        for r in range(args.repeats):
            loaded = task.load_model(artifact)  # fresh, as the job loads it: both sides pay the first call's tracing
            t0 = time.perf_counter()
            kept = [rec for batch in jobs.batches(items, args.batch_size) for rec in jobs.predict_items(task, loaded, batch)]
            memory.append(time.perf_counter() - t0)
            assert len(kept) == len(items)
            out = tmp / f"job-{len(rows)}-{r}"
            t0 = time.perf_counter()
            jobs.run_job(path, args.data, out, batch_size=args.batch_size, progress=False)
            total = time.perf_counter() - t0
            session = json.loads((out / jobs.JOB_FILE).read_text())["sessions"][-1]["seconds"]
            written.append((session, total))
        best_mem = min(memory)
        best_job = min(s for s, _ in written)
        best_total = min(t for _, t in written)
        row = {"artifact": name, "items": len(items), "memory_items_per_second": round(len(items) / best_mem, 1),
               "job_items_per_second": round(len(items) / best_job, 1),
               "write_overhead": round(best_job / best_mem - 1, 4),
               "job_command_seconds_with_listing_loading_and_report": round(best_total, 2)}
        rows.append(row)
        print(f"{name:18s} {len(items)} items: in memory {row['memory_items_per_second']:8.1f}/s, job "
              f"{row['job_items_per_second']:8.1f}/s, overhead {100 * row['write_overhead']:+5.1f}%, whole job "
              f"{best_total:.2f} s", file=sys.stderr)
    print(json.dumps(rows, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
