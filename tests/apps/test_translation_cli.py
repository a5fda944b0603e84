"""Translation end to end, in-process: train a tiny encoder-decoder on toy pairs, evaluate, `translate`
(placeholders, odd and bad inputs), export to TFLite (encode + decode_step) and to a string-in /
string-out SavedModel, and the edge runner's decoding loop."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from sensorium.apps import main as sensorium_app
from sensorium.apps import translate as translate_app

NOUNS = {"file": "Datei", "page": "Seite", "user": "Benutzer", "group": "Gruppe", "image": "Bild",
         "document": "Dokument", "folder": "Ordner", "comment": "Kommentar", "entry": "Eintrag", "task": "Aufgabe"}
VERBS = {"Save": "speichern", "Delete": "löschen", "Edit": "bearbeiten", "Open": "öffnen", "Copy": "kopieren",
         "Move": "verschieben", "Print": "drucken"}
PLACEHOLDERS = ["%(name)s", "{0}", "{name}", "%s", "%(count)d"]
HARD = ["Save folder %(name)s", "<b>Delete</b> the image", "The user {name} was not found", "Open file {0} %s",
        "Copy %(count)d %(count)d", "<a href=\"/x?a=1&amp;b=2\">Edit</a> the page", "50% of {0}", "{{literal}} page"]


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> Path:
    """source<TAB>target toy pairs: German word order, placeholders and tags moved with their words."""
    rng = random.Random(0)
    rows = set()
    for v in VERBS:
        for n in NOUNS:
            rows.add((f"{v} {n}", f"{NOUNS[n]} {VERBS[v]}"))
            rows.add((f"<b>{v}</b> the {n}", f"<b>{NOUNS[n]}</b> {VERBS[v]}"))
            p = rng.choice(PLACEHOLDERS)
            rows.add((f"{v} {n} {p}", f"{NOUNS[n]} {p} {VERBS[v]}"))
        for p in PLACEHOLDERS[:3]:
            n = rng.choice(list(NOUNS))
            rows.add((f"The {n} {p} was not found", f"{NOUNS[n]} {p} wurde nicht gefunden"))
    path = tmp_path_factory.mktemp("pairs") / "pairs.tsv"
    path.write_text("source\ttarget\n" + "".join(f"{s}\t{t}\n" for s, t in sorted(rows)), encoding="utf-8")
    return path


TINY = ["--vocab-size", "400", "--embed-dim", "64", "--num-heads", "2", "--ff-dim", "128", "--encoder-layers", "1",
        "--decoder-layers", "1", "--batch-size", "16", "--learning-rate", "0.003", "--patience", "0",
        "--max-source-length", "48", "--max-target-length", "48", "--beam", "2", "--seed", "1", "-q"]


@pytest.fixture(scope="module")
def trained(pairs, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("translation") / "run"
    assert sensorium_app.main(["train", "translation", "--data", str(pairs), "--out", str(out), "--epochs", "25",
                               *TINY]) == 0
    return out


def test_training_writes_a_complete_run(trained):
    assert json.loads((trained / "sensorium.json").read_text())["status"] == "complete"
    for name in ("model.keras", "tokenizer.model", "config.json", "metrics.json", "model_card.md",
                 "eval_translations.tsv", "splits/train.txt", "splits/validation.txt"):
        assert (trained / name).is_file(), name
    m = json.loads((trained / "metrics.json").read_text())["metrics"]
    assert m["chrf"] > 70 and m["beam"] == 2
    assert m["placeholders_preserved"] == 1.0 and m["items_with_placeholders"] > 0


def test_evaluate_json_and_hypotheses(trained, capsys):
    from sensorium.pipelines.common.rundir import evaluation_name

    recorded = {name: (trained / name).read_bytes() for name in ("metrics.json", "eval_translations.tsv")}
    assert sensorium_app.main(["evaluate", "--model", str(trained), "--json"]) == 0
    printed = capsys.readouterr()
    result = json.loads(printed.out)
    assert result["task"] == "translation" and {"bleu", "chrf", "placeholders_preserved"} <= set(result["metrics"])
    folder = trained / "evaluations" / evaluation_name(result["data"])  # its own folder; training's records stay
    assert f"evaluation written to {folder}" in printed.err
    assert json.loads((folder / "metrics.json").read_text()) == result
    assert {name: (trained / name).read_bytes() for name in recorded} == recorded
    lines = (folder / "eval_translations.tsv").read_text().splitlines()
    assert lines[0] == "id\tsource\treference\thypothesis" and len(lines) == result["count"] + 1


def test_translate_keeps_placeholders_exactly(trained, capsys):
    from sensorium.runtime.placeholders import placeholders_preserved

    for beam in ("1", "3"):
        code = translate_app.main(["--model", str(trained), "--beam", beam, "--json", *HARD])
        rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert code == 0 and [r["input"] for r in rows] == HARD
        for row in rows:
            assert set(row) == {"input", "ok", "translation"}
            assert placeholders_preserved(row["input"], row["translation"]), row
    code = translate_app.main(["--model", str(trained), "--beam", "1", "Save folder"])
    assert code == 0 and capsys.readouterr().out.strip() == "Ordner speichern"


def test_odd_and_bad_inputs(trained, tmp_path, capsys):
    odd = ["good " * 20000, "?!?!...", "😀😀", "Das ist ein deutscher Satz.", "这是中文", "NUL\x00byte"]
    code = translate_app.main(["--model", str(trained), "--json", *odd])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 0 and all(r["ok"] for r in rows) and len(rows) == len(odd)
    assert len(rows[0]["translation"]) < 2000  # bounded: the source is cut, the output limited
    f = tmp_path / "in.txt"
    f.write_bytes(b"Save file\n\n\xff broken\n")
    code = translate_app.main(["--model", str(trained), "--file", str(f), "--json"])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 1 and [r["ok"] for r in rows] == [True, False, False]
    assert rows[1]["error"].endswith("empty text") and "not UTF-8" in rows[2]["error"]
    root = Path(__file__).resolve().parents[2]
    code = translate_app.main(["--model", str(root / "assets/models/mnist"), "hello"])
    err = capsys.readouterr().err
    assert code == 1 and "is a 'image' model, not 'translation'" in err and "Traceback" not in err
    assert translate_app.main(["--model", str(trained), "--beam", "0", "x"]) == 2
    assert translate_app.main(["--model", str(trained), "--length-penalty", "-1", "x"]) == 2
    assert "--length-penalty must be between 0 and 5" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        translate_app.main(["--model", str(trained), "--split", "words", "x"])
    assert exc.value.code == 2 and "invalid choice" in capsys.readouterr().err


def test_length_penalty_reaches_beam_search(trained, monkeypatch, capsys):
    from sensorium.runtime import beam_search as decode

    seen = []
    real = decode.beam_search

    def spy(*args, **kwargs):
        seen.append(kwargs["length_penalty"])
        return real(*args, **kwargs)

    monkeypatch.setattr(decode, "beam_search", spy)
    assert translate_app.main(["--model", str(trained), "--beam", "3", "Save folder"]) == 0
    assert translate_app.main(["--model", str(trained), "--beam", "3", "--length-penalty", "1.5", "Save folder"]) == 0
    assert translate_app.main(["--model", str(trained), "--beam", "1", "--length-penalty", "1.5", "Save folder"]) == 0
    assert seen == [decode.DEFAULT_LENGTH_PENALTY, 1.5]  # greedy decoding has no length penalty
    capsys.readouterr()


def test_export_edge_and_saved_model_parity(trained, capsys):
    import tensorflow as tf

    from sensorium.pipelines.common.text_graph import load_text_saved_model
    from sensorium.pipelines.translation.predict import load
    from sensorium.runtime.translation import Translator

    assert sensorium_app.main(["export", "--model", str(trained), "--format", "tflite", "--quantize", "all",
                               "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["variant"] for r in rows] == ["none", "dynamic", "float16"] and all(r["passed"] for r in rows)
    assert rows[0]["agreement"] == 1.0 and {"chrf", "keras_chrf", "bleu", "tokens_per_second_batched",
                                            "ms_per_sentence_batched", "latency_ms_median"} <= set(rows[0])
    assert sensorium_app.main(["export", "--model", str(trained), "--format", "tflite", "--quantize", "int8"]) == 2
    assert "not offered for translation" in capsys.readouterr().err
    assert sensorium_app.main(["export", "--model", str(trained), "--format", "saved_model", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["agreement"] == 1.0

    keras_tr = load(trained)
    edge = Translator.from_tflite(trained / "exports" / "model-float32.tflite")
    for beam in (1, 3):
        assert edge.translate(HARD, beam=beam) == keras_tr.translate(HARD, beam=beam)
    serve = load_text_saved_model(trained / "exports" / "saved_model")
    got = [t.decode() for t in serve(text=tf.constant(HARD))["translation"].numpy()]
    assert got == keras_tr.translate(HARD, beam=1)  # placeholder protection inside the graph too
    # a text of several sentences: the runtimes translate it a sentence at a time (the SavedModel's
    # graph reads it whole, as every runtime does with split "none")
    several = ["Save folder %(name)s. Delete the image {0}!", "Open file\nCopy %s"]
    whole = [t.decode() for t in serve(text=tf.constant(several))["translation"].numpy()]
    assert keras_tr.configure(split="none").translate(several, beam=1) == whole
    keras_tr.configure(split="sentences")
    parts = keras_tr.translate(["Save folder %(name)s.", "Delete the image {0}!", "Open file", "Copy %s"], beam=1)
    want = [f"{parts[0]} {parts[1]}", f"{parts[2]}\n{parts[3]}"]
    assert keras_tr.translate(several, beam=1) == want == edge.translate(several, beam=1)


def test_graph_protection_matches_python(varied_texts):
    import tensorflow as tf

    from sensorium.export.translation_graph import protect_graph, restore_graph
    from sensorium.runtime.placeholders import protect

    texts = HARD + [t for t in varied_texts if len(t) < 1000] + [
        "%(a)s %(b)s %(a)s {0} {0} <br/> <br /> &nbsp; %%", " ".join(f"{{p{i}}}" for i in range(20)), ""]
    masked, originals = protect_graph(tf.constant(texts))
    for text, m, o in zip(texts, masked.numpy(), originals.numpy()):
        want_masked, want_originals = protect(text.replace("\x00", " "))
        assert m.decode() == want_masked, text
        assert [x.decode() for x in o[: len(want_originals)]] == want_originals and not any(o[len(want_originals):])
    back = restore_graph(masked, originals).numpy()
    assert [b.decode() for b in back] == [t.replace("\x00", " ") for t in texts]


@pytest.mark.slow  # `sensorium tune` itself is covered by tests/pipelines/test_tuning.py in the default run
def test_tune_two_trials(pairs, tmp_path, capsys):
    """`sensorium tune translation`: two trials on the toy pairs, objective the validation token accuracy."""
    from sensorium.pipelines.common.config import resolve_config
    from sensorium.pipelines.translation.config import TranslationConfig

    space = tmp_path / "space.json"
    space.write_text(json.dumps({"model.embed_dim": 64, "model.encoder_layers": 1, "model.decoder_layers": 1}))
    out = tmp_path / "tune"
    code = sensorium_app.main(["tune", "translation", "--data", str(pairs), "--out", str(out), "--algorithm",
                               "bayesian", "--max-trials", "2", "--epochs", "1", "--space", str(space), "--json",
                               *TINY])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0 and summary["finished"] == 2 and summary["objective"] == "val_masked_token_accuracy"
    assert 0.0 <= summary["best_value"] <= 1.0
    config = resolve_config(TranslationConfig, out / "best_config.json", {})
    assert config.model.embed_dim == 64 and config.model.decoder_layers == 1
