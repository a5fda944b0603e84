"""The report of a batch evaluation (`report.md`): what was evaluated, the headline metrics, the
failed items, throughput, and the task's own sections (plots of metric by class or by length, the
worst errors)."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from sensorium.pipelines.batch.task import BatchTask, markdown_table

MAX_FAILURES_LISTED = 20


def scalar_metrics(metrics: dict[str, Any]) -> list[list[Any]]:
    """The metrics that are single numbers, as table rows."""
    return [[k, v] for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]


def write_report(task: BatchTask, records: list[dict[str, Any]], result: dict[str, Any], job: dict[str, Any],
                 folder: Path) -> str:
    """report.md's text; the task's plots go into `folder/plots`."""
    failed = [r for r in records if not r.get("ok")]
    shard = job.get("shard")
    lines = [
        f"# Evaluation: {job['task']} model", "",
        f"- model: `{job['model']}` ({job['model_kind']}, sha256 {job['model_sha256'][:16]}...)",
        f"- data: `{job['data']}` ({job['split']})" + (f", shard {shard[0]}/{shard[1]}" if shard else ""),
        f"- items: {len(records)}, evaluated {result['count']}, failed {len(failed)}",
    ]
    if job.get("merged_from"):
        lines.append(f"- merged from {len(job['merged_from'])} shards: {', '.join(job['merged_from'])}")
    tp = result["job"]["throughput"]
    if tp.get("items_per_second"):
        lines.append(f"- throughput: {tp['items_per_second']} items/s ({tp['items_evaluated']} items in "
                     f"{tp['seconds']} s over {tp['sessions']} session(s))")
    lines += ["", "## Metrics", ""] + markdown_table(["metric", "value"], scalar_metrics(result["metrics"]))
    if failed:
        reasons = Counter(str(r.get("error", "")).split(":")[-1].strip()[:80] for r in failed)
        lines += ["", f"## Failed items ({len(failed)})", "", "Most common reasons:", ""]
        lines += markdown_table(["reason", "items"], [[k, v] for k, v in reasons.most_common(10)])
        lines += ["", f"First {min(len(failed), MAX_FAILURES_LISTED)}:", ""]
        lines += markdown_table(["id", "error"], [[r["id"], r.get("error", "")] for r in failed[:MAX_FAILURES_LISTED]])
    ok = [r for r in records if r.get("ok")]
    if ok:
        lines += [""] + task.report(ok, result["metrics"], folder)
    return "\n".join(lines) + "\n"


__all__ = ["scalar_metrics", "write_report"]
