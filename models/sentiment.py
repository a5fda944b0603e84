"""Text classifier (sentiment): subword ids -> Transformer encoder -> masked mean -> class probabilities.

Two encoders:

- ``transformer`` (default): our own blocks, trained from scratch on the task's text. Input: int32
  token ids (B, L) from the run's SentencePiece tokenizer, 0 = padding; L <= ``max_length``.
- ``hub:HANDLE``: a pretrained TF Hub text encoder (a TF2 SavedModel that maps a batch of strings to
  sentence vectors, such as nnlm-en-dim50 or universal-sentence-encoder), wrapped by the hub backbone
  layer and fine-tuned with the head. Input: the raw strings (B,). No tokenizer of ours is involved.

With ``lexicon="vader+afinn"`` (transformer encoder only) the pooled vector is joined by sentence
features from the VADER and AFINN lexicons, computed in the model from the token ids by
``PieceValence`` (its tables are non-trainable weights, so the saved and exported model keep them).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sensorium.runtime.sentiment import TextClassifier

if TYPE_CHECKING:
    import keras


TASK = TextClassifier.task  # the metadata names the task whose runtime predictor runs the model
INPUT_IDS = "token_ids"
INPUT_TEXT = "text"
# TextClassifierSpec.lexicon values ("none", or a name that models/blocks/lexicon.py's lexicon_entries reads)
LEXICONS = ("none", "vader+afinn")

# Registered TF Hub text encoders (string batch -> sentence vector); any other handle works too.
HUB_TEXT_ENCODERS = {
    "nnlm-en-dim50": "https://tfhub.dev/google/nnlm-en-dim50/2",
    "nnlm-en-dim128": "https://tfhub.dev/google/nnlm-en-dim128/2",
    "universal-sentence-encoder": "https://tfhub.dev/google/universal-sentence-encoder/4",
}


@dataclass
class TextClassifierSpec:
    """Architecture of a text classifier (the `model` section of a sentiment config)."""

    encoder: str = "transformer"  # or "hub:NAME|HANDLE" (a string -> vector TF Hub module)
    max_length: int = 128  # token ids per text, [BOS] included; longer texts are cut
    vocab_size: int = 8000  # subword pieces the tokenizer may learn (fewer on a small corpus)
    embed_dim: int = 128
    num_heads: int = 4
    ff_dim: int = 256
    num_layers: int = 2
    dropout: float = 0.1
    head_dropout: float = 0.2
    # "vader+afinn": sentence features from human-rated lexicons, computed in the model from its token
    # ids (models/blocks/lexicon.py) and joined to the pooled vector; "none" builds the plain model.
    lexicon: str = "none"
    # While training, zero the pooled Transformer vector of this fraction of the texts, so the head also
    # learns to decide from the lexicon features alone (identity at inference; needs a lexicon).
    branch_dropout: float = 0.0
    # What the model does to a text before tokenising it (runtime/text_norm.py): "neutral-v1" removes
    # links and turns @handles into "@user", so the account a text addresses cannot carry its label.
    text_normalization: str = "none"

    @property
    def uses_hub(self) -> bool:
        return self.encoder.startswith("hub:")

    def hub_handle(self) -> str:
        name = self.encoder[len("hub:"):]
        return HUB_TEXT_ENCODERS.get(name, name)


def build_text_classifier(spec: TextClassifierSpec, labels: Sequence[str], *, vocab_size: int | None = None,
                          info: dict[str, Any] | None = None) -> keras.Model:
    """The classifier; `vocab_size` is the trained tokenizer's (transformer encoder), `info` goes into
    the model's TaskMetadata together with the architecture."""
    import keras

    from sensorium.models.blocks import ClassifierHead, TaskMetadata
    from sensorium.models.blocks.transformer import (
        MaskedMeanPooling,
        TokenAndPositionEmbedding,
        TransformerEncoder,
        padding_mask,
    )
    if len(labels) < 2:
        raise ValueError(f"a classifier needs at least two labels, got {list(labels)}")
    meta = {"encoder": spec.encoder, "max_length": spec.max_length, **(info or {})}
    if spec.uses_hub:
        from sensorium.models.backbones.hub import HubBackbone

        text = keras.Input((), dtype="string", name=INPUT_TEXT)  # (B,)
        x = HubBackbone(spec.hub_handle(), name="encoder")(text)  # (B, D)
        inputs = text
        meta["input"] = "text"
    else:
        if not vocab_size:
            raise ValueError("the transformer encoder needs the tokenizer's vocab_size")
        ids = keras.Input((None,), dtype="int32", name=INPUT_IDS)  # (B, L)
        mask = padding_mask(ids)  # (B, L) bool
        x = TokenAndPositionEmbedding(vocab_size, spec.max_length, spec.embed_dim, name="embedding")(ids)  # (B, L, D)
        x = keras.layers.Dropout(spec.dropout, name="embedding_dropout")(x)
        for i in range(spec.num_layers):
            x = TransformerEncoder(spec.embed_dim, spec.num_heads, spec.ff_dim, dropout=spec.dropout,
                                   name=f"encoder{i}")(x, mask=mask)  # (B, L, D)
        x = keras.layers.LayerNormalization(epsilon=1e-6, name="final_norm")(x)
        x = MaskedMeanPooling(name="pool")(x, mask)  # (B, D)
        inputs = ids
        meta.update(input="token_ids", vocab_size=int(vocab_size))
        if spec.text_normalization != "none":
            meta["text_normalization"] = spec.text_normalization
        if spec.lexicon != "none":
            x = _with_lexicon(spec, ids, x, info or {}, int(vocab_size))  # (B, D + 32 + S)
            meta["lexicon"] = spec.lexicon
    probs = ClassifierHead(len(labels), dropout=spec.head_dropout, name="head")(x)  # (B, C)
    out = TaskMetadata(TASK, labels=list(labels), info=meta, name="task_metadata")(probs)
    return keras.Model(inputs, out, name="text_classifier")


def _with_lexicon(spec: TextClassifierSpec, ids: Any, pooled: Any, info: dict[str, Any], vocab_size: int) -> Any:
    """pooled (B, D) -> concat(branch-dropped pooled (B, D), lexicon features (B, S), Dense(32, gelu) of
    them (B, 32)); the lexicon tables are built from the tokenizer in `info["tokenizer_model"]`."""
    import base64

    import keras

    from sensorium.models.blocks.lexicon import BranchDropout, PieceValence, tables_for
    from sensorium.runtime.tokenizer import SubwordTokenizer

    if not info.get("tokenizer_model"):
        raise ValueError("the lexicon features need the tokenizer (info['tokenizer_model'])")
    tokenizer = SubwordTokenizer(base64.b64decode(info["tokenizer_model"]), source="the model's tokenizer")
    if tokenizer.vocab_size != vocab_size:
        raise ValueError(f"the tokenizer has {tokenizer.vocab_size} pieces, the model {vocab_size}")
    lex = PieceValence.from_tables(tables_for(tokenizer, spec.lexicon), name="lexicon")(ids)  # (B, S)
    lex_hidden = keras.layers.Dense(32, activation="gelu", name="lexicon_dense")(lex)  # (B, 32)
    if spec.branch_dropout > 0:
        pooled = BranchDropout(spec.branch_dropout, name="branch_dropout")(pooled)  # (B, D)
    return keras.layers.Concatenate(name="with_lexicon")([pooled, lex, lex_hidden])  # (B, D + S + 32)


def classification_loss(label_smoothing: float = 0.0) -> Any:
    """The training loss of class probabilities (B, C) against integer labels (B,): Keras' sparse
    cross-entropy, or with `label_smoothing` > 0 the registered `SmoothedSparseCrossentropy`, whose
    target keeps 1 - label_smoothing on the label and spreads label_smoothing evenly over the C classes."""
    if not label_smoothing:
        return "sparse_categorical_crossentropy"
    return smoothed_loss_class()(label_smoothing)


_SMOOTHED: type | None = None


def smoothed_loss_class() -> type:
    """`SmoothedSparseCrossentropy`, registered for saving and loading (a checkpoint compiled with it
    names it)."""
    global _SMOOTHED
    if _SMOOTHED is not None:
        return _SMOOTHED
    import keras

    @keras.saving.register_keras_serializable(package="sensorium", name="SmoothedSparseCrossentropy")
    class SmoothedSparseCrossentropy(keras.losses.Loss):
        """Cross-entropy of probabilities y_pred (B, C) with a smoothed one-hot target of y_true (B,) or (B, 1):
        -((1 - e) log p[y] + e / C * sum_c log p[c]) per text (B,); Keras reduces it with the sample weights."""

        def __init__(self, label_smoothing: float = 0.1, name: str = "smoothed_sparse_crossentropy",
                     **kwargs: Any) -> None:
            super().__init__(name=name, **kwargs)
            if not 0.0 <= float(label_smoothing) < 1.0:
                raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
            self.label_smoothing = float(label_smoothing)

        def call(self, y_true, y_pred):
            from keras import ops

            logp = ops.log(ops.clip(ops.cast(y_pred, "float32"), 1e-7, 1.0))  # (B, C)
            y_true = ops.reshape(ops.cast(y_true, "int32"), (-1, 1))  # (B, 1)
            nll = -ops.take_along_axis(logp, y_true, axis=-1)[:, 0]  # (B,)
            uniform = -ops.mean(logp, axis=-1)  # (B,): cross-entropy with the uniform target
            return (1.0 - self.label_smoothing) * nll + self.label_smoothing * uniform

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "label_smoothing": self.label_smoothing}

    _SMOOTHED = SmoothedSparseCrossentropy
    return _SMOOTHED
