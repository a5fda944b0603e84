"""The batch evaluation as an Apache Beam pipeline with RunInference, for data larger than one machine.

    sensorium evaluate --model ARTIFACT --data SPEC --out DIR --runner DirectRunner
    sensorium evaluate ... --runner DataflowRunner --pipeline-option project=P --pipeline-option region=R ...

The driver lists the items with the task's `BatchTask.list_items` (as `job.run_job` does), then runs

    Create(items) -> RunInference(SensoriumModelHandler) -> one JSON record per item
                  -> WriteToText(OUT/beam/results-SSSSS-of-NNNNN.jsonl)

Each worker loads the model once (`BatchTask.load_model`) and predicts the batches that Beam forms
(`job.predict_items`: an item that fails, for any reason, fails alone, as a record with its error). When the pipeline
is done, the driver checks that the shards hold every item exactly once, writes `OUT/results.jsonl`
sorted by index, `OUT/job.json` ("engine": "beam") and, from the records only, the same
`metrics.json` and `report.md` as the single-process job.

A Beam run is all or nothing: run again, it evaluates every item again. OUT may be a local folder or
any path Beam's FileSystems know (gs://, s3://, hdfs://), which a remote runner's workers need; the
model and the data's files are read at the same paths on the driver and on every worker.

apache-beam is the optional extra `sensorium[beam]`.
"""
from __future__ import annotations

import json
import logging
import re
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sensorium.pipelines.batch.job import (
    JOB_FILE,
    JOB_SHAPE,
    MAX_JOB_BYTES,
    METRICS_FILE,
    REPORT_FILE,
    RESULTS_FILE,
    check_links,
    check_same,
    job_description,
    open_job,
    predict_items,
    summarise,
    throughput,
)
from sensorium.pipelines.batch.task import BatchTask, EvalItem, dumps, record_for
from sensorium.pipelines.common.artifacts import inspect_artifact
from sensorium.pipelines.common.rundir import parse_json_object
from sensorium.runtime.atomic import atomic_write_json, atomic_write_text
from sensorium.runtime.errors import DataError, MissingExtraError, ModelError, SensoriumError, UsageError

log = logging.getLogger(__name__)


def _quiet_beam_logs() -> None:
    """Beam's own INFO chatter only with -v (when our log shows DEBUG)."""
    beam_log = logging.getLogger("apache_beam")
    if beam_log.level == logging.NOTSET and not log.isEnabledFor(logging.DEBUG):
        beam_log.setLevel(logging.WARNING)


@contextmanager
def _muted(name: str) -> Iterator[None]:
    """Silence a Beam logger whose message run_beam reports itself, as one line (kept with -v)."""
    logger = logging.getLogger(name)
    level = logger.level
    if not log.isEnabledFor(logging.DEBUG):
        logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(level)


class _NoBigQueryNotice(logging.Filter):
    """apache-beam without its gcp extra warns on import that BigQuery's clients are missing."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("apitools not found")


_quiet_beam_logs()
_notice = _NoBigQueryNotice()
logging.getLogger().addFilter(_notice)
try:  # the optional extra sensorium[beam]; run_beam says how to install it when it is missing
    import apache_beam.ml.inference.base as _inference
    from apache_beam.ml.inference.base import ModelHandler as _ModelHandler

    HAVE_BEAM = True
    if getattr(_inference, "resource", True) is None:
        # apache-beam 2.77 imports `resource` together with its torch-only ModelManager, so without
        # torch it warns "Resource module is not available" at every model load: give it the module
        try:
            import resource as _resource

            _inference.resource = _resource
        except ImportError:  # not a POSIX system
            pass
except ImportError:
    _ModelHandler = object  # type: ignore[assignment,misc]
    HAVE_BEAM = False
finally:
    logging.getLogger().removeFilter(_notice)

BEAM_DIR = "beam"  # OUT/beam/results-SSSSS-of-NNNNN.jsonl: the pipeline's output shards
SHARD_PREFIX = "results"
SHARD_SUFFIX = ".jsonl"
PROGRESS_SECONDS = 30.0
_OPTION_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_WHILE_RUNNING = re.compile(r"\s*\[while running '[^']*'\]")


class LoadedModel:
    """A worker's model: the task adapter and its predictor (an object Beam can hold a weak reference to)."""

    def __init__(self, task: BatchTask, predictor: Any) -> None:
        self.task = task
        self.predictor = predictor


class SensoriumModelHandler(_ModelHandler):
    """RunInference's handler for a Sensorium model: `EvalItem`s in, one JSON-ready record per item out.

    The model is loaded on the worker (`load_model` returns the task adapter with its predictor);
    items that failed while listing (payload None) become records of their listing error."""

    def __init__(self, model_path: str, task: str, options: dict[str, Any], context: dict[str, Any],
                 listing_failures: dict[str, str], batch_size: int, progress: bool = True) -> None:
        super().__init__(min_batch_size=batch_size, max_batch_size=batch_size)
        self.model_path = model_path
        self.task = task
        self.options = dict(options)
        self.context = dict(context)
        self.listing_failures = dict(listing_failures)
        self.progress = progress
        self._done = 0
        self._logged = time.monotonic()

    def load_model(self) -> LoadedModel:
        from sensorium.runtime.tasks import TASKS

        task: BatchTask = TASKS.get(self.task).batch_task(self.options, self.context)
        return LoadedModel(task, task.load_model(inspect_artifact(self.model_path)))

    def run_inference(self, batch: Sequence[EvalItem], model: LoadedModel,
                      inference_args: dict[str, Any] | None = None) -> Iterable[dict[str, Any]]:
        task, predictor = model.task, model.predictor
        items = list(batch)
        records = predict_items(task, predictor, items)  # a failing item becomes its error record
        records += [record_for(i, error=self.listing_failures.get(i.id, "failed while listing"))
                    for i in items if i.payload is None]
        records.sort(key=lambda r: r["index"])
        self._log_progress(len(records))
        return records

    def get_num_bytes(self, batch: Sequence[EvalItem]) -> int:
        """The batch's input bytes (arrays) or characters (paths, texts), for Beam's metrics."""
        return sum(int(getattr(i.payload, "nbytes", 0)) or len(str(i.payload or "")) for i in batch)

    def get_metrics_namespace(self) -> str:
        return "sensorium"

    def _log_progress(self, n: int) -> None:
        self._done += n
        if self.progress and time.monotonic() - self._logged >= PROGRESS_SECONDS:
            log.info("this worker evaluated %d items", self._done)
            self._logged = time.monotonic()


# === Paths (local or any Beam filesystem) ===
def _is_remote(path: str) -> bool:
    return "://" in path


def _join(base: str, *parts: str) -> str:
    from apache_beam.io.filesystems import FileSystems

    return FileSystems.join(base, *parts)


def _read_bytes(path: str, limit: int) -> bytes | None:
    """At most `limit` + 1 bytes of a file through Beam's FileSystems; None when it does not exist."""
    from apache_beam.io.filesystems import FileSystems

    if not FileSystems.exists(path):
        return None
    with FileSystems.open(path) as fh:
        return fh.read(limit + 1)


def _delete_matching(pattern: str) -> None:
    from apache_beam.io.filesystems import FileSystems

    paths = [m.path for r in FileSystems.match([pattern]) for m in r.metadata_list]
    if paths:
        FileSystems.delete(paths)


def _publish(local: Path, dest: str, names: Sequence[str] | None = None) -> None:
    """Copy `names` (default: every file under `local`) to the remote folder `dest`, keeping relative paths."""
    from apache_beam.io.filesystems import FileSystems

    files = [local / n for n in names] if names is not None else sorted(p for p in local.rglob("*") if p.is_file())
    for path in files:
        with FileSystems.create(_join(dest, *path.relative_to(local).parts)) as fh:
            fh.write(path.read_bytes())


# === Pipeline options ===
def pipeline_flags(runner: str, pipeline_options: Sequence[str] = ()) -> list[str]:
    """`KEY=VALUE` (or a bare `KEY` for a switch) -> Beam's `--KEY=VALUE` flags, with the runner;
    the DirectRunner runs one worker unless `direct_num_workers` is given."""
    if not runner or not re.match(r"^[A-Za-z][A-Za-z0-9_.]*$", runner):
        raise UsageError("--runner takes a Beam runner name (DirectRunner, DataflowRunner, FlinkRunner, ...), "
                         f"got {runner!r}")
    flags, keys = [f"--runner={runner}"], set()
    for text in pipeline_options:
        key, sep, value = text.partition("=")
        key = key.strip().lstrip("-")
        if not _OPTION_KEY.match(key):
            raise UsageError(f"--pipeline-option takes KEY=VALUE (e.g. project=my-project), got {text!r}")
        if key == "runner":
            raise UsageError("give the runner with --runner, not --pipeline-option runner=...")
        keys.add(key)
        flags.append(f"--{key}={value}" if sep else f"--{key}")
    if runner in ("DirectRunner", "direct") and "direct_num_workers" not in keys:
        flags.append("--direct_num_workers=1")
    return flags


def _pipeline(flags: list[str], runner: str) -> Any:
    """A Beam Pipeline for `flags`. An option no Beam runner knows is a UsageError (a typo would
    otherwise be dropped with a warning, and a remote job run without it), as are an unknown runner
    and the runner's own checks (DataflowRunner: project, region, temp_location)."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    options = PipelineOptions(flags)
    with _muted("apache_beam.options.pipeline_options"):  # "Discarding unparseable args": said below
        unknown = sorted(set(options.get_all_options(retain_unknown_options=True)) - set(options.get_all_options()))
    if unknown:
        raise UsageError(f"unknown Beam pipeline option{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}")
    try:
        return beam.Pipeline(options=options)
    except (ValueError, TypeError, ImportError) as exc:
        text = "; ".join(ln.strip().rstrip(".:") for ln in str(exc).splitlines() if ln.strip())
        raise UsageError(f"Beam cannot run on {runner}: {text[:500]}") from None


def _beam_failure(exc: BaseException, runner: str) -> SensoriumError:
    """A pipeline failure as one line: our own error when a worker raised one, else Beam's last line."""
    seen, cause = set(), exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, SensoriumError):
            return type(cause)(_WHILE_RUNNING.sub("", str(cause)).strip())
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    # a remote runner reports a worker's traceback as text: its last "SomeError: message" line
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    named = [ln for ln in lines if re.match(r"^[\w.]+(Error|Exception): ", ln)]
    for line in reversed(named):
        for cls in (ModelError, DataError, UsageError):
            if line.startswith((f"{cls.__name__}: ", f"{cls.__module__}.{cls.__name__}: ")):
                return cls(_WHILE_RUNNING.sub("", line.split(": ", 1)[1]).strip())
    tail = named[-1] if named else f"{type(exc).__name__}: {lines[-1] if lines else ''}"
    return SensoriumError(f"the Beam pipeline failed on {runner}: {_WHILE_RUNNING.sub('', tail)[:300]}")


# === Running ===
def run_beam(model_path: str | Path, data: str | None, out: str | Path, *, options: dict[str, Any] | None = None,
             batch_size: int = 64, runner: str = "DirectRunner", pipeline_options: Sequence[str] = (),
             restart: bool = False, progress: bool = True) -> dict[str, Any]:
    """Evaluate with a Beam pipeline into `out`; returns the metrics.json object (as `job.run_job`).

    `out` holding another evaluation is refused unless `restart`; one holding this evaluation (a
    finished or stopped job) is evaluated again in full."""
    if not HAVE_BEAM:
        raise MissingExtraError('the Beam engine needs apache-beam: pip install "sensorium[beam]"')
    import apache_beam as beam
    from apache_beam.ml.inference.base import RunInference
    from apache_beam.runners.runner import PipelineState

    if batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    _quiet_beam_logs()
    pipeline = _pipeline(pipeline_flags(runner, pipeline_options), runner)

    artifact, task, listing, items = open_job(model_path, data, options)

    out_text = str(out)
    remote = _is_remote(out_text)
    if not remote:
        out_text = str(Path(out_text).expanduser().resolve())
        Path(out_text).mkdir(parents=True, exist_ok=True)
    job = job_description(task, artifact, listing, items, None)
    job.update(engine="beam", runner=runner, pipeline_options=list(pipeline_options))
    _check_folder(out_text, job, restart)
    if not remote:
        check_links(Path(out_text))
    beam_dir = _join(out_text, BEAM_DIR)
    prefix = _join(beam_dir, SHARD_PREFIX)
    _delete_matching(prefix + "*")

    local = Path(tempfile.mkdtemp(prefix="sensorium-beam-")) if remote else Path(out_text)
    try:
        _write_job(local, out_text, job, remote)
        handler = SensoriumModelHandler(job["model"], task.task, task.options, task.context,
                                        job["listing_failures"], batch_size, progress)
        log.info("evaluating %d %ss with a Beam pipeline on %s (batches of %d)", len(items), task.kind, runner,
                 batch_size)
        started = time.perf_counter()
        try:
            with _muted("apache_beam.runners.common"):  # a worker's error, logged with its traceback
                _ = (pipeline
                     | "Items" >> beam.Create(items)
                     | "Predict" >> RunInference(handler)
                     | "Records" >> beam.Map(dumps)
                     | "Write" >> beam.io.WriteToText(prefix, file_name_suffix=SHARD_SUFFIX))
                state = pipeline.run().wait_until_finish()
        except Exception as exc:  # our error, annotated by Beam, or Beam's own with a worker traceback
            raise _beam_failure(exc, runner) from None
        if state is not None and state != PipelineState.DONE:
            raise SensoriumError(f"the Beam pipeline ended {state} on {runner}, not DONE")
        seconds = time.perf_counter() - started

        ordered = read_shards(prefix, len(items))
        if not remote:  # WriteToText leaves its emptied temporary folder behind
            for tmp in Path(beam_dir).glob("beam-temp-*"):
                if tmp.is_dir() and not any(tmp.iterdir()):
                    tmp.rmdir()
        text = "".join(dumps(r) + "\n" for r in ordered)
        atomic_write_text(local / RESULTS_FILE, text)
        job["sessions"].append({"items": len(ordered), "seconds": round(seconds, 3),
                                "items_per_second": round(len(ordered) / max(seconds, 1e-9), 2)})
        log.info("%d items in %.1f s (%.1f items/s, pipeline start-up included)", len(ordered), seconds,
                 len(ordered) / max(seconds, 1e-9))
        result = summarise(task, ordered, job, local)
        job.update(status="complete", throughput=throughput(job["sessions"]))
        atomic_write_json(local / JOB_FILE, job)
        if remote:
            _publish(local, out_text)
        return result
    finally:
        if remote:
            shutil.rmtree(local, ignore_errors=True)


def read_shards(prefix: str, total: int) -> list[dict[str, Any]]:
    """The records of the pipeline's output shards `PREFIX-*-of-*.jsonl`, sorted by index; every
    index 0..total-1 must appear exactly once."""
    from apache_beam.io.filesystems import FileSystems

    pattern = f"{prefix}-*-of-*{SHARD_SUFFIX}"
    paths = sorted(m.path for r in FileSystems.match([pattern]) for m in r.metadata_list)
    if not paths:
        raise DataError(f"{pattern}: the Beam pipeline wrote no results")
    records: dict[int, dict[str, Any]] = {}
    duplicates, outside = 0, 0
    for path in paths:
        with FileSystems.open(path) as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    index = int(record["index"])
                except (ValueError, KeyError, TypeError, RecursionError):
                    raise DataError(f"{path}:{n}: not a result record") from None
                if not 0 <= index < total:
                    outside += 1
                elif index in records:
                    duplicates += 1
                else:
                    records[index] = record
    missing = total - len(records)
    if duplicates or missing or outside:
        raise DataError(f"{prefix}-*: the Beam pipeline's results are inconsistent ({missing} of {total} items "
                        f"missing, {duplicates} written twice, {outside} out of range); run it again")
    return [records[i] for i in range(total)]


def _check_folder(out: str, job: dict[str, Any], restart: bool) -> None:
    """Refuse a folder holding another evaluation (unless `restart`, which clears it)."""
    from apache_beam.io.filesystems import FileSystems

    if restart:
        for name in (RESULTS_FILE, METRICS_FILE, REPORT_FILE, JOB_FILE):
            _delete_matching(_join(out, name))
        return
    raw = _read_bytes(_join(out, JOB_FILE), MAX_JOB_BYTES)
    if raw is not None:
        try:
            if len(raw) > MAX_JOB_BYTES:
                raise DataError(f"{_join(out, JOB_FILE)}: larger than {MAX_JOB_BYTES >> 20} MB")
            old = parse_json_object(raw, _join(out, JOB_FILE), JOB_SHAPE, error=DataError)
        except DataError as exc:
            raise DataError(f"{exc} (not a job description); pass --restart to start over") from None
        check_same(old, job, out)  # type: ignore[arg-type]  (the folder is only named in its message)
        log.info("%s holds this evaluation already; a Beam run evaluates every item again", out)
    elif FileSystems.exists(_join(out, RESULTS_FILE)):
        raise UsageError(f"{out} has results but no {JOB_FILE}; pick another --out, or pass --restart")


def _write_job(local: Path, out: str, job: dict[str, Any], remote: bool) -> None:
    atomic_write_json(local / JOB_FILE, job)
    if remote:
        _publish(local, out, [JOB_FILE])


__all__ = ["HAVE_BEAM", "LoadedModel", "SensoriumModelHandler", "pipeline_flags", "read_shards", "run_beam"]
