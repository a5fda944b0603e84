"""Batch evaluation jobs of the text tasks (sentiment, translation) on the bundled models: the job's
metrics equal the in-memory evaluation's, bad rows are recorded failures, every artifact kind runs,
and the report has the task's sections. (Images: test_batch_job.py; speech: tests/apps/test_speech_training.py.)"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from sensorium.pipelines.batch.job import RESULTS_FILE, run_job
from sensorium.runtime.errors import UsageError

ROOT = Path(__file__).resolve().parents[2]
SENTIMENT = ROOT / "assets" / "models" / "sentiment"
TRANSLATION = ROOT / "assets" / "models" / "translation"

TWEETS = [
    ("I love this airline, the crew was great", "positive"), ("Delayed three hours and nobody told us anything",
                                                             "negative"),
    ("Flight 123 lands at 5pm", "neutral"), ("Worst customer service ever, lost my bag again", "negative"),
    ("Thanks for the upgrade, you made my day!", "positive"), ("Is the lounge open on Sundays?", "neutral"),
    ("Cancelled again. Unbelievable.", "negative"), ("Smooth flight and friendly staff, thank you", "positive"),
    ("What is the baggage allowance for infants?", "neutral"), ("", "negative"),
    ("Two hours on the tarmac with no water", "negative"), ("Great job getting us home early", "positive"),
]


def _records(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / RESULTS_FILE).read_text().splitlines()]


def test_sentiment_job_equals_in_memory_evaluation(tmp_path):
    from sensorium.pipelines.sentiment.evaluate import evaluate

    csv = tmp_path / "tweets.csv"
    csv.write_text("text,label\n" + "".join(f'"{t}",{label}\n' for t, label in TWEETS * 5), encoding="utf-8")
    spec = f"{csv}@train"
    result = run_job(SENTIMENT, spec, tmp_path / "job", batch_size=16, progress=False)
    quick = evaluate(SENTIMENT, spec, out=tmp_path / "quick")
    for key in ("accuracy", "macro_f1", "confusion_matrix", "binary_accuracy", "binary_count"):
        assert result["metrics"][key] == quick["metrics"][key]
    assert result["count"] == quick["count"]
    records = _records(tmp_path / "job")
    failed = [r for r in records if not r["ok"]]
    assert len(failed) == result["metrics"]["failed"] == quick["metrics"].get("skipped", 0) >= 1
    assert all("empty" in r["error"] for r in failed)
    ok = next(r for r in records if r["ok"])
    assert set(ok["probabilities"]) and ok["label"] in ("negative", "neutral", "positive")
    report = (tmp_path / "job" / "report.md").read_text()
    assert "## By length" in report and "## Most confident mistakes" in report and "## Failed items" in report
    # the exported .tflite runs the same job; its decisions agree with the Keras model's
    edge = run_job(SENTIMENT / "exports" / "model-float32.tflite", spec, tmp_path / "edge", progress=False)
    assert abs(edge["metrics"]["accuracy"] - result["metrics"]["accuracy"]) <= 0.02


def test_translation_job_every_artifact_kind(tmp_path, capsys):
    from sensorium.pipelines.translation.evaluate import evaluate

    pairs = [("Delete %(name)s?", "%(name)s löschen?"), ("Save", "Speichern"), ("Cancel", "Abbrechen"),
             ("The file %s could not be opened.", "Die Datei %s konnte nicht geöffnet werden."),
             ("<b>Warning:</b> {count} files", "<b>Warnung:</b> {count} Dateien"), ("Search", "Suchen"),
             ("Add user", "Benutzer hinzufügen"), ("Password", "Passwort"), ("Log out", "Abmelden"),
             ("Change password", "Passwort ändern")] * 3
    tsv = tmp_path / "pairs.tsv"
    tsv.write_text("source\ttarget\n" + "".join(f"{s}\t{t}\n" for s, t in pairs) + "\tleer\n", encoding="utf-8")
    spec = f"{tsv}@train"
    result = run_job(TRANSLATION, spec, tmp_path / "job", options={"beam": 1}, batch_size=32, progress=False)
    quick = evaluate(TRANSLATION, spec, out=tmp_path / "quick", beam=1, batch_size=32)
    assert [result["metrics"][k] for k in ("chrf", "bleu")] == [quick["metrics"][k] for k in ("chrf", "bleu")]
    assert result["metrics"]["placeholders_preserved"] == 1.0 and result["metrics"]["beam"] == 1
    records = _records(tmp_path / "job")
    assert {"source", "translation", "reference"} <= set(next(r for r in records if r["ok"]))
    assert result["metrics"]["failed"] == quick["metrics"].get("skipped", 0)
    report = (tmp_path / "job" / "report.md").read_text()
    assert "## By source length" in report and "## Worst translations" in report
    assert (tmp_path / "job" / "plots" / "chrf_by_length.png").is_file()
    edge = run_job(TRANSLATION / "exports" / "model-dynamic.tflite", spec, tmp_path / "edge", options={"beam": 1},
                   progress=False)
    assert edge["count"] == result["count"] and edge["metrics"]["placeholders_preserved"] == 1.0
    assert abs(edge["metrics"]["chrf"] - result["metrics"]["chrf"]) < 10
    # the command line: text output, exit 1 because an item failed (the empty source)
    from sensorium.apps import main as sensorium_app

    code = sensorium_app.main(["evaluate", "--model", str(TRANSLATION), "--data", spec, "--out", str(tmp_path / "cli"),
                               "--beam", "1", "--batch-size", "32"])
    printed = capsys.readouterr().out
    assert code == 1 and "1 failed" in printed and f"chrF {result['metrics']['chrf']:.2f}" in printed
    # a translation SavedModel decodes greedily: beam search is refused in one line
    saved = tmp_path / "sm"
    from sensorium.export.api import export

    export(TRANSLATION, "saved_model", out=str(saved), parity_data=f"{tsv}@train[:4]")
    with pytest.raises(UsageError, match="decodes greedily"):
        run_job(saved, spec, tmp_path / "sm-job", options={"beam": 4}, progress=False)
    sm = run_job(saved, spec, tmp_path / "sm-job", progress=False)
    assert sm["metrics"]["beam"] == 1 and sm["metrics"]["chrf"] == pytest.approx(result["metrics"]["chrf"], abs=1.0)


def test_translation_job_goes_on_past_texts_that_break_placeholder_protection(tmp_path):
    """Texts with 17 distinct literal <phN> strings made placeholder protection raise a bare ValueError, and
    `evaluate --out` failed on every rerun with 0 records: any failure of one item is now its record."""
    ph17 = " ".join(f"<ph{i}>" for i in range(17))
    words = ["Save", "Cancel", "Search", "Password", "Delete", "Open", "Print", "Copy", "Edit", "Move"]
    rows = [(w, w) for w in words] + [(f"{w} {ph17}", f"{w} {ph17}") for w in words]
    tsv = tmp_path / "pairs.tsv"
    tsv.write_text("source\ttarget\n" + "".join(f"{s}\t{t}\n" for s, t in rows), encoding="utf-8")
    result = run_job(TRANSLATION, f"{tsv}@train", tmp_path / "job", options={"beam": 1}, batch_size=4, progress=False)
    records = _records(tmp_path / "job")
    assert len(records) == result["job"]["items"] >= 10 and result["count"] >= 1
    assert all(r["ok"] or ("\n" not in r["error"] and r["id"]) for r in records)
    assert all(r["ok"] for r in records if "<ph" not in r["reference"])  # only the texts with the strings may fail
    again = run_job(TRANSLATION, f"{tsv}@train", tmp_path / "job", options={"beam": 1}, progress=False)
    assert again["metrics"] == result["metrics"] and _records(tmp_path / "job") == records
