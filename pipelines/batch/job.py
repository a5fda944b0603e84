"""Batch evaluation jobs: per-item results written as they come, resumable, exact and shardable.

    sensorium evaluate --model ARTIFACT --data SPEC --out DIR [--shard I/N]
    sensorium evaluate --merge DIR

A job folder holds:

    job.json        what is evaluated (task, model fingerprint, data spec, split, options, the
                    ordered item ids' digest, shard), the state (running | complete) and throughput
    results.jsonl   one record per item, appended in batches as they finish:
                    {"index", "id", "ok", "reference", ...the task's fields} or {..., "ok": false, "error"}
    metrics.json    {"task", "data", "split", "count", "metrics", "job"} once every item has a record
    report.md, plots/*.png

Exactness: an item's record is written once. Started again with the same command, a job reads its
results, cuts a torn last line (a kill in the middle of a write) and runs only the items without a
record; records are never rewritten. A job folder that holds another evaluation (other model bytes,
data, options, shard) is refused, so two evaluations never mix. Metrics are computed from the
records only (see `task.BatchTask`), so a resumed, sharded or Beam run gives the same numbers.

Sharding: `--shard I/N` (0 <= I < N) takes the items whose index is I modulo N and works in
`DIR/shard-I-of-N/`; `--merge DIR` checks that the N shards evaluated the same model on the same items
and that together they hold every item exactly once, then writes the merged results, metrics and report
into DIR.

Failures: anything that goes wrong with one item (reading it, predicting it, writing its record; an
exception of any type) becomes that item's record `{"ok": false, "error": "<one line>"}` and the job goes
on; a batch whose prediction fails is predicted again item by item, so only the bad items fail.

Untrusted folders: job.json is checked before use (size, nesting, the types of its fields), and no file
of a job folder is written, appended to or truncated through a symbolic link (a DataError naming it).

Durability: results are flushed to the operating system after every batch (a killed process loses
nothing written) and fsync'ed at most every `SYNC_SECONDS` and at the end (a machine crash may lose
the last seconds, which are then simply recomputed).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sensorium.pipelines.batch.task import BatchTask, EvalItem, ItemList, dumps, error_line, record_for
from sensorium.pipelines.common.artifacts import Artifact, inspect_artifact
from sensorium.pipelines.common.progress import progress, show_progress
from sensorium.pipelines.common.rundir import read_json_object
from sensorium.runtime.atomic import atomic_write_json, atomic_write_text, inside, open_nofollow
from sensorium.runtime.errors import DataError, ModelError, UsageError

log = logging.getLogger(__name__)

SCHEMA = 1
JOB_FILE, RESULTS_FILE, METRICS_FILE, REPORT_FILE = "job.json", "results.jsonl", "metrics.json", "report.md"
SYNC_SECONDS = 2.0
_SHARD_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")
_SHARD_DIR_RE = re.compile(r"^shard-(\d+)-of-(\d+)$")
# job.json keys that must match for a job folder to be resumed (or shards to be merged)
_IDENTITY = ("task", "model_sha256", "data", "split", "options", "items_sha256", "total_items")
# the fields of a job.json read back (see rundir.shape_error), and its size at most
JOB_SHAPE: dict[str, Any] = {
    "task": str, "model_sha256": str, "data": str, "split": str, "options": dict, "context": dict,
    "items_sha256": str, "total_items": int, "items": int, "shard": (type(None), [int]), "status": str,
    "model?": str, "model_kind?": str, "merged_from?": [str], "sessions?": [{"items": int, "seconds": float}],
}
MAX_JOB_BYTES = 256 << 20  # listing_failures may name many items
# what a job folder holds: none of them is ever written through a symbolic link
_JOB_FILES = (JOB_FILE, RESULTS_FILE, METRICS_FILE, REPORT_FILE, "plots")


# === Shards ===
@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    @property
    def folder(self) -> str:
        return f"shard-{self.index}-of-{self.count}"

    def holds(self, index: int) -> bool:
        return index % self.count == self.index


def parse_shard(text: str) -> Shard:
    """`I/N` with 0 <= I < N -> Shard; a UsageError otherwise."""
    m = _SHARD_RE.match(text or "")
    if not m:
        raise UsageError(f"--shard takes I/N (shard I of N, 0 <= I < N, e.g. 0/4), got {text!r}")
    index, count = int(m.group(1)), int(m.group(2))
    if count < 1 or index >= count:
        raise UsageError(f"--shard {text}: I must be in 0..N-1 and N at least 1")
    return Shard(index, count)


# === Identity ===
def model_sha256(artifact: Artifact) -> str:
    """A digest of the model's bytes (the .keras, .tflite, or every file of a SavedModel folder)."""
    path = artifact.keras_path if artifact.kind in ("run", "keras") else artifact.path
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    digest = hashlib.sha256()
    for f in files:
        digest.update(str(f.relative_to(path) if path.is_dir() else f.name).encode() + b"\0")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def items_sha256(ids: list[str]) -> str:
    return hashlib.sha256("\n".join(ids).encode("utf-8", "surrogatepass")).hexdigest()


def all_items(listing: ItemList) -> list[EvalItem]:
    """The listed items, then the items that failed while listing (payload None, indexed after them)."""
    n = len(listing.items)
    failed = [EvalItem(n + k, item_id, None, None) for k, (item_id, _) in enumerate(listing.failures)]
    return list(listing.items) + failed


# === Results file ===
def read_results(path: Path, accept: Callable[[int], bool] | None = None, *, repair: bool = True) -> dict[int, dict]:
    """The records of a results file by index. Reading stops at the first line that is torn (no
    newline: the job was killed while writing it), unparsable, out of place (`accept` false) or a
    repeat of an index; with `repair` the file is cut there, so appends continue from a clean end."""
    records: dict[int, dict] = {}
    if not (path.is_file() or path.is_symlink()):
        return records
    good_end = 0
    with open_nofollow(path, "r+b" if repair else "rb") as fh:
        for line in fh:
            rec = _parse_record(line)
            if rec is None or rec["index"] in records or (accept is not None and not accept(rec["index"])):
                break
            records[rec["index"]] = rec
            good_end += len(line)
        size = fh.seek(0, os.SEEK_END)
        if good_end != size:
            if not repair:
                raise DataError(f"{path}: damaged after {len(records)} records; run its job again to repair it")
            log.warning("%s: cut a damaged or unfinished tail after %d records (it is evaluated again)", path,
                        len(records))
            fh.truncate(good_end)
            fh.flush()
            os.fsync(fh.fileno())
    return records


def _parse_record(line: bytes) -> dict[str, Any] | None:
    """A whole line's record (an object with an integer index, and `ok` true or false), else None."""
    if not line.endswith(b"\n"):
        return None  # torn: the job was killed while writing it
    try:
        rec = json.loads(line)
    except (ValueError, RecursionError):
        return None
    ok = isinstance(rec, dict) and type(rec.get("index")) is int and isinstance(rec.get("ok", False), bool)
    return rec if ok else None


class _Appender:
    """Appends records to the results file from a writer thread, so encoding and writing overlap the
    next batch's prediction: each batch is encoded, written and flushed in order, the file fsync'ed
    every SYNC_SECONDS and at close. A batch queued but not yet written when the process dies is
    simply evaluated again on resumption. A write error surfaces at the next `write` or at `close`."""

    def __init__(self, path: Path, depth: int = 4) -> None:
        self.fh = open_nofollow(path, "a")
        self.synced = time.monotonic()
        self.queue: queue.Queue[list[dict[str, Any]] | None] = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="sensorium-results-writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (records := self.queue.get()) is not None:
            if self.error is not None:
                continue  # drain: nothing more is written after a failure
            try:
                self.fh.write("".join(dumps(r) + "\n" for r in records))
                self.fh.flush()
                if time.monotonic() - self.synced >= SYNC_SECONDS:
                    os.fsync(self.fh.fileno())
                    self.synced = time.monotonic()
            except BaseException as exc:  # disk full, a non-finite number: reported to the caller
                self.error = exc

    def _raise(self) -> None:
        if self.error is not None:
            raise self.error

    def write(self, records: list[dict[str, Any]]) -> None:
        self._raise()
        self.queue.put(records)

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()
        try:
            self.fh.flush()
            os.fsync(self.fh.fileno())
        finally:
            self.fh.close()
        self._raise()


# === Progress ===
class _Progress:
    """A tqdm bar (rate, ETA) on a terminal; elsewhere (batch logs) a log line every 30 s."""

    def __init__(self, total: int, done: int, unit: str, enabled: bool) -> None:
        self.total, self.done, self.unit = total, done, unit
        self.started, self.last_log, self.new = time.monotonic(), time.monotonic(), 0
        self.bar = None
        if enabled and show_progress():
            self.bar = progress(total=total, initial=done, unit=unit, desc="evaluating", smoothing=0.1)
        self.enabled = enabled

    def update(self, n: int) -> None:
        self.done += n
        self.new += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.enabled and time.monotonic() - self.last_log >= 30:
            rate = self.new / max(time.monotonic() - self.started, 1e-9)
            eta = (self.total - self.done) / rate if rate > 0 else float("inf")
            log.info("evaluated %d/%d %ss (%.1f/s, about %.0f s left)", self.done, self.total, self.unit, rate, eta)
            self.last_log = time.monotonic()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# === Running ===
def predict_items(task: BatchTask, model: Any, items: list[EvalItem]) -> list[dict[str, Any]]:
    """Records for a batch of items: load each (a failure fails that item), predict the loaded ones
    together; when the batch's prediction fails, each item is predicted alone so only the bad one fails.
    Any exception while handling one item becomes that item's error record (KeyboardInterrupt stops)."""
    inputs: list[tuple[EvalItem, Any]] = []
    records: dict[int, dict[str, Any]] = {}
    for item in items:
        if item.payload is None:
            continue  # failed while listing: filled in by the caller
        try:
            inputs.append((item, task.load(item)))
        except Exception as exc:
            records[item.index] = _failed(item, exc)
    if inputs:
        try:
            records.update(_predict(task, model, inputs))
        except Exception as exc:  # find the items that break the batch: each alone
            log.debug("a batch of %d items failed (%s); predicting them one by one", len(inputs), error_line(exc))
            for one in inputs:
                try:
                    records.update(_predict(task, model, [one]))
                except Exception as exc:
                    records[one[0].index] = _failed(one[0], exc)
    return [records[i.index] for i in items if i.index in records]


def _predict(task: BatchTask, model: Any, inputs: list[tuple[EvalItem, Any]]) -> dict[int, dict[str, Any]]:
    """The records of `inputs` predicted together, each checked to be writable as a JSON line."""
    outs = list(task.predict(model, [x for _, x in inputs]))
    if len(outs) != len(inputs):
        raise ValueError(f"{len(outs)} predictions for {len(inputs)} inputs")
    records = {}
    for (item, _), fields in zip(inputs, outs):
        if not isinstance(fields, dict):
            raise TypeError(f"a prediction is {type(fields).__name__}, not a mapping")
        record = record_for(item, fields)
        dumps(record)  # a value JSON cannot hold (NaN, an array) fails here, for its item, not in the writer
        records[item.index] = record
    return records


def _failed(item: EvalItem, exc: Exception) -> dict[str, Any]:
    """The error record of `item`; an exception that is not one of ours is logged with its traceback (-v)."""
    log.debug("%s failed", item.id, exc_info=True)
    return record_for(item, error=error_line(exc))


def batches(items: list[EvalItem], size: int) -> Iterator[list[EvalItem]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def job_description(task: BatchTask, artifact: Artifact, listing: ItemList, items: list[EvalItem],
                     shard: Shard | None) -> dict[str, Any]:
    chosen = [i for i in items if shard is None or shard.holds(i.index)]
    return {
        "schema": SCHEMA, "task": task.task, "model": str(artifact.path.resolve()), "model_kind": artifact.kind,
        "model_sha256": model_sha256(artifact), "data": listing.data, "split": listing.split,
        "options": task.options, "context": task.context, "total_items": len(items),
        "items_sha256": items_sha256([i.id for i in items]),
        "shard": [shard.index, shard.count] if shard else None, "items": len(chosen),
        "listing_failures": {item_id: error for item_id, error in listing.failures},
        "status": "running", "sessions": [],
    }


def check_same(old: dict[str, Any], new: dict[str, Any], folder: Path) -> None:
    for key in _IDENTITY + ("shard",):
        if old.get(key) != new.get(key):
            what = {"model_sha256": "model file", "items_sha256": "items"}.get(key, key)
            raise UsageError(f"{folder} holds another evaluation (its {what} differs); pick another --out, "
                             "or pass --restart to discard it")


def _read_job(folder: Path) -> dict[str, Any] | None:
    """The folder's job.json, checked (JOB_SHAPE); None when there is none."""
    path = folder / JOB_FILE
    try:
        return read_json_object(path, JOB_SHAPE, error=DataError, max_bytes=MAX_JOB_BYTES)
    except FileNotFoundError:
        return None
    except DataError as exc:
        raise DataError(f"{exc} (not a job description); pass --restart to start over") from None


def check_links(folder: Path) -> None:
    """A DataError naming the first of the job folder's files (or its plots folder) that is a symbolic link."""
    for name in _JOB_FILES:
        inside(folder, name)


def _clear(folder: Path) -> None:
    for name in (RESULTS_FILE, METRICS_FILE, REPORT_FILE, JOB_FILE):
        (folder / name).unlink(missing_ok=True)  # a link is removed, never followed


def open_job(model_path: str | Path, data: str | None, options: dict[str, Any] | None
             ) -> tuple[Artifact, BatchTask, ItemList, list[EvalItem]]:
    """The model artifact, its task's BatchTask, the listing of `data` and all its items (failures last)."""
    from sensorium.runtime.tasks import TASKS

    artifact = inspect_artifact(model_path)
    if artifact.task is None:
        raise ModelError(f"{model_path}: cannot tell which task this model serves (no Sensorium metadata)")
    task: BatchTask = TASKS.get(artifact.task).batch_task(options)
    listing = task.list_items(artifact, data)
    items = all_items(listing)
    if not items:
        raise DataError(f"{listing.data}: no items to evaluate")
    return artifact, task, listing, items


def run_job(model_path: str | Path, data: str | None, out: str | Path, *, options: dict[str, Any] | None = None,
            shard: Shard | None = None, batch_size: int = 64, restart: bool = False, progress: bool = True,
            after_batch: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Evaluate (or finish evaluating) into `out` (or `out/shard-I-of-N`); returns the metrics.json object.
    `after_batch(records so far)` is a hook for tests and callers that watch progress."""
    if batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    artifact, task, listing, items = open_job(model_path, data, options)
    folder = inside(out, shard.folder) if shard else Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    job = job_description(task, artifact, listing, items, shard)
    if restart:
        _clear(folder)
    check_links(folder)
    old = _read_job(folder)
    if old is not None:
        check_same(old, job, folder)
        job["sessions"] = old.get("sessions", [])
    elif (folder / RESULTS_FILE).exists():
        raise UsageError(f"{folder} has results but no {JOB_FILE}; pick another --out, or pass --restart")
    else:
        atomic_write_json(folder / JOB_FILE, job)

    mine = [i for i in items if shard is None or shard.holds(i.index)]
    done = read_results(folder / RESULTS_FILE,
                        accept=lambda i: 0 <= i < len(items) and (shard is None or shard.holds(i)))
    todo = [i for i in mine if i.index not in done]
    if done:
        log.info("%s: %d of %d items already evaluated; continuing with %d", folder, len(done), len(mine), len(todo))
    started, processed = time.perf_counter(), 0
    if todo:
        failed_listing = dict(listing.failures)
        model = task.load_model(artifact)
        bar = _Progress(len(mine), len(done), task.kind, progress)
        appender = _Appender(folder / RESULTS_FILE)
        started = time.perf_counter()
        try:
            for batch in batches(todo, batch_size):
                records = predict_items(task, model, batch)
                records += [record_for(i, error=failed_listing.get(i.id, "failed while listing"))
                            for i in batch if i.payload is None]
                records.sort(key=lambda r: r["index"])
                appender.write(records)
                processed += len(records)
                bar.update(len(records))
                if after_batch is not None:
                    after_batch(len(done) + processed)
        finally:
            appender.close()
            bar.close()
            seconds = time.perf_counter() - started
            if processed:  # this session's throughput (a stopped session's too; a killed one's is lost)
                job["sessions"].append({"items": processed, "seconds": round(seconds, 3),
                                        "items_per_second": round(processed / max(seconds, 1e-9), 2)})
                log.info("%d items in %.1f s (%.1f items/s)", processed, seconds, processed / max(seconds, 1e-9))
                if processed < len(todo):
                    atomic_write_json(folder / JOB_FILE, job)
    return finish(folder, task, job)


def throughput(sessions: list[dict[str, Any]]) -> dict[str, Any]:
    items = sum(s["items"] for s in sessions)
    seconds = sum(s["seconds"] for s in sessions)
    return {"items_evaluated": items, "seconds": round(seconds, 3), "sessions": len(sessions),
            "items_per_second": round(items / seconds, 2) if seconds > 0 else None}


def finish(folder: Path, task: BatchTask, job: dict[str, Any]) -> dict[str, Any]:
    """Check the folder holds every item of its job once, then write metrics.json, report.md and plots."""
    check_links(folder)
    shard = Shard(*job["shard"]) if job.get("shard") else None
    total = job["total_items"]
    records = read_results(folder / RESULTS_FILE, accept=lambda i: 0 <= i < total and (shard is None or shard.holds(i)),
                           repair=False)
    expected = {i for i in range(total) if shard is None or shard.holds(i)}
    if set(records) != expected:
        missing = len(expected - set(records))
        raise DataError(f"{folder}: {missing} of {len(expected)} items have no result yet; run the same command again")
    result = summarise(task, [records[i] for i in sorted(records)], job, folder)
    job.update(status="complete", throughput=throughput(job.get("sessions", [])))
    atomic_write_json(folder / JOB_FILE, job)
    return result


def summarise(task: BatchTask, records: list[dict[str, Any]], job: dict[str, Any],
              folder: Path | None) -> dict[str, Any]:
    """The metrics.json object of a complete set of records (sorted by index); with `folder`, also
    metrics.json, report.md and the plots written there."""
    from sensorium.pipelines.batch.report import write_report

    ok = [r for r in records if r.get("ok")]
    failed = [r for r in records if not r.get("ok")]
    metrics = task.metrics(ok) if ok else {}
    metrics["failed"] = len(failed)
    result = {"task": job["task"], "data": job["data"], "split": job["split"], "count": len(ok), "metrics": metrics,
              "job": {"items": len(records), "failed": len(failed), "shard": job.get("shard"),
                      "throughput": throughput(job.get("sessions", []))}}
    if folder is not None:
        atomic_write_json(folder / METRICS_FILE, result)
        atomic_write_text(folder / REPORT_FILE, write_report(task, records, result, job, folder))
    return result


# === Merging shards ===
def merge_shards(out: str | Path) -> dict[str, Any]:
    """Merge the `shard-I-of-N` folders of `out` into `out` (results.jsonl, metrics.json, report.md)."""
    from sensorium.runtime.tasks import TASKS

    out = Path(out)
    check_links(out)
    found: dict[int, tuple[int, Path]] = {}
    counts = set()
    for path in sorted(out.glob("shard-*-of-*")) if out.is_dir() else []:
        m = _SHARD_DIR_RE.match(path.name)
        if m and path.is_dir():
            found[int(m.group(1))] = (int(m.group(2)), path)
            counts.add(int(m.group(2)))
    if not found:
        raise DataError(f"{out}: no shard folders (shard-I-of-N) to merge")
    if len(counts) != 1:
        raise DataError(f"{out}: shard folders of different shard counts ({', '.join(map(str, sorted(counts)))}); "
                        "merge one sharding at a time")
    n = counts.pop()
    missing = [i for i in range(n) if i not in found]
    if missing:
        raise DataError(f"{out}: shard {missing[0]}/{n} is missing ({len(missing)} of {n} shards missing); "
                        f"run it with --shard {missing[0]}/{n}")
    jobs = []
    for i in range(n):
        job = _read_job(found[i][1])
        if job is None:
            raise DataError(f"{found[i][1]}: no {JOB_FILE}; run shard {i}/{n} again")
        if job.get("status") != "complete":
            raise DataError(f"shard {i}/{n} is not finished ({found[i][1]}); run it again with --shard {i}/{n}")
        jobs.append(job)
    first = jobs[0]
    for i, job in enumerate(jobs[1:], 1):
        for key in _IDENTITY:
            if job.get(key) != first.get(key):
                raise DataError(f"shard {i}/{n} evaluated something else than shard 0/{n} (its {key} differs)")
    records: dict[int, dict] = {}
    for i in range(n):
        shard = Shard(i, n)
        recs = read_results(found[i][1] / RESULTS_FILE, accept=shard.holds, repair=False)
        if len(recs) != jobs[i]["items"]:
            raise DataError(f"shard {i}/{n} holds {len(recs)} of its {jobs[i]['items']} items; run it again")
        records.update(recs)
    if len(records) != first["total_items"] or set(records) != set(range(first["total_items"])):
        raise DataError(f"{out}: the shards hold {len(records)} of {first['total_items']} items")
    task = TASKS.get(first["task"]).batch_task(first["options"], first["context"])
    ordered = [records[i] for i in range(first["total_items"])]
    atomic_write_text(out / RESULTS_FILE, "".join(dumps(r) + "\n" for r in ordered))
    merged = {**first, "shard": None, "items": len(ordered), "status": "complete",
              "merged_from": [str(found[i][1].name) for i in range(n)],
              "sessions": [s for job in jobs for s in job.get("sessions", [])]}
    result = summarise(task, ordered, merged, out)
    merged["throughput"] = throughput(merged["sessions"])
    atomic_write_json(out / JOB_FILE, merged)
    return result


__all__ = ["Shard", "all_items", "batches", "check_same", "finish", "job_description", "open_job", "throughput",
           "items_sha256", "merge_shards", "model_sha256", "parse_shard", "predict_items", "read_results", "run_job",
           "summarise"]
