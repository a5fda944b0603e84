"""Domain-neutral text normalisation (`--text-normalization neutral-v1`): links and @handles cannot
carry a label, and every path (training, Keras, .tflite, SavedModel) reads the same normalised text."""
from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import numpy as np
import pytest

from sensorium.apps import main as sensorium_app
from sensorium.pipelines.common.text_graph import tf_normalize
from sensorium.runtime.errors import ModelError
from sensorium.runtime.text_norm import normalization_of, normalize, with_normalization

TRICKY = ["@united thanks!", "mail me: a@b.com", "@@x @_y_ @9", "see https://t.co/AbC?x=1&y=2 now",
          "HTTPS://EXAMPLE.COM/path", "www.example.org/x and http://", "@café olé", "no change here",
          "tab\thttp://a.b\tend", "😀 @user😀 http://😀.com", "", "@" * 50 + "a" * 50]


def test_neutral_v1_removes_links_and_masks_handles():
    out = normalize(["@united my bag is lost https://t.co/xyz", "@JetBlue  love it www.jetblue.com!"], "neutral-v1")
    assert out == ["@user my bag is lost  ", "@user  love it  "]
    assert normalize(TRICKY, "none") == TRICKY
    assert normalize(["@café"], "neutral-v1") == ["@useré"]  # ASCII classes, on which RE2 agrees


def test_python_and_graph_normalisation_agree():
    import tensorflow as tf

    graph = [t.decode("utf-8") for t in tf_normalize(tf.constant(TRICKY), "neutral-v1").numpy()]
    assert graph == normalize(TRICKY, "neutral-v1")


def test_unknown_normalisation_is_one_line():
    with pytest.raises(ModelError, match="unknown text_normalization 'shout'"):
        normalization_of({"text_normalization": "shout"}, "m.keras")
    assert normalization_of({}) == "none"
    assert normalization_of({"model": {"text_normalization": "neutral-v1"}}) == "neutral-v1"
    assert with_normalization(None, "neutral-v1") is None
    with pytest.raises(ModelError, match="unknown text_normalization"):
        normalization_of({"text_normalization": ["neutral-v1"]})  # hostile metadata: one line, no TypeError
    from sensorium.pipelines.sentiment.config import SentimentConfig
    from sensorium.runtime.errors import UsageError

    cfg = SentimentConfig()
    cfg.model.encoder, cfg.model.text_normalization = "hub:nnlm-en-dim50", "neutral-v1"
    with pytest.raises(UsageError, match="needs the transformer encoder"):
        cfg.validate()


@pytest.fixture(scope="module")
def neutral_run(tmp_path_factory) -> Path:
    """A tiny model trained where every negative text addresses @angryair and every positive @happyair."""
    rng = random.Random(0)
    tmp = tmp_path_factory.mktemp("neutral")
    words = {"negative": ["awful", "terrible", "late", "rude"], "positive": ["great", "lovely", "kind", "fast"]}
    with open(tmp / "tweets.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        for _ in range(300):
            label = rng.choice(["negative", "positive"])
            handle = "@angryair" if label == "negative" else "@happyair"
            writer.writerow([f"{handle} the crew was {rng.choice(words[label])} https://t.co/{rng.randrange(10**6)}",
                             label])
    out = tmp / "run"
    assert sensorium_app.main(["train", "sentiment", "--data", str(tmp / "tweets.csv"), "--out", str(out),
                               "--text-normalization", "neutral-v1", "--epochs", "4", "--learning-rate", "0.003",
                               "--vocab-size", "400", "--embed-dim", "32", "--num-heads", "2", "--ff-dim", "64",
                               "--layers", "1", "--max-length", "24", "--batch-size", "16", "-q"]) == 0
    return out


def test_handles_and_links_cannot_carry_the_label_in_any_export(neutral_run, capsys):
    import tensorflow as tf

    from sensorium.pipelines.common.text_graph import load_text_saved_model
    from sensorium.pipelines.sentiment.predict import load
    from sensorium.runtime.sentiment import TextClassifier

    config = json.loads((neutral_run / "config.json").read_text())
    assert config["model"]["text_normalization"] == "neutral-v1"
    # The tokenizer never saw the handles or the links.
    from sensorium.runtime.tokenizer import SubwordTokenizer

    pieces = SubwordTokenizer.load(neutral_run / "tokenizer.model").pieces("angryair happyair")
    assert "▁angryair" not in pieces and "▁happyair" not in pieces
    assert sensorium_app.main(["export", "--model", str(neutral_run), "--format", "tflite", "--json"]) == 0
    assert sensorium_app.main(["export", "--model", str(neutral_run), "--format", "saved_model", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert all(r["passed"] for r in rows), rows
    pairs = ["@angryair the crew was great", "@happyair the crew was great",
             "@happyair the crew was rude http://x.y/1", "@angryair the crew was rude www.z.com"]
    keras_p = load(neutral_run).predict(pairs)
    edge = TextClassifier.from_tflite(neutral_run / "exports" / "model-float32.tflite")
    edge_p = edge.predict(pairs)
    saved = load_text_saved_model(neutral_run / "exports" / "saved_model")(text=tf.constant(pairs))
    np.testing.assert_allclose(keras_p[0], keras_p[1], atol=1e-6)  # the handle changes nothing
    np.testing.assert_allclose(keras_p[2], keras_p[3], atol=1e-6)  # nor the link
    np.testing.assert_allclose(edge_p, keras_p, atol=1e-4)
    np.testing.assert_allclose(saved["probabilities"].numpy(), keras_p, atol=1e-4)
    assert [edge.labels[i] for i in keras_p.argmax(1)] == ["positive", "positive", "negative", "negative"]
