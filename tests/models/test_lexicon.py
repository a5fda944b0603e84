"""The sentiment-lexicon layer: tables on a tokenizer's pieces, negation, padding, saving, errors."""
from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from sensorium.models.blocks.lexicon import (
    NO_MATCH,
    PIECE_FEATURES,
    SENTENCE_FEATURES,
    BranchDropout,
    PieceValence,
    build_lexicon_tables,
    lexicon_entries,
    read_afinn_lexicon,
    read_vader_lexicon,
)
from sensorium.models.sentiment import TextClassifierSpec, build_text_classifier
from sensorium.runtime.errors import DataError
from sensorium.runtime.tokenizer import SubwordTokenizer

CORPUS = ["the film was good and the music was really good", "a terrible plot, not good at all",
          "i do not like the wonderful goodness of it", "really terrible acting but good music",
          "nothing here is good", "the goodness of the people"] * 5
VADER = {"good": 1.9, "terrible": -2.1, "wonderful": 2.7, "like": 1.5, "awful": -2.0}  # word: mean rating in [-4, 4]
AFINN = {"good": 3.0, "terrible": -3.0}  # word: score in [-5, 5]
SPEC = TextClassifierSpec(max_length=16, embed_dim=16, num_heads=2, ff_dim=32, num_layers=1, dropout=0.0)


@pytest.fixture(scope="module")
def tokenizer():
    return SubwordTokenizer.train(CORPUS, 400)


@pytest.fixture(scope="module")
def layer(tokenizer):
    entries = lexicon_entries(vader=VADER, afinn=AFINN)
    return PieceValence.from_tables(build_lexicon_tables(tokenizer, entries))


def ids_of(tokenizer, texts, length=None):
    rows = tokenizer.encode(texts, 64)
    out = np.zeros((len(rows), length or max(map(len, rows))), np.int32)  # (B, L), 0 = padding
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def valence_at_word_starts(layer, tokenizer, text):
    """{piece: valence} of the positions where the layer found a lexicon word."""
    ids = ids_of(tokenizer, [text])
    feats = layer.word_features(ids).numpy()[0]  # (L, F)
    return [(tokenizer.id_to_piece(i), round(float(f[0]), 4)) for i, f in zip(ids[0], feats) if f[0] != 0]


def test_entries_average_vader_and_afinn_and_flag_negators():
    entries = lexicon_entries(vader=VADER, afinn=AFINN)
    assert entries["good"][0] == pytest.approx((1.9 / 4 + 3.0 / 5) / 2)  # both rate it
    assert entries["wonderful"][0] == pytest.approx(2.7 / 4)  # VADER only
    assert entries["not"][PIECE_FEATURES.index("negator")] == 1 and entries["don\u2019t"][1] == 1
    assert entries["really"][PIECE_FEATURES.index("booster")] > 0 and entries["but"][3] == 1
    with pytest.raises(ValueError, match="vader\\+afinn"):
        lexicon_entries("sentiwordnet", vader=VADER, afinn=AFINN)


def test_tables_map_whole_words_of_one_or_more_pieces(tokenizer, layer):
    tables = build_lexicon_tables(tokenizer, lexicon_entries(vader=VADER, afinn=AFINN))
    assert tables.stats["mapped"] + tables.stats["too_long"] + tables.stats["unmatchable"] \
        + tables.stats["over_cap"] == tables.stats["entries"]
    assert tables.candidates.shape[0] == tables.stats["groups"] + 1 and np.all(tables.candidates[0] == NO_MATCH)
    good = (1.9 / 4 + 3.0 / 5) / 2
    found = valence_at_word_starts(layer, tokenizer, "wonderful music, good! awful")
    assert [v for _, v in found] == [pytest.approx(2.7 / 4, abs=1e-4), pytest.approx(good, abs=1e-4),
                                     pytest.approx(-2.0 / 4, abs=1e-4)]
    assert len(tokenizer.pieces("awful")) > 1  # not in the corpus: several pieces, matched whole
    assert valence_at_word_starts(layer, tokenizer, "awfulness") == []
    assert valence_at_word_starts(layer, tokenizer, "the goodness of people") == []  # "good" + "ness"


def test_negation_flips_and_boosters_strengthen(tokenizer, layer):
    texts = ["good", "not good", "really good", "terrible", "not terrible", "the film"]
    out = layer(ids_of(tokenizer, texts)).numpy()  # (6, S)
    compound = dict(zip(texts, out[:, SENTENCE_FEATURES.index("compound")]))
    assert compound["good"] > 0 > compound["not good"]
    assert compound["really good"] > compound["good"]
    assert compound["terrible"] < 0 < compound["not terrible"]
    assert np.all(out[-1] == 0)  # no lexicon word
    assert out[1, SENTENCE_FEATURES.index("negated_words")] > 0 == out[0, SENTENCE_FEATURES.index("negated_words")]


def test_but_weighs_the_second_clause(tokenizer, layer):
    out = layer(ids_of(tokenizer, ["terrible acting but good music", "good music but terrible acting"])).numpy()
    assert out[0, 0] > 0 > out[1, 0]


def test_padding_is_masked(tokenizer, layer):
    texts = ["not good at all", "really terrible acting but good music", ""]
    tight = np.concatenate([layer(ids_of(tokenizer, [t])).numpy() for t in texts])
    padded = layer(ids_of(tokenizer, texts, length=40)).numpy()
    np.testing.assert_allclose(padded, tight, atol=1e-6)
    assert np.all(padded[2] == 0)


def test_a_model_with_the_layer_saves_and_loads_without_the_lexicons(tokenizer, tmp_path, monkeypatch):
    from sensorium.models.blocks import read_task_metadata
    from sensorium.pipelines.common.artifacts import load_keras

    spec = TextClassifierSpec(**{**SPEC.__dict__, "lexicon": "vader+afinn", "branch_dropout": 0.5})
    info = {"tokenizer_model": base64.b64encode(tokenizer.proto).decode("ascii")}
    model = build_text_classifier(spec, ["negative", "neutral", "positive"], vocab_size=tokenizer.vocab_size,
                                  info=info)
    assert read_task_metadata(model)["info"]["lexicon"] == "vader+afinn"
    config = model.get_layer("lexicon").get_config()
    assert len(json.dumps(config)) < 1000  # shapes only: the tables are weights
    ids = ids_of(tokenizer, ["not good at all", "really wonderful music", "the film"], length=16)
    expected = model(ids, training=False).numpy()
    path = tmp_path / "model.keras"
    model.save(path)
    import sensorium.models.blocks.lexicon as lexicon

    monkeypatch.setattr(lexicon, "read_vader_lexicon", lambda *a: pytest.fail("loading read a lexicon"))
    monkeypatch.setattr(lexicon, "read_afinn_lexicon", lambda *a: pytest.fail("loading read a lexicon"))
    loaded = load_keras(path)
    np.testing.assert_allclose(loaded(ids, training=False).numpy(), expected, atol=1e-6)
    np.testing.assert_array_equal(loaded.get_layer("lexicon").candidates.numpy(),
                                  model.get_layer("lexicon").candidates.numpy())


def test_the_default_spec_builds_the_plain_model(tokenizer):
    model = build_text_classifier(SPEC, ["a", "b"], vocab_size=tokenizer.vocab_size)
    assert not any(isinstance(layer, (PieceValence, BranchDropout)) for layer in model.layers)
    assert "lexicon" not in [layer.name for layer in model.layers]
    with pytest.raises(ValueError, match="tokenizer"):
        build_text_classifier(TextClassifierSpec(**{**SPEC.__dict__, "lexicon": "vader+afinn"}), ["a", "b"],
                              vocab_size=tokenizer.vocab_size)


def test_branch_dropout_drops_whole_rows_in_training_only():
    x = np.ones((400, 8), np.float32)
    layer = BranchDropout(0.5, seed=1)
    np.testing.assert_array_equal(layer(x, training=False).numpy(), x)
    out = layer(x, training=True).numpy()
    rows = out.sum(-1)
    assert set(np.unique(rows)) == {0.0, 8.0} and 100 < (rows == 0).sum() < 300
    with pytest.raises(ValueError, match="rate"):
        BranchDropout(1.0)


@pytest.mark.parametrize(("reader", "text", "match"), [
    (read_vader_lexicon, "good\t1.9\t0.9\t[2, 2]\nbad\tvery\t0.5\t[]\n", r":2: not a lexicon line"),
    (read_vader_lexicon, "good\n", r":1: not a lexicon line"),
    (read_afinn_lexicon, "good\t3\nbad\t-9\n", r":2: not a lexicon line .*\[-5, 5\]"),
    (read_afinn_lexicon, "", "empty lexicon file"),
])
def test_a_malformed_lexicon_file_is_one_line(tmp_path, reader, text, match):
    path = tmp_path / "lexicon.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=match) as info:
        reader(path)
    assert "\n" not in str(info.value)
    with pytest.raises(DataError, match="no such lexicon file"):
        reader(tmp_path / "missing.txt")


def test_the_packaged_lexicons_read():
    vader, afinn = read_vader_lexicon(), read_afinn_lexicon()
    assert len(vader) > 7000 and len(afinn) > 3000
    assert vader["good"] > 0 > afinn["bad"]


def test_config_validation():
    from sensorium.pipelines.sentiment.config import SentimentConfig
    from sensorium.runtime.errors import UsageError

    for model, match in (({"lexicon": "other"}, "model.lexicon must be one of"),
                         ({"branch_dropout": 0.3}, "branch_dropout needs a model.lexicon"),
                         ({"lexicon": "vader+afinn", "encoder": "hub:nnlm-en-dim50"}, "needs the transformer"),
                         ({"lexicon": "vader+afinn", "branch_dropout": 1.0}, r"branch_dropout must be in")):
        cfg = SentimentConfig()
        for key, value in model.items():
            setattr(cfg.model, key, value)
        with pytest.raises(UsageError, match=match):
            cfg.validate()


def test_converts_to_tflite_builtins(tokenizer):
    import tensorflow as tf

    layer = PieceValence.from_tables(build_lexicon_tables(tokenizer, lexicon_entries(vader=VADER, afinn=AFINN)))
    import keras

    ids = keras.Input((None,), dtype="int32")
    model = keras.Model(ids, layer(ids))
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=converter.convert())
    batch = ids_of(tokenizer, ["not good at all", "really terrible acting but good music"], length=12)
    inp = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(inp["index"], batch.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], batch)
    interpreter.invoke()
    got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_allclose(got, model(batch).numpy(), atol=1e-5)
