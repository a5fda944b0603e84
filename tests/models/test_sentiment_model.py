"""The text classifier builder: shapes, metadata, masking of padded batches, errors."""
from __future__ import annotations

import numpy as np
import pytest

from sensorium.models.sentiment import HUB_TEXT_ENCODERS, TextClassifierSpec, build_text_classifier

SPEC = TextClassifierSpec(max_length=16, embed_dim=16, num_heads=2, ff_dim=32, num_layers=2, dropout=0.0)


def test_builds_with_metadata():
    from sensorium.models.blocks import read_task_metadata

    model = build_text_classifier(SPEC, ["neg", "neu", "pos"], vocab_size=50, info={"tokenizer": "x"})
    assert model.inputs[0].dtype == "int32" and tuple(model.inputs[0].shape) == (None, None)
    assert tuple(model.output.shape) == (None, 3)
    meta = read_task_metadata(model)
    assert meta["task"] == "sentiment" and meta["labels"] == ["neg", "neu", "pos"]
    assert meta["info"] == {"encoder": "transformer", "max_length": 16, "tokenizer": "x", "input": "token_ids",
                            "vocab_size": 50}


def test_padding_does_not_change_a_texts_probabilities():
    model = build_text_classifier(SPEC, ["a", "b"], vocab_size=50)
    rng = np.random.default_rng(0)
    texts = [rng.integers(4, 50, n).astype(np.int32) for n in (1, 5, 16)]
    alone = np.concatenate([model(t[None], training=False).numpy() for t in texts])
    batch = np.zeros((3, 16), np.int32)
    for i, t in enumerate(texts):
        batch[i, : len(t)] = t
    np.testing.assert_allclose(model(batch, training=False).numpy(), alone, atol=1e-5)
    np.testing.assert_allclose(alone.sum(-1), 1.0, atol=1e-6)


def test_errors_and_hub_names():
    with pytest.raises(ValueError, match="at least two labels"):
        build_text_classifier(SPEC, ["only"], vocab_size=50)
    with pytest.raises(ValueError, match="vocab_size"):
        build_text_classifier(SPEC, ["a", "b"])
    spec = TextClassifierSpec(encoder="hub:nnlm-en-dim50")
    assert spec.uses_hub and spec.hub_handle() == HUB_TEXT_ENCODERS["nnlm-en-dim50"]
    assert TextClassifierSpec(encoder="hub:/some/folder").hub_handle() == "/some/folder"


def test_label_smoothing_loss_values_weights_and_saving(tmp_path):
    import keras

    from sensorium.models.sentiment import classification_loss
    from sensorium.pipelines.common.artifacts import load_keras

    assert classification_loss(0.0) == "sparse_categorical_crossentropy"
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], np.float32)
    labels = np.array([0, 1])
    logp = np.log(probs)
    expected = 0.9 * -logp[[0, 1], labels] + 0.1 * -logp.mean(axis=1)  # (2,)
    loss = classification_loss(0.1)
    np.testing.assert_allclose(float(loss(labels, probs)), expected.mean(), rtol=1e-5)
    np.testing.assert_allclose(float(loss(labels[:, None], probs, sample_weight=np.array([2.0, 0.0]))),
                               2.0 * expected[0] / 2, rtol=1e-5)
    # No smoothing is plain cross-entropy; smoothing is lowest below certainty.
    plain = keras.losses.SparseCategoricalCrossentropy()(labels, probs)
    np.testing.assert_allclose(float(classification_loss(0.1).__class__(0.0)(labels, probs)), float(plain), rtol=1e-5)
    sure, hedged = np.array([[0.999, 0.0005, 0.0005]], np.float32), np.array([[0.9, 0.05, 0.05]], np.float32)
    assert float(loss([0], hedged)) < float(loss([0], sure))
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        classification_loss(1.0)
    from sensorium.pipelines.sentiment.config import SentimentConfig
    from sensorium.runtime.errors import UsageError

    cfg = SentimentConfig()
    cfg.train.label_smoothing = -0.1
    with pytest.raises(UsageError, match=r"train.label_smoothing must be in \[0, 1\)"):
        cfg.validate()

    model = build_text_classifier(SPEC, ["a", "b"], vocab_size=50)
    model.compile(optimizer="adam", loss=classification_loss(0.2))
    model.optimizer.build(model.trainable_variables)  # saved with its slots, as a training checkpoint is
    model.save(tmp_path / "m.keras")
    again = load_keras(tmp_path / "m.keras", compile=True)
    assert type(again.loss).__name__ == "SmoothedSparseCrossentropy" and again.loss.label_smoothing == 0.2
