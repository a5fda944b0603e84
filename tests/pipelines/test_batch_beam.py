"""The batch evaluation as an Apache Beam pipeline (RunInference, DirectRunner): the same metrics as the
single-process job on the same data, per-item failures as records, every item exactly once.

    python -m pytest -m slow tests/pipelines/test_batch_beam.py
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

MODEL = Path(__file__).resolve().parents[2] / "assets" / "models" / "mnist"
BUILTIN = "builtin:mnist@test[:200]"


def _mnist_or_skip() -> None:
    from sensorium.pipelines.datasets.mnist import mnist_cache_path

    if not mnist_cache_path().is_file():
        pytest.skip(f"builtin:mnist is not cached at {mnist_cache_path()} (run `sensorium data mnist`)")


def _records(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "results.jsonl").read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    """A manifest of 200 MNIST PNGs (20 per digit). Of the items its @test split lists, one is then
    overwritten with junk (corrupt) and one deleted (missing), so both engines meet both failures."""
    _mnist_or_skip()
    from PIL import Image

    from sensorium.pipelines.common.artifacts import inspect_artifact
    from sensorium.pipelines.datasets.mnist import load_mnist
    from sensorium.pipelines.image.batch import ImageBatchTask

    test = load_mnist()["test"]
    root = tmp_path_factory.mktemp("mnist-manifest")
    (root / "images").mkdir()
    rows = ["path,label"]
    for digit in range(10):
        for k in np.flatnonzero(test.labels == digit)[:20]:
            name = f"images/{digit}-{k}.png"
            Image.fromarray(np.asarray(test.refs[k])[..., 0]).save(root / name)
            rows.append(f"{name},{digit}")
    path = root / "manifest.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    listed = ImageBatchTask().list_items(inspect_artifact(MODEL), f"{path}@test").items
    assert len(listed) >= 10
    Path(listed[1].payload).write_bytes(b"this is not an image")
    Path(listed[4].payload).unlink()
    return path


@pytest.fixture
def listing_failure(monkeypatch):
    """Make the image task's listing report one more item that failed while listing (payload None)."""
    from sensorium.pipelines.image.batch import ImageBatchTask

    original = ImageBatchTask.list_items

    def list_items(self, artifact, data):
        listing = original(self, artifact, data)
        listing.failures.append(("ghost.png", "ghost.png: unreadable while listing"))
        return listing

    monkeypatch.setattr(ImageBatchTask, "list_items", list_items)


# === fast: no pipeline runs ===
def test_pipeline_flags():
    from sensorium.pipelines.batch.beam import pipeline_flags
    from sensorium.runtime.errors import UsageError

    assert pipeline_flags("DirectRunner") == ["--runner=DirectRunner", "--direct_num_workers=1"]
    assert pipeline_flags("DirectRunner", ["direct_num_workers=2"]) == ["--runner=DirectRunner",
                                                                         "--direct_num_workers=2"]
    assert pipeline_flags("FlinkRunner", ["flink_master=host:8081", "--environment_type=LOOPBACK",
                                          "save_main_session"]) == [
        "--runner=FlinkRunner", "--flink_master=host:8081", "--environment_type=LOOPBACK", "--save_main_session"]
    for bad in (["=x"], ["two words=x"], ["runner=DataflowRunner"]):
        with pytest.raises(UsageError):
            pipeline_flags("DirectRunner", bad)
    with pytest.raises(UsageError):
        pipeline_flags("not a runner")


def test_missing_beam_is_one_line(monkeypatch, tmp_path):
    from sensorium.pipelines.batch import beam
    from sensorium.runtime.errors import MissingExtraError

    monkeypatch.setattr(beam, "HAVE_BEAM", False)
    with pytest.raises(MissingExtraError, match=r'pip install "sensorium\[beam\]"'):
        beam.run_beam(MODEL, BUILTIN, tmp_path / "out")


def test_cli_runner_usage_errors(tmp_path, capsys):
    from sensorium.apps.main import main

    cases = [
        (["--runner", "DirectRunner"], "--runner needs --out"),
        (["--runner", "DirectRunner", "--out", str(tmp_path), "--shard", "0/2"], "--runner takes no --shard"),
        (["--out", str(tmp_path), "--pipeline-option", "project=p"], "--pipeline-option needs --runner"),
    ]
    for extra, message in cases:
        assert main(["evaluate", "--model", str(MODEL), "--data", BUILTIN, *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1


def test_unknown_pipeline_option_and_runner(tmp_path):
    pytest.importorskip("apache_beam")
    from sensorium.pipelines.batch.beam import run_beam
    from sensorium.runtime.errors import UsageError

    with pytest.raises(UsageError, match="unknown Beam pipeline option: projct"):
        run_beam(MODEL, BUILTIN, tmp_path / "a", pipeline_options=["projct=p"])
    with pytest.raises(UsageError, match="Beam cannot run on NoSuchRunner"):
        run_beam(MODEL, BUILTIN, tmp_path / "b", runner="NoSuchRunner")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


# === slow: pipelines on the DirectRunner ===
@pytest.mark.slow
@pytest.mark.parametrize("data", ["builtin", "manifest"])
def test_beam_metrics_equal_the_single_process_job(data, request, tmp_path, listing_failure):
    pytest.importorskip("apache_beam")
    _mnist_or_skip()
    from sensorium.pipelines.batch.beam import run_beam
    from sensorium.pipelines.batch.job import run_job

    spec = BUILTIN if data == "builtin" else f"{request.getfixturevalue('manifest')}@test"
    single = run_job(MODEL, spec, tmp_path / "job", batch_size=32, progress=False)
    beamed = run_beam(MODEL, spec, tmp_path / "beam", batch_size=32, progress=False)

    assert beamed["metrics"] == single["metrics"]
    assert (beamed["count"], beamed["job"]["items"], beamed["job"]["failed"]) == (
        single["count"], single["job"]["items"], single["job"]["failed"])
    records = _records(tmp_path / "beam")
    assert [r["index"] for r in records] == list(range(beamed["job"]["items"]))
    assert [(r["id"], r["ok"], r.get("label"), r.get("error")) for r in records] == [
        (r["id"], r["ok"], r.get("label"), r.get("error")) for r in _records(tmp_path / "job")]
    errors = {r["id"]: r["error"] for r in records if not r["ok"]}
    assert errors["ghost.png"] == "ghost.png: unreadable while listing"
    if data == "manifest":
        assert len(errors) == 3
        assert any("not an image" in e for e in errors.values())
        assert any("no such file" in e for e in errors.values())
    else:
        assert len(errors) == 1
    job = json.loads((tmp_path / "beam" / "job.json").read_text(encoding="utf-8"))
    assert (job["status"], job["engine"], job["runner"]) == ("complete", "beam", "DirectRunner")
    assert json.loads((tmp_path / "beam" / "metrics.json").read_text(encoding="utf-8")) == beamed
    assert (tmp_path / "beam" / "report.md").is_file()


@pytest.mark.slow
def test_cli_runs_the_beam_pipeline(tmp_path, capsys):
    pytest.importorskip("apache_beam")
    _mnist_or_skip()
    from sensorium.apps.main import main

    out = tmp_path / "out"
    argv = ["evaluate", "--model", str(MODEL), "--data", "builtin:mnist@test[:40]", "--out", str(out),
            "--runner", "DirectRunner", "--pipeline-option", "direct_num_workers=1", "--batch-size", "16", "--json"]
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed == json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert printed["count"] == 40 and printed["job"]["failed"] == 0
    assert len(_records(out)) == 40
    # another model's job in the same folder is refused; --restart replaces it
    (out / "job.json").write_text(json.dumps({**json.loads((out / "job.json").read_text()), "model_sha256": "x"}))
    assert main(argv) == 2
    assert "holds another evaluation" in capsys.readouterr().err
    assert main(argv + ["--restart"]) == 0


@pytest.mark.slow
def test_worker_failure_is_one_line(monkeypatch, tmp_path):
    pytest.importorskip("apache_beam")
    _mnist_or_skip()
    from sensorium.pipelines.batch.beam import run_beam
    from sensorium.pipelines.image.batch import ImageBatchTask
    from sensorium.runtime.errors import ModelError

    def broken(self, artifact):
        raise ModelError(f"{artifact.path}: cannot load the model (test)")

    monkeypatch.setattr(ImageBatchTask, "load_model", broken)
    with pytest.raises(ModelError) as info:
        run_beam(MODEL, "builtin:mnist@test[:8]", tmp_path / "out", progress=False)
    assert str(info.value) == f"{MODEL}: cannot load the model (test)"
    assert not (tmp_path / "out" / "metrics.json").exists()
