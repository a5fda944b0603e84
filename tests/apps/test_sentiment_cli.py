"""Sentiment end to end, in-process: train a tiny Transformer on a CSV, evaluate, the `sentiment`
command (texts, files, odd and bad inputs), export with parity, the edge runner, resume."""
from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import numpy as np
import pytest

from sensorium.apps import main as sensorium_app
from sensorium.apps import sentiment as sentiment_app

ROOT = Path(__file__).resolve().parents[2]
POSITIVE = ["love", "great", "wonderful", "excellent", "happy", "amazing", "fantastic", "nice"]
NEGATIVE = ["hate", "awful", "terrible", "horrible", "sad", "worst", "bad", "angry"]
SUBJECTS = ["the flight", "this movie", "our hotel", "the crew", "my order", "the food", "the service"]
ODD_TEXTS = ["good " * 20000,  # a 100,000-character line
             "NUL\x00bytes\x00inside", "?!?!...,,;;", "😀😀🎉🎉", "这部电影很好看", "Привет, как дела?"]


def _sentence(rng: random.Random, words: list[str]) -> str:
    return f"{rng.choice(SUBJECTS)} was {rng.choice(words)}, really {rng.choice(words)}"


@pytest.fixture(scope="module")
def reviews(tmp_path_factory) -> Path:
    """A CSV of 300 template reviews (review, polarity: pos/neg), easy to learn."""
    rng = random.Random(0)
    path = tmp_path_factory.mktemp("reviews") / "reviews.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["review", "polarity"])
        for _ in range(300):
            label = rng.choice(["pos", "neg"])
            writer.writerow([_sentence(rng, POSITIVE if label == "pos" else NEGATIVE), label])
    return path


TINY = ["--vocab-size", "400", "--embed-dim", "32", "--num-heads", "2", "--ff-dim", "64", "--layers", "1",
        "--max-length", "32", "--batch-size", "16", "--seed", "1", "-q"]


@pytest.fixture(scope="module")
def trained(reviews, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sentiment") / "run"
    assert sensorium_app.main(["train", "sentiment", "--data", str(reviews), "--out", str(out), "--epochs", "6",
                               "--learning-rate", "0.003", *TINY]) == 0
    return out


def test_training_writes_a_complete_run(trained):
    manifest = json.loads((trained / "sensorium.json").read_text())
    assert manifest["status"] == "complete" and manifest["task"] == "sentiment"
    for name in ("model.keras", "tokenizer.model", "labels.txt", "config.json", "metrics.json", "model_card.md",
                 "splits/train.txt", "splits/validation.txt", "plots/confusion_matrix.png"):
        assert (trained / name).is_file(), name
    assert (trained / "labels.txt").read_text().split() == ["neg", "pos"]
    metrics = json.loads((trained / "metrics.json").read_text())
    assert metrics["count"] == 30 and metrics["metrics"]["accuracy"] >= 0.9  # learnable words: it learns them
    config = json.loads((trained / "config.json").read_text())
    assert config["model"]["embed_dim"] == 32 and config["data"]["spec"].endswith("reviews.csv")


def test_evaluate_json(trained, capsys):
    from sensorium.pipelines.common.rundir import evaluation_name

    recorded = (trained / "metrics.json").read_bytes()
    assert sensorium_app.main(["evaluate", "--model", str(trained), "--json"]) == 0
    printed = capsys.readouterr()
    result = json.loads(printed.out)
    folder = trained / "evaluations" / evaluation_name(result["data"])  # its own folder; training's records stay
    assert f"evaluation written to {folder}" in printed.err and (trained / "metrics.json").read_bytes() == recorded
    assert json.loads((folder / "metrics.json").read_text()) == result
    m = result["metrics"]
    assert result["task"] == "sentiment" and result["split"] == "test" and result["count"] == 30
    assert {"accuracy", "macro_f1", "confusion_matrix", "per_class", "binary_accuracy"} <= set(m)
    assert np.asarray(m["confusion_matrix"]).sum() == 30
    lines = (folder / "eval_predictions.tsv").read_text().splitlines()
    assert lines[0] == "id\tlabel\tprediction" and len(lines) == 31


def test_sentiment_command(trained, capsys):
    code = sentiment_app.main(["--model", str(trained), "--json", "the crew was wonderful, really amazing",
                               "the food was terrible, really awful"])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 0 and [r["label"] for r in rows] == ["pos", "neg"]
    for row in rows:
        assert set(row) == {"input", "ok", "label", "scores", "label_set"} and row["ok"]
        assert row["label_set"] == "model"  # neg/pos are not the standard label names
        assert set(row["scores"]) == {"neg", "pos"} and abs(sum(row["scores"].values()) - 1) < 1e-4
    assert sensorium_app.main(["sentiment", "--model", str(trained), "my order was great"]) == 0
    assert capsys.readouterr().out.startswith("pos\tneg 0.")


def test_odd_texts_get_sensible_answers(trained, capsys):
    code = sentiment_app.main(["--model", str(trained), "--json", *ODD_TEXTS])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 0 and len(rows) == len(ODD_TEXTS) and all(r["ok"] for r in rows)
    assert all(abs(sum(r["scores"].values()) - 1) < 1e-4 for r in rows)


def test_bad_inputs_fail_per_item(trained, tmp_path, capsys):
    f = tmp_path / "texts.txt"
    f.write_bytes(b"the crew was great\n\n\xff\xfe latin-1 bytes\nthe flight was awful\n")
    code = sentiment_app.main(["--model", str(trained), "--file", str(f), "", "--json"])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 1
    assert [r["ok"] for r in rows] == [False, True, False, False, True]  # order: arguments, then file lines
    assert rows[0]["error"] == "empty text" and rows[2]["error"] == f"{f}:2: empty text"
    assert "not UTF-8" in rows[3]["error"] and set(rows[3]) == {"input", "ok", "error"}
    assert rows[1]["label"] == "pos" and rows[4]["label"] == "neg"


@pytest.mark.parametrize("argv, message", [
    (["hello", "--model", "assets/models/mnist"], "is a 'image' model, not 'sentiment'"),
    (["hello", "--model", "nowhere"], "no such model"),
    (["--file", "nowhere.txt"], "no such file"),
    ([], "give texts to label"),
])
def test_command_errors_are_one_line(trained, argv, message, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    argv = argv + (["--model", str(trained)] if "--file" in argv else [])
    code = sentiment_app.main(argv)
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code in (1, 2) and len(errors) == 1 and message in errors[0] and "Traceback" not in err


def test_export_parity_and_edge_runner(trained, capsys, varied_texts):
    import tensorflow as tf

    from sensorium.pipelines.common.text_graph import load_text_saved_model, tf_encode, tf_tokenizer
    from sensorium.pipelines.sentiment.predict import load
    from sensorium.runtime.sentiment import TextClassifier
    from sensorium.runtime.tokenizer import SubwordTokenizer

    assert sensorium_app.main(["export", "--model", str(trained), "--format", "tflite", "--quantize", "all",
                               "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["variant"] for r in rows] == ["none", "dynamic", "float16", "int8"] and all(r["passed"] for r in rows)
    assert sensorium_app.main(["export", "--model", str(trained), "--format", "saved_model", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["agreement"] == 1.0 and row["max_abs_diff"] < 1e-5
    parity = json.loads((trained / "exports" / "parity.json").read_text())["variants"]
    assert {"saved_model", "none", "int8"} <= set(parity)

    # The .tflite's packed tokenizer and the SavedModel's in-graph tokenizer give identical ids.
    edge = TextClassifier.from_tflite(trained / "exports" / "model-float32.tflite")
    texts = varied_texts + ODD_TEXTS
    saved = trained / "exports" / "saved_model"
    graph = tf_tokenizer(SubwordTokenizer.load(saved / "assets" / "tokenizer.model"))
    graph_ids = tf_encode(graph, tf.constant(texts), edge.max_length).numpy()
    for text, ids, row_ids in zip(texts, edge.encode(texts), graph_ids):
        assert list(row_ids[: len(ids)]) == ids and not row_ids[len(ids):].any(), text[:30]
    # ... and the same probabilities, each text alone or in padded batches (read whole, as the graph reads them).
    good = [t for t in texts if t.strip()]
    want = load_text_saved_model(saved)(text=tf.constant(good))["probabilities"].numpy()
    edge.configure(long_text="truncate")
    np.testing.assert_allclose(edge.predict(good), want, atol=1e-4)
    np.testing.assert_allclose(np.concatenate([edge.predict([t]) for t in good]), want, atol=1e-4)
    np.testing.assert_allclose(load(trained).configure(long_text="truncate").predict(good), want, atol=1e-4)
    # a bare .keras file is complete: its tokenizer rides in its metadata
    np.testing.assert_allclose(load(trained / "model.keras").configure(long_text="truncate").predict(good), want,
                               atol=1e-4)
    # long texts are read sentence by sentence alike by every runtime, the record carried by each export
    recorded = edge.info["model"]["long_text_pieces"]
    assert recorded == json.loads((saved / "assets" / "sensorium.json").read_text())["model"]["long_text_pieces"]
    reviews = [_long_review(random.Random(seed)) for seed in range(3)] + good
    edge.configure(long_text="sentences")
    by_sentence = edge.predict(reviews)
    np.testing.assert_allclose(load(saved).predict(reviews), by_sentence, atol=1e-4)
    np.testing.assert_allclose(load(trained).predict(reviews), by_sentence, atol=1e-4)
    assert by_sentence[:3].argmax(1).tolist() == [0, 0, 0] and not np.allclose(by_sentence[3:], want, atol=1e-4)
    assert edge.labels == ["neg", "pos"] and edge.info["tokenizer"]["bos_id"] == 2

    # evaluate reads the task from the .tflite itself and scores it on a data spec
    assert sensorium_app.main(["evaluate", "--model", str(trained / "exports" / "model-dynamic.tflite"), "--data",
                               f"{json.loads((trained / 'config.json').read_text())['data']['spec']}@test",
                               "--out", str(trained / "eval-dynamic"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["count"] == 30 and result["metrics"]["accuracy"] >= 0.9
    assert (trained / "eval-dynamic" / "metrics.json").is_file()

    code = sentiment_app.main(["--model", str(trained / "exports" / "model-int8.tflite"), "--json",
                               "the service was fantastic, really nice"])
    assert code == 0 and json.loads(capsys.readouterr().out)["label"] == "pos"
    assert sentiment_app.main(["--model", str(saved), "--json", "the hotel was horrible, really sad"]) == 0
    assert json.loads(capsys.readouterr().out)["label"] == "neg"


def test_resume_after_interrupt(reviews, tmp_path, interrupt_training):
    out = tmp_path / "run"
    interrupt_training(1)
    assert sensorium_app.main(["train", "sentiment", "--data", str(reviews), "--out", str(out), "--epochs", "2",
                               *TINY]) == 130
    tokenizer = (out / "tokenizer.model").read_bytes()
    interrupt_training(None)
    assert sensorium_app.main(["train", "sentiment", "--out", str(out), "--resume", "-q"]) == 0
    assert (out / "tokenizer.model").read_bytes() == tokenizer
    state = json.loads((out / "checkpoints" / "state.json").read_text())
    assert len(state["history"]["loss"]) == 2
    assert json.loads((out / "sensorium.json").read_text())["status"] == "complete"


def test_bad_training_data_is_one_line(tmp_path, capsys):
    (tmp_path / "d.csv").write_text("body,mood\nnice,pos\nugly,neg\n")
    code = sensorium_app.main(["train", "sentiment", "--data", str(tmp_path / "d.csv"), "--out",
                               str(tmp_path / "r"), "-q"])
    err = capsys.readouterr().err
    assert code == 1 and "no text column" in err and "Traceback" not in err
    code = sensorium_app.main(["train", "sentiment", "--data", "builtin:tweets", "--embed-dim", "30",
                               "--num-heads", "4", "--out", str(tmp_path / "r2"), "-q"])
    assert code == 2 and "multiple of model.num_heads" in capsys.readouterr().err


def _string_encoder(path: Path) -> Path:
    """A TF Hub-style text encoder (like nnlm-en-dim50): a batch of strings -> 8-d sentence vectors,
    from hashed lower-cased words; its __call__ takes the strings only (no `training` argument)."""
    import tensorflow as tf

    class Encoder(tf.Module):
        def __init__(self):
            self.embeddings = tf.Variable(tf.random.stateless_normal((512, 8), seed=(3, 4)), name="embeddings")

        @tf.function(input_signature=[tf.TensorSpec((None,), tf.string)])
        def __call__(self, text):
            words = tf.strings.split(tf.strings.lower(text))  # ragged (B, None)
            vectors = tf.gather(self.embeddings, tf.strings.to_hash_bucket_fast(words, 512))  # (B, None, 8)
            return tf.reduce_mean(vectors, axis=1)  # (B, 8); an empty text gives NaN-free zeros below

    tf.saved_model.save(Encoder(), str(path))
    return path


def test_hub_text_encoder_end_to_end(reviews, tmp_path, capsys):
    encoder = _string_encoder(tmp_path / "encoder")
    out = tmp_path / "run"
    assert sensorium_app.main(["train", "sentiment", "--encoder", f"hub:{encoder}", "--data", str(reviews),
                               "--out", str(out), "--epochs", "8", "--learning-rate", "0.05", "-q"]) == 0
    capsys.readouterr()
    assert not (out / "tokenizer.model").exists()  # the module reads the strings itself
    assert json.loads((out / "metrics.json").read_text())["metrics"]["accuracy"] >= 0.9
    code = sentiment_app.main(["--model", str(out), "--json", "the crew was wonderful, really amazing"])
    assert code == 0 and json.loads(capsys.readouterr().out)["label"] == "pos"
    assert sensorium_app.main(["export", "--model", str(out), "--format", "saved_model", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["agreement"] == 1.0
    assert sensorium_app.main(["export", "--model", str(out), "--format", "tflite"]) == 2
    assert "not available for sentiment models; use: saved_model" in capsys.readouterr().err


def test_evaluate_on_data_with_unknown_labels_or_columns(trained, tmp_path, capsys):
    (tmp_path / "other.csv").write_text("text,label\nfine,neutral\ngood,pos\n")
    assert sensorium_app.main(["evaluate", "--model", str(trained), "--data", str(tmp_path / "other.csv")]) == 1
    err = capsys.readouterr().err
    assert "labels not known to the model: neutral (the model knows: neg, pos)" in err and "Traceback" not in err
    (tmp_path / "cols.csv").write_text("body,label\ngood,pos\n")
    assert sensorium_app.main(["evaluate", "--model", str(trained), "--data", str(tmp_path / "cols.csv")]) == 1
    assert "no text column" in capsys.readouterr().err


@pytest.mark.slow  # `sensorium tune` itself is covered by tests/pipelines/test_tuning.py in the default run
def test_tune_two_trials(reviews, tmp_path, capsys):
    """`sensorium tune sentiment`: two trials on the toy reviews, objective val_accuracy, a loadable best config."""
    from sensorium.pipelines.common.config import resolve_config
    from sensorium.pipelines.sentiment.config import SentimentConfig

    space = tmp_path / "space.json"
    space.write_text(json.dumps({"model.embed_dim": 32, "model.num_layers": 1, "train.batch_size": {"max": 64}}))
    out = tmp_path / "tune"
    code = sensorium_app.main(["tune", "sentiment", "--data", str(reviews), "--out", str(out), "--algorithm", "random",
                               "--max-trials", "2", "--epochs", "1", "--space", str(space), "--json", *TINY])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0 and summary["finished"] == 2 and summary["objective"] == "val_accuracy"
    config = resolve_config(SentimentConfig, out / "best_config.json", {})
    assert config.model.embed_dim == 32 and config.train.batch_size in (32, 64) and config.evaluate_on == "test"


def _long_review(rng: random.Random) -> str:
    """4 positive sentences, then 12 negative ones: the window of the tiny model (31 pieces) holds
    little more than the positive start."""
    return " ".join(_sentence(rng, POSITIVE) + "." for _ in range(4)) + " " + \
        " ".join(_sentence(rng, NEGATIVE) + "." for _ in range(12))


def test_long_texts_are_read_sentence_by_sentence(trained, reviews, capsys):
    from sensorium.pipelines.common.artifacts import load_task_model
    from sensorium.runtime.tokenizer import SubwordTokenizer

    _, meta = load_task_model(trained / "model.keras", "sentiment")
    recorded = meta["info"]["long_text_pieces"]  # the 99th percentile of the training texts' pieces
    tokenizer = SubwordTokenizer.load(trained / "tokenizer.model")
    with open(reviews, newline="", encoding="utf-8") as fh:
        lengths = [len(p) for p in tokenizer.encode_pieces([row["review"] for row in csv.DictReader(fh)])]
    assert np.median(lengths) <= recorded <= max(lengths)

    review = _long_review(random.Random(5))
    assert len(tokenizer.encode_pieces([review])[0]) > 4 * recorded
    assert sentiment_app.main(["--model", str(trained), "--json", review]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["label"] == "neg"  # most of its sentences are negative
    assert sentiment_app.main(["--model", str(trained), "--json", "--long-text", "truncate", review]) == 0
    assert json.loads(capsys.readouterr().out)["label"] == "pos"  # cut to the window: the positive start
    with pytest.raises(SystemExit) as exc:
        sentiment_app.main(["--model", str(trained), "--long-text", "pages", review])
    assert exc.value.code == 2 and "invalid choice" in capsys.readouterr().err


def test_recording_long_text_in_an_older_run(trained, tmp_path, capsys):
    import shutil

    from sensorium.pipelines.common.artifacts import load_task_model
    from sensorium.pipelines.sentiment import long_text

    run = shutil.copytree(trained, tmp_path / "run", ignore=shutil.ignore_patterns("exports", "eval-*"))
    _, meta = load_task_model(run / "model.keras", "sentiment")
    trained_value = meta["info"]["long_text_pieces"]
    assert long_text.main(["--model", str(run), "--pieces", "7"]) == 0
    assert load_task_model(run / "model.keras", "sentiment")[1]["info"]["long_text_pieces"] == 7
    assert long_text.main(["--model", str(run)]) == 0  # from its training split, as training recorded it
    assert load_task_model(run / "model.keras", "sentiment")[1]["info"]["long_text_pieces"] == trained_value
    capsys.readouterr()
    for argv, code, needle in ((["--model", str(run), "--pieces", "0"], 2, "--pieces must be between"),
                               (["--model", str(run / "model.keras")], 1, "needs a run directory"),
                               (["--model", str(tmp_path / "missing")], 1, "missing")):
        assert long_text.main(argv) == code
        err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert len(err) == 1 and needle in err[0] and "Traceback" not in err[0], err


def test_the_recorded_length_is_the_99th_percentile_within_the_window():
    from sensorium.pipelines.sentiment.long_text import typical_pieces

    class Words:
        def encode_pieces(self, texts):
            return [t.split() for t in texts]

    texts = ["w " * n for n in range(1, 201)]  # 1..200 pieces
    assert typical_pieces(Words(), texts, max_length=1000) == 199  # the 99th percentile of 1..200 is 198.01
    assert typical_pieces(Words(), texts, max_length=128) == 127  # a model saw at most its window
    assert typical_pieces(Words(), [], max_length=128) is None
