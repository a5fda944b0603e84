"""The subword tokenizer: training, round trip, and identical ids in Python and inside the TF graph."""
from __future__ import annotations

import random

import numpy as np
import pytest

from sensorium.pipelines.common.text_graph import tf_encode, tf_tokenizer
from sensorium.runtime.errors import DataError, ModelError
from sensorium.runtime.tokenizer import BOS_ID, MIN_VOCAB, PAD_ID, SubwordTokenizer

CORPUS = [
    "I love this airline, the crew was great!",
    "Worst flight ever. Delayed 3 hours and no apology.",
    "The service was fine, nothing special.",
    "Café au lait and a croissant, très bien 😀",
    "Check https://example.com/path?q=1&r=2 for details #travel @user",
] * 40 + [f"flight {i} from gate {i % 17} was {'late' if i % 3 else 'on time'}" for i in range(400)]

@pytest.fixture(scope="module")
def tokenizer() -> SubwordTokenizer:
    return SubwordTokenizer.train(CORPUS, 600)


def _random_texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    alphabet = [chr(c) for c in [*range(32, 127), *range(0xA0, 0x250), *range(0x370, 0x3FF), *range(0x400, 0x4FF),
                                 *range(0x4E00, 0x4E40), *range(0x1F600, 0x1F64F)]]
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 200))) for _ in range(n)]


def test_encode_prepends_bos_and_cuts(tokenizer):
    ids = tokenizer.encode(["I love this airline", "", "good " * 500], 16)
    assert all(row[0] == BOS_ID for row in ids)
    assert ids[1] == [BOS_ID]  # an empty text is one token
    assert len(ids[2]) == 16 and len(ids[0]) < 16
    assert PAD_ID not in sum(ids, [])


def test_round_trip_reproduces_normalised_text(tokenizer):
    for text in ["i love this airline, the crew was great!", "café au lait 😀", "日本語 and привет"]:
        ids = tokenizer.encode([text], 1000)[0]
        assert tokenizer.decode(ids) == text  # lower-case NFKC text survives (byte fallback for unseen characters)
    assert tokenizer.decode(tokenizer.encode(["HELLO"], 100)[0]) == "hello"  # case folding


def test_unseen_script_uses_bytes_not_unknown(tokenizer):
    pieces = tokenizer.pieces("日本")
    assert any(p.startswith("<0x") for p in pieces)
    assert 1 not in tokenizer.encode(["日本 مرحبا"], 100)[0]  # never <unk>


def test_python_and_graph_tokenisation_give_identical_ids(tokenizer, varied_texts):
    pytest.importorskip("tensorflow_text")
    import tensorflow as tf

    texts = varied_texts + CORPUS[:200:7] + _random_texts(300)
    graph_tok = tf_tokenizer(tokenizer)
    for max_length in (8, 128):
        want = tokenizer.encode(texts, max_length)
        got = tf_encode(graph_tok, tf.constant(texts), max_length).numpy()
        assert got.shape == (len(texts), max(len(w) for w in want))
        for text, w, g in zip(texts, want, got):
            assert list(g[: len(w)]) == w, text[:40]
            assert not g[len(w):].any()  # the rest is padding


def test_save_load_round_trip(tokenizer, tmp_path, varied_texts):
    path = tokenizer.save(tmp_path / "tokenizer.model")
    again = SubwordTokenizer.load(path)
    assert again.proto == tokenizer.proto
    assert again.encode(varied_texts, 64) == tokenizer.encode(varied_texts, 64)


def test_bad_tokenizer_files_and_settings(tmp_path):
    bad = tmp_path / "tokenizer.model"
    bad.write_bytes(b"not a sentencepiece model")
    with pytest.raises(ModelError, match="not a SentencePiece tokenizer"):
        SubwordTokenizer.load(bad)
    with pytest.raises(ModelError, match="no tokenizer file"):
        SubwordTokenizer.load(tmp_path / "missing.model")
    with pytest.raises(DataError, match="at least"):
        SubwordTokenizer.train(CORPUS, MIN_VOCAB - 1)
    with pytest.raises(DataError, match="no text"):
        SubwordTokenizer.train(["", "   "], 1000)


def test_small_corpus_gets_a_smaller_vocabulary():
    tok = SubwordTokenizer.train(["one two three", "four five six"], 8000)
    assert MIN_VOCAB // 2 < tok.vocab_size < 8000
    assert np.all(np.asarray(tok.encode(["one two"], 10)[0]) < tok.vocab_size)
