"""Run and job folders as untrusted input ("Untrusted files and inputs", items 6, 9, 11, 12, 13): files
are never written through symbolic links, one bad item never stops a batch job, later evaluations never
overwrite what training recorded, `--overwrite` keeps the old run until the new one has started, and
malformed JSON or text files are one-line errors naming the file.

Most tests use a fake BatchTask and hand-made run directories (no TensorFlow); a few run the CLI on a
copy of the bundled MNIST run."""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import pytest

from sensorium.pipelines.batch import job as job_module
from sensorium.pipelines.batch.job import JOB_FILE, METRICS_FILE, REPORT_FILE, RESULTS_FILE, read_results, run_job
from sensorium.pipelines.batch.task import BatchTask, EvalItem, ItemList
from sensorium.pipelines.common.artifacts import Artifact, inspect_artifact
from sensorium.pipelines.common.rundir import RunDir, evaluation_name, read_json_object
from sensorium.runtime.atomic import atomic_write_text, open_nofollow
from sensorium.runtime.errors import DataError, ModelError

ROOT = Path(__file__).resolve().parents[2]
MNIST = ROOT / "assets" / "models" / "mnist"
PH17 = " ".join(f"<ph{i}>" for i in range(17))


# === A fake task: fast jobs without a model ===
class FakeTask(BatchTask):
    """Upper-cases texts. "unloadable" fails to load, "bad" breaks its batch's prediction (as 17 literal
    <phN> strings did in placeholder protection), "nan" predicts a value JSON cannot hold."""

    task, kind = "fake", "text"

    def __init__(self, options: dict[str, Any] | None = None, context: dict[str, Any] | None = None) -> None:
        super().__init__(options, context)
        self.predicted: list[str] = []

    def list_items(self, artifact: Artifact, data: str | None) -> ItemList:
        raise NotImplementedError

    def load_model(self, artifact: Artifact) -> Any:
        return None

    def load(self, item: EvalItem) -> Any:
        if item.payload == "unloadable":
            raise KeyError("no such column")
        return item.payload

    def predict(self, model: Any, inputs: list[Any]) -> list[dict[str, Any]]:
        if PH17 in inputs:
            raise ValueError("text has 17 distinct literal <phN> strings;\nat most 16 can be protected")
        self.predicted += inputs
        return [{"text": math.nan if x == "nan" else x.upper()} for x in inputs]

    def metrics(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        return {"exact": sum(r["text"] == r["reference"] for r in records) / len(records)}


TEXTS = ["a", "b", PH17, "c", "unloadable", "nan", "d", "e"]


@pytest.fixture
def fake_job(tmp_path, monkeypatch) -> FakeTask:
    """`run_job(anything, ...)` evaluates TEXTS with a FakeTask (returned, to count its predictions)."""
    model = tmp_path / "model.keras"
    model.write_bytes(b"fake model bytes")
    task = FakeTask()
    items = [EvalItem(i, f"t{i}", text, text.upper()) for i, text in enumerate(TEXTS)]
    listing = ItemList("fake:data", "test", items)
    monkeypatch.setattr(job_module, "open_job", lambda *a, **k: (Artifact("keras", model, "fake"), task, listing,
                                                                 items))
    return task


def _records(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / RESULTS_FILE).read_text().splitlines()]


# === Item 9: one bad item never stops a job ===
def test_any_failure_of_one_item_is_its_record_and_the_job_goes_on(fake_job, tmp_path):
    out = tmp_path / "job"
    result = run_job("m", "d", out, batch_size=3, progress=False)
    records = {r["id"]: r for r in _records(out)}
    assert len(records) == len(TEXTS) and result["metrics"]["failed"] == 3 and result["count"] == 5
    assert records["t2"]["error"] == ("ValueError: text has 17 distinct literal <phN> strings; at most 16 can be "
                                      "protected")  # one line
    assert records["t4"]["error"] == "KeyError: 'no such column'"
    assert records["t5"]["error"].startswith("ValueError: Out of range float values are not JSON compliant")
    assert all(records[f"t{i}"]["ok"] and records[f"t{i}"]["text"] == TEXTS[i].upper() for i in (0, 1, 3, 6, 7))
    # the same command again: nothing is evaluated twice, the same metrics
    predicted = list(fake_job.predicted)
    assert run_job("m", "d", out, batch_size=3, progress=False)["metrics"] == result["metrics"]
    assert fake_job.predicted == predicted


def test_a_job_stopped_midway_resumes_past_its_bad_items(fake_job, tmp_path):
    def stop(done: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_job("m", "d", tmp_path / "job", batch_size=4, progress=False, after_batch=stop)
    assert [r["index"] for r in _records(tmp_path / "job")] == [0, 1, 2, 3]
    assert run_job("m", "d", tmp_path / "job", batch_size=4, progress=False)["job"]["items"] == len(TEXTS)


def test_beam_handler_records_failures_per_item():
    pytest.importorskip("apache_beam")
    from sensorium.pipelines.batch.beam import LoadedModel, SensoriumModelHandler

    handler = SensoriumModelHandler("m", "fake", {}, {}, {"t9": "empty text"}, 4, progress=False)
    items = [EvalItem(i, f"t{i}", text, text.upper()) for i, text in enumerate(TEXTS)] + [EvalItem(9, "t9", None, "")]
    records = handler.run_inference(items, LoadedModel(FakeTask(), None))
    assert [r["index"] for r in records] == [*range(len(TEXTS)), 9]
    assert [r["id"] for r in records if not r["ok"]] == ["t2", "t4", "t5", "t9"]


# === Item 6: nothing is written through a symbolic link ===
@pytest.fixture
def victim(tmp_path) -> Path:
    """A file outside the job or run folder that a link points at."""
    path = tmp_path / "outside" / "precious.txt"
    path.parent.mkdir()
    path.write_text("precious\n")
    return path


@pytest.mark.parametrize("name", [RESULTS_FILE, JOB_FILE, METRICS_FILE, REPORT_FILE])
def test_job_files_are_never_written_through_links(fake_job, tmp_path, victim, name):
    out = tmp_path / "job"
    out.mkdir()
    (out / name).symlink_to(victim)
    with pytest.raises(DataError, match=f"{name} is a symbolic link"):
        run_job("m", "d", out, batch_size=3, progress=False)
    assert victim.read_text() == "precious\n" and (out / name).is_symlink()


def test_a_results_link_planted_after_the_job_started_is_refused(fake_job, tmp_path, victim):
    out = tmp_path / "job"

    def stop(done: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_job("m", "d", out, batch_size=4, progress=False, after_batch=stop)
    (out / RESULTS_FILE).unlink()
    (out / RESULTS_FILE).symlink_to(victim)
    with pytest.raises(DataError, match=f"{RESULTS_FILE} is a symbolic link"):
        run_job("m", "d", out, batch_size=4, progress=False)
    with pytest.raises(DataError, match="symbolic link"):  # reading and cutting a torn tail: not through it either
        read_results(out / RESULTS_FILE)
    assert victim.read_text() == "precious\n"


def test_job_plots_and_shard_folders_are_never_links(fake_job, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "job"
    out.mkdir()
    (out / "plots").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(DataError, match="plots is a symbolic link"):
        run_job("m", "d", out, progress=False)
    (out / "plots").unlink()
    (out / "shard-0-of-2").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(DataError, match="shard-0-of-2 is a symbolic link"):
        run_job("m", "d", out, shard=job_module.parse_shard("0/2"), progress=False)
    assert list(elsewhere.iterdir()) == []


def _run_dir(path: Path, status: str = "complete", **config: Any) -> RunDir:
    """A hand-made image run directory (no real model)."""
    path.mkdir(parents=True)
    (path / "sensorium.json").write_text(json.dumps({"schema_version": 1, "task": "image", "status": status}))
    (path / "config.json").write_text(json.dumps({"data": {"spec": "builtin:mnist"}, **config}))
    (path / "model.keras").write_bytes(b"not read here")
    (path / "labels.txt").write_text("a\nb\n")
    return RunDir(path)


def test_run_directory_files_are_never_written_through_links(tmp_path, victim):
    run = _run_dir(tmp_path / "run", status="training")
    (run.path / "metrics.json").symlink_to(victim)
    with pytest.raises(DataError, match="metrics.json is a symbolic link"):
        run.write_json("metrics.json", {"x": 1})
    (run.path / "plots").symlink_to(victim.parent, target_is_directory=True)
    with pytest.raises(DataError, match="plots is a symbolic link"):
        run.sub("plots")
    with pytest.raises(DataError, match="is a symbolic link"):  # training writes all over it: refused at once
        RunDir.create(run.path, "image", resume=True)
    assert victim.read_text() == "precious\n" and sorted(p.name for p in victim.parent.iterdir()) == ["precious.txt"]


def test_shared_helpers_replace_or_refuse_links(tmp_path, victim):
    link = tmp_path / "link.txt"
    link.symlink_to(victim)
    with pytest.raises(DataError, match="link.txt is a symbolic link"):
        open_nofollow(link, "a")
    atomic_write_text(link, "new")  # an atomic write replaces the link itself, never writes through it
    assert not link.is_symlink() and link.read_text() == "new" and victim.read_text() == "precious\n"


# === Item 13: malformed files are one line naming the file ===
@pytest.mark.parametrize("text, problem", [
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ('{"a": ' * 200 + "1" + "}" * 200, "nested more than 64 levels"),
    ("[1, 2]", "expected a JSON object, not a list"),
    ('{"task": 5, "status": "complete"}', "task: expected a string, not an integer"),
    ('{"task": "image", "status": "done"}', "status: expected one of complete, failed, training"),
    ('{"task": "image", "status": "complete", "worker": 5}', "worker: expected null or an object, not an integer"),
    ('{"task": "image"}', "status is missing"),
    (b"\xff\xfe{}", "not UTF-8 text"),
    ('{"task": "image", "status": "complete", "pad": "' + "x" * (1 << 20) + '"}', "larger than 1 MB"),
])
def test_bad_manifests(tmp_path, text, problem):
    run = _run_dir(tmp_path / "run")
    if isinstance(text, bytes):
        run.manifest_path.write_bytes(text)
    else:
        run.manifest_path.write_text(text)
    with pytest.raises(ModelError) as err:
        inspect_artifact(run.path)
    message = str(err.value)
    assert message.startswith(f"{run.manifest_path}: ") and problem in message
    assert "\n" not in message and len(message) < 300


def test_bad_labels_config_and_saved_model_files(tmp_path):
    from sensorium.pipelines.common.evaluation import evaluation_setup
    from sensorium.pipelines.image.config import DataConfig, ImageClassificationConfig

    run = _run_dir(tmp_path / "run")
    run.labels_path.write_bytes(b"\xffcat\n")
    with pytest.raises(ModelError, match=r"labels.txt: not UTF-8 text \(byte 0\)"):
        inspect_artifact(run.path)
    run.labels_path.write_text("cat\n")
    setup = lambda: evaluation_setup(run.path, "image", ImageClassificationConfig, DataConfig, None, None)  # noqa: E731
    run.config_path.write_text(json.dumps({"data": {"spec": "builtin:mnist"}, "labels": 5}))
    with pytest.raises(ModelError, match=r"config.json: unknown key\(s\) labels"):
        setup()
    run.config_path.write_text(json.dumps({"data": 5}))
    with pytest.raises(ModelError, match="config.json: data: expected an object, not an integer"):
        setup()
    run.config_path.write_text(json.dumps({"data": {"spec": "builtin:mnist"}, "train": {"epochs": "x" * 10**6}}))
    with pytest.raises(ModelError) as err:
        setup()
    assert "train.epochs: expected int" in str(err.value) and len(str(err.value)) < 400
    saved = tmp_path / "sm"
    (saved / "assets").mkdir(parents=True)
    (saved / "saved_model.pb").write_bytes(b"")
    (saved / "assets" / "sensorium.json").write_text('{"task": "image", "labels": [1, 2]}')
    with pytest.raises(ModelError, match=r"sensorium.json: labels\[0\]: expected a string, not an integer"):
        inspect_artifact(saved)


@pytest.mark.parametrize("text, problem", [
    ("[]", "expected a JSON object, not a list"),
    ("[" * 10_000 + "]" * 10_000, "nested too deeply"),
    ('{"task": "fake"}', "model_sha256 is missing"),
    (None, "sessions[0].items: expected an integer, not a string"),  # None: the job's own, one field changed
])
def test_bad_job_descriptions(fake_job, tmp_path, text, problem):
    out = tmp_path / "job"
    run_job("m", "d", out, progress=False)
    if text is None:
        text = json.dumps({**json.loads((out / JOB_FILE).read_text()), "sessions": [{"items": "9", "seconds": 1}]})
    (out / JOB_FILE).write_text(text)
    with pytest.raises(DataError) as err:
        run_job("m", "d", out, progress=False)
    message = str(err.value)
    assert message.startswith(f"{out / JOB_FILE}: ") and problem in message and "pass --restart" in message
    assert "\n" not in message


def test_cli_names_the_bad_file_instead_of_an_unexpected_error(tmp_path, capsys):
    from sensorium.apps import main as sensorium_app

    run = _run_dir(tmp_path / "run")
    run.manifest_path.write_text("[" * 100_000)
    assert sensorium_app.main(["evaluate", "--model", str(run.path), "--data", "builtin:mnist@test[:5]"]) == 1
    err = capsys.readouterr().err
    assert f"error: {run.manifest_path}: nested too deeply" in err and "unexpected" not in err


def test_read_json_object_checks_shapes(tmp_path):
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"a": [1, 2, True], "b": {"c": 1.5}}))
    assert read_json_object(path, {"b": {"c": float}, "z?": str})["a"] == [1, 2, True]
    with pytest.raises(ModelError, match=r"a\[2\]: expected an integer, not true or false"):
        read_json_object(path, {"a": [int]})
    with pytest.raises(DataError, match="b.c: expected a string, not a number"):
        read_json_object(path, {"b": {"c": str}}, error=DataError)


# === Item 11: later evaluations never overwrite what training recorded ===
def test_evaluation_destinations(tmp_path):
    from sensorium.pipelines.common.evaluation import destination

    run = _run_dir(tmp_path / "run")
    done = inspect_artifact(run.path)
    assert destination(done, None) == run.path / "evaluations" / "builtin_mnist@test"
    assert destination(done, "/data/my photos@validation[:20%]") == run.path / "evaluations" / \
        "data_my_photos@validation_20"
    assert destination(done, "x", out=tmp_path / "o") == tmp_path / "o"
    training = _run_dir(tmp_path / "training", status="training")  # training's own final evaluation
    assert destination(inspect_artifact(training.path, require_complete=False), "builtin:mnist@test") == training.path
    assert destination(Artifact("tflite", tmp_path / "m.tflite", "image"), "builtin:mnist") is None
    (run.path / "evaluations").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(DataError, match="evaluations is a symbolic link"):
        destination(done, None)


@pytest.mark.parametrize("spec, name", [
    ("builtin:mnist@test", "builtin_mnist@test"), ("builtin:mnist", "builtin_mnist@test"),
    ("tfds:mnist/3.0.1@train[:10%]", "tfds_mnist_3.0.1@train_10"), ("reviews.csv", "reviews.csv@test"),
    ("../data/set@validation", "data_set@validation"), ("x" * 300, "x" * 91),
])
def test_evaluation_names_are_safe_folder_names(spec, name):
    assert evaluation_name(spec).startswith(name) and len(evaluation_name(spec)) <= 100
    assert "/" not in evaluation_name(spec) and not evaluation_name(spec).startswith(".")


def _tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def test_cli_evaluate_writes_its_own_folder_and_says_where(tmp_path, capsys):
    from sensorium.apps import main as sensorium_app

    run = tmp_path / "mnist"
    shutil.copytree(MNIST, run)
    recorded = _tree(run)
    assert sensorium_app.main(["evaluate", "--model", str(run), "--data", "builtin:mnist@test[:40]", "-q"]) == 0
    out = capsys.readouterr().out
    folder = run / "evaluations" / "builtin_mnist@test_40"
    assert f"evaluation written to {folder}" in out
    assert {k: v for k, v in _tree(run).items() if not k.startswith("evaluations/")} == recorded
    assert json.loads((folder / "metrics.json").read_text())["count"] == 40
    assert (folder / "plots" / "confusion_matrix.png").is_file()
    assert sensorium_app.main(["evaluate", "--model", str(run), "--data", "builtin:mnist@test[:40]", "--json"]) == 0
    printed = capsys.readouterr()
    assert json.loads(printed.out) == json.loads((folder / "metrics.json").read_text())
    assert f"evaluation written to {folder}" in printed.err


# === Item 12: --overwrite keeps the old run until the new one has started ===
@pytest.fixture
def old_run(tmp_path) -> RunDir:
    run = _run_dir(tmp_path / "runs" / "r")
    (run.path / "metrics.json").write_text('{"old": true}')
    return run


def test_overwrite_keeps_the_old_run_aside_until_the_first_checkpoint(old_run):
    before = _tree(old_run.path)
    new = RunDir.create(old_run.path, "image", overwrite=True)
    assert new.read_manifest()["status"] == "training" and not new.metrics_path.exists()
    assert _tree(new.replaced_path) == before  # kept aside, whole
    new.set_status("failed")  # failed before its first checkpoint: the old run is back
    assert _tree(old_run.path) == before and not new.replaced_path.exists()

    new = RunDir.create(old_run.path, "image", overwrite=True)
    assert new.settle_replacement() is False  # interrupted before its first checkpoint (train's KeyboardInterrupt)
    assert _tree(old_run.path) == before

    new = RunDir.create(old_run.path, "image", overwrite=True)
    new.sub("checkpoints")
    (new.path / "checkpoints" / "state.json").write_text("{}")
    new.set_status("failed")  # failed after a checkpoint: the new run stands (resumable), the old one is gone
    assert new.read_manifest()["status"] == "failed" and not new.replaced_path.exists()


def test_overwrite_completes_and_recovers_from_a_killed_replacement(old_run):
    before = _tree(old_run.path)
    new = RunDir.create(old_run.path, "image", overwrite=True)
    # the process is killed here; the next --overwrite finds the kept run and a new run that never started
    again = RunDir.create(old_run.path, "image", overwrite=True)
    assert _tree(again.replaced_path) == before
    again.model_path.write_bytes(b"new model")
    again.set_status("complete")
    assert not again.replaced_path.exists() and again.model_path.read_bytes() == b"new model"
    assert new.path == again.path and sorted(p.name for p in old_run.path.parent.iterdir()) == ["r"]


def test_cli_overwrite_that_fails_to_start_keeps_the_old_run(tmp_path, capsys):
    from sensorium.apps import main as sensorium_app

    run = tmp_path / "mnist"
    shutil.copytree(MNIST, run)
    before = _tree(run)
    empty = tmp_path / "empty"
    for name in ("a", "b"):
        (empty / name).mkdir(parents=True)
    assert sensorium_app.main(["train", "image", "--data", str(empty), "--out", str(run), "--overwrite", "-q"]) == 1
    assert "no usable files" in capsys.readouterr().err
    assert _tree(run) == before and sorted(p.name for p in tmp_path.iterdir()) == ["empty", "mnist"]


def test_cli_evaluates_a_bundled_model_by_name_and_writes_nothing_into_the_package(capsys):
    from sensorium.apps import main as sensorium_app

    recorded = _tree(MNIST)
    assert sensorium_app.main(["evaluate", "--model", "digits", "--data", "builtin:mnist-reframed@test[:30]"]) == 0
    out = capsys.readouterr().out
    assert "builtin:mnist-reframed@test[:30] (test, 30 items)" in out and "accuracy" in out
    assert "evaluation written" not in out
    assert _tree(MNIST) == recorded  # no evaluations/ folder inside the installed assets
