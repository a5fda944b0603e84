"""The subword tokenizer inside TensorFlow graphs, for SavedModels that take strings.

The same SentencePiece model as `sensorium.runtime.tokenizer.SubwordTokenizer`, run by
tensorflow-text's op, so the SavedModel and the Python / edge paths produce identical ids.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sensorium.runtime.errors import MissingExtraError, ModelError
from sensorium.runtime.tokenizer import BOS_ID, PAD_ID, SubwordTokenizer


def tf_tokenizer(tokenizer: SubwordTokenizer) -> Any:
    """`tokenizer`'s model as an in-graph tokenizer (tensorflow_text.SentencepieceTokenizer)."""
    try:
        import tensorflow as tf
        import tensorflow_text as tf_text
    except ImportError:
        raise MissingExtraError('string-input SavedModels need tensorflow-text: '
                                'pip install "sensorium[full]"') from None
    return tf_text.SentencepieceTokenizer(model=tokenizer.proto, out_type=tf.int32)


def tf_normalize(texts: Any, name: str) -> Any:
    """In-graph `sensorium.runtime.text_norm.normalize`: string (B,) -> string (B,), the same rules in RE2."""
    import tensorflow as tf

    from sensorium.runtime.text_norm import RULES, check_normalization

    for pattern, replacement in RULES[check_normalization(name)]:
        texts = tf.strings.regex_replace(texts, pattern, replacement)
    return texts


def tf_encode(graph_tokenizer: Any, texts: Any, max_length: int) -> Any:
    """In-graph `SubwordTokenizer.encode`: string (B,) -> int32 (B, L) padded with PAD_ID, L <= max_length."""
    import tensorflow as tf

    ids = graph_tokenizer.tokenize(texts)  # ragged (B, None)
    ids = ids[:, : max_length - 1]
    bos = tf.fill([tf.shape(texts)[0], 1], tf.constant(BOS_ID, tf.int32))
    ids = tf.concat([tf.RaggedTensor.from_tensor(bos), ids], axis=1)
    return ids.to_tensor(default_value=PAD_ID)  # (B, L)


def load_text_saved_model(path: str | Path) -> Callable[..., Any]:
    """The serving_default signature of a text SavedModel (tensorflow_text imported first)."""
    import tensorflow as tf

    try:
        import tensorflow_text  # noqa: F401  (registers the SentencePiece op the graph uses)
    except ImportError:
        raise MissingExtraError('this SavedModel tokenises in the graph and needs tensorflow-text: '
                                'pip install "sensorium[full]"') from None
    try:
        return tf.saved_model.load(str(path)).signatures["serving_default"]
    except (KeyError, OSError, ValueError, RuntimeError) as exc:
        raise ModelError(f"{path}: unusable SavedModel ({str(exc).splitlines()[0][:200]})") from None
