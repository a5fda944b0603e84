"""Batch evaluation jobs (pipelines/batch): per-item results, failures recorded, exact resumption after
kills (real SIGKILLs of a separate process, and torn lines), shards and their merge, refusal to mix
two evaluations. On the bundled MNIST model and real digits."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sensorium.apps import main as sensorium_app
from sensorium.pipelines.batch.job import RESULTS_FILE, merge_shards, parse_shard, read_results, run_job
from sensorium.runtime.errors import DataError, UsageError

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "assets" / "models" / "mnist"
DIGITS = "builtin:mnist@test[:600]"


def _records(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / RESULTS_FILE).read_text().splitlines()]


def _same_records(a: list[dict], b: list[dict]) -> None:
    """The same items, outcomes and labels; probabilities equal to float32 rounding (a batch of another
    composition may change the last bits of a model's outputs, never its decisions here)."""
    assert [(r["index"], r["id"], r["ok"], r.get("label")) for r in a] == [
        (r["index"], r["id"], r["ok"], r.get("label")) for r in b]
    assert np.allclose([r["probabilities"] for r in a], [r["probabilities"] for r in b], rtol=1e-4, atol=1e-6)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    """One uninterrupted job over 600 digits."""
    out = tmp_path_factory.mktemp("reference")
    return {"out": out, "result": run_job(MODEL, DIGITS, out, batch_size=50, progress=False)}


def test_job_writes_records_metrics_and_report(reference, tmp_path):
    out, result = reference["out"], reference["result"]
    records = _records(out)
    assert [r["index"] for r in records] == list(range(600)) and all(r["ok"] for r in records)
    assert {"id", "reference", "label", "score", "probabilities"} <= set(records[0])
    assert result["count"] == 600 and result["metrics"]["failed"] == 0
    assert json.loads((out / "metrics.json").read_text()) == result
    from sensorium.pipelines.image.evaluate import evaluate

    quick = evaluate(MODEL, DIGITS, out=tmp_path / "quick")  # the in-memory evaluation: the same numbers
    for key in ("accuracy", "top_5_accuracy", "macro_f1", "per_class", "confusion_matrix"):
        assert result["metrics"][key] == quick["metrics"][key]
    assert result["metrics"]["accuracy"] > 0.95
    report = (out / "report.md").read_text()
    assert "## Most confident mistakes" in report and "| accuracy |" in report and "## By class" in report
    for plot in ("confusion_matrix.png", "f1_by_class.png"):
        assert (out / "plots" / plot).read_bytes()[:4] == b"\x89PNG"
    job = json.loads((out / "job.json").read_text())
    assert job["status"] == "complete" and job["throughput"]["items_evaluated"] == 600
    # run again: nothing left to do, the same metrics
    again = run_job(MODEL, DIGITS, out, batch_size=50, progress=False)
    assert again["metrics"] == result["metrics"] and _records(out) == records


@pytest.fixture
def manifest(tmp_path) -> Path:
    """60 real digits (3s and 7s) as PNG files listed in a CSV; 6 are corrupt or missing."""
    from sensorium.pipelines.datasets.mnist import load_mnist

    items = load_mnist()["test"]
    picked = [i for i in range(len(items.ids)) if items.label_names[items.labels[i]] == "3"][:30]
    picked += [i for i in range(len(items.ids)) if items.label_names[items.labels[i]] == "7"][:30]
    rows = ["path,label"]
    for n, i in enumerate(picked):
        Image.fromarray(items.refs[i]).save(tmp_path / f"d{n:02d}.png")
        rows.append(f"d{n:02d}.png,{items.label_names[items.labels[i]]}")
    for n in (3, 11, 19, 27, 35, 43):
        if n % 2:
            (tmp_path / f"d{n:02d}.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
        else:
            (tmp_path / f"d{n:02d}.png").unlink()
    (tmp_path / "digits.csv").write_text("\n".join(rows) + "\n")
    return tmp_path / "digits.csv"


def test_unreadable_items_are_recorded_and_the_job_goes_on(manifest, tmp_path):
    from sensorium.pipelines.image.evaluate import evaluate

    result = run_job(MODEL, str(manifest), tmp_path / "job", batch_size=4, progress=False)
    records = _records(tmp_path / "job")
    bad = [r for r in records if not r["ok"]]
    listed = {r["id"] for r in records}
    broken = {f"d{n:02d}.png" for n in (3, 11, 19, 27, 35, 43)}
    expect_bad = {i for i in listed if any(i.endswith(b) for b in broken)}
    assert {r["id"] for r in bad} == expect_bad and all(r["error"] for r in bad)
    assert result["metrics"]["failed"] == len(bad) and result["count"] == len(records) - len(bad)
    quick = evaluate(MODEL, str(manifest), out=tmp_path / "quick")  # skips the unreadable ones itself
    assert result["metrics"]["confusion_matrix"] == quick["metrics"]["confusion_matrix"]
    report = (tmp_path / "job" / "report.md").read_text()
    if bad:
        assert f"## Failed items ({len(bad)})" in report
    # every item of the whole manifest: failures included, each once
    whole = run_job(MODEL, f"{manifest}@train", tmp_path / "whole", batch_size=8, progress=False)
    failed = [r for r in _records(tmp_path / "whole") if not r["ok"]]
    assert whole["metrics"]["failed"] == len(failed) >= 1
    assert all("d" in r["id"] and r["error"] for r in failed)


def test_torn_line_and_interruptions_resume_exactly(reference, tmp_path, caplog):
    out = tmp_path / "job"

    def stop_after(n_batches: int):
        seen = {"n": 0}

        def hook(done: int) -> None:
            seen["n"] += 1
            if seen["n"] == n_batches:
                raise KeyboardInterrupt
        return hook

    for n in (3, 2, 4):
        with pytest.raises(KeyboardInterrupt):
            run_job(MODEL, DIGITS, out, batch_size=25, progress=False, after_batch=stop_after(n))
        with open(out / RESULTS_FILE, "a") as fh:  # a write cut by a kill
            fh.write('{"index": 599, "id": "mnist:')
    with caplog.at_level("WARNING"):
        result = run_job(MODEL, DIGITS, out, batch_size=25, progress=False)
    assert "damaged or unfinished tail" in caplog.text
    assert result["metrics"] == reference["result"]["metrics"]
    _same_records(_records(out), _records(reference["out"]))
    assert json.loads((out / "job.json").read_text())["throughput"]["sessions"] == 4


def test_killed_three_times_at_random_points(reference, tmp_path):
    """A separate process is SIGKILLed three times at random moments (each after a random number of
    new results, or during start-up), then a fourth run finishes. The results hold every item once
    and the metrics equal the uninterrupted job's."""
    out = tmp_path / "job"
    seed = int.from_bytes(os.urandom(4), "little")
    rng = random.Random(seed)
    cmd = [sys.executable, "-c", "import sys; from sensorium.apps.main import main; sys.exit(main())", "evaluate",
           "--model", str(MODEL), "--data", DIGITS, "--out", str(out), "--batch-size", "10", "--quiet"]

    def count() -> int:
        try:
            return (out / RESULTS_FILE).read_bytes().count(b"\n")
        except FileNotFoundError:
            return 0

    kills = []
    for _ in range(3):
        before = count()
        target = before if rng.random() < 0.25 else before + rng.randint(1, 150)  # before: during start-up
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started = time.monotonic()
        # TensorFlow's import alone takes longer than 2 s
        deadline = started + (rng.uniform(0.2, 2.0) if target == before else 120)
        while proc.poll() is None and time.monotonic() < deadline and (target == before or count() < target):
            time.sleep(0.002)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        kills.append((round(time.monotonic() - started, 2), count()))
    assert count() < 600, f"seed {seed}: the job finished before the third kill ({kills})"
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    records = _records(out)
    assert [r["index"] for r in records] == list(range(600)), f"seed {seed}, kills {kills}"
    _same_records(records, _records(reference["out"]))
    assert json.loads((out / "metrics.json").read_text())["metrics"] == reference["result"]["metrics"]


def test_shards_merge_to_the_whole(reference, tmp_path):
    out = tmp_path / "sharded"
    for i in range(3):
        run_job(MODEL, DIGITS, out, shard=parse_shard(f"{i}/3"), batch_size=40, progress=False)
    assert {r["index"] % 3 for r in _records(out / "shard-1-of-3")} == {1}
    merged = merge_shards(out)
    assert merged["metrics"] == reference["result"]["metrics"]
    _same_records(_records(out), _records(reference["out"]))
    assert json.loads((out / "job.json").read_text())["merged_from"] == [f"shard-{i}-of-3" for i in range(3)]


def test_merge_refuses_missing_unfinished_or_different_shards(tmp_path):
    out = tmp_path / "parts"
    data = "builtin:mnist@test[:60]"
    run_job(MODEL, data, out, shard=parse_shard("0/2"), batch_size=10, progress=False)
    with pytest.raises(DataError, match=r"shard 1/2 is missing .*run it with --shard 1/2"):
        merge_shards(out)

    def stop(done: int) -> None:
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        run_job(MODEL, data, out, shard=parse_shard("1/2"), batch_size=10, progress=False, after_batch=stop)
    with pytest.raises(DataError, match=r"shard 1/2 is not finished"):
        merge_shards(out)
    with pytest.raises(UsageError, match="holds another evaluation"):  # the same folder, other data
        run_job(MODEL, "builtin:mnist@test[:70]", out, shard=parse_shard("1/2"), progress=False)
    run_job(MODEL, "builtin:mnist@test[:70]", out, shard=parse_shard("1/2"), progress=False, restart=True)
    with pytest.raises(DataError, match=r"shard 1/2 evaluated something else"):
        merge_shards(out)
    run_job(MODEL, data, out, shard=parse_shard("1/2"), progress=False, restart=True)
    assert merge_shards(out)["count"] == 60
    # a shard's results edited by hand are caught
    lines = (out / "shard-0-of-2" / RESULTS_FILE).read_text().splitlines()
    (out / "shard-0-of-2" / RESULTS_FILE).write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(DataError, match=r"shard 0/2 holds 29 of its 30 items"):
        merge_shards(out)
    with pytest.raises(DataError, match="no shard folders"):
        merge_shards(tmp_path / "nothing")


def test_read_results_stops_at_damage(tmp_path):
    path = tmp_path / RESULTS_FILE
    path.write_text('{"index": 0, "ok": true}\n{"index": 2, "ok": true}\n{"index": 2, "ok": true}\n{"ind')
    assert sorted(read_results(path, accept=lambda i: i % 2 == 0)) == [0, 2]
    assert path.read_text() == '{"index": 0, "ok": true}\n{"index": 2, "ok": true}\n'
    path.write_text('{"index": 0}\n\x00\x00\x00\n{"index": 1}\n')
    with pytest.raises(DataError, match="damaged after 1 records"):
        read_results(path, repair=False)


@pytest.mark.parametrize("text", ["3", "1/1/2", "2/2", "-1/3", "a/b", "0/0"])
def test_parse_shard_rejects(text):
    with pytest.raises(UsageError, match="--shard"):
        parse_shard(text)


def test_cli_job_shards_and_merge(tmp_path, capsys):
    data = "builtin:mnist@test[:40]"
    for i in range(2):
        assert sensorium_app.main(["evaluate", "--model", str(MODEL), "--data", data, "--out", str(tmp_path),
                                   "--shard", f"{i}/2", "--batch-size", "8"]) == 0
    assert sensorium_app.main(["evaluate", "--merge", str(tmp_path), "--json"]) == 0
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(printed) == json.loads((tmp_path / "metrics.json").read_text())
    assert sensorium_app.main(["evaluate", "--merge", str(tmp_path), "--model", str(MODEL)]) == 2
    assert sensorium_app.main(["evaluate", "--model", str(MODEL), "--shard", "0/2"]) == 2
    assert sensorium_app.main(["evaluate", "--model", str(MODEL), "--out", str(tmp_path / "x"),
                               "--shard", "5/2"]) == 2
    err = capsys.readouterr().err
    assert "need --out" in err and "--shard 5/2" in err and "Traceback" not in err


def test_record_numbers_survive_json(reference):
    """Probabilities written to JSON read back to the same float32 values the model produced."""
    records = _records(reference["out"])
    probs = np.asarray([r["probabilities"] for r in records], np.float32)
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    assert [r["label"] for r in records] == [str(int(p.argmax())) for p in probs]
