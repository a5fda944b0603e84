"""Domain-neutral text normalisation of a text classifier: what it does to a text before tokenising.

A model records its normaliser by name (`text_normalization` in its metadata; "none" when absent), and
every path that feeds it applies the same one: training, the Keras and `.tflite` runtimes (here, with
Python's `re`) and the SavedModel (in the graph: `sensorium.pipelines.common.text_graph.tf_normalize`,
`tf.strings.regex_replace`, RE2). The patterns use
explicit ASCII classes, on which `re` and RE2 agree.

- "neutral-v1": links are removed and @handles become "@user", so which account a text addresses (the
  airline, the brand) or links to cannot carry its label; everything else is left as it is.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from sensorium.runtime.errors import ModelError

# (pattern, replacement), applied in order; RE2-compatible.
URL_PATTERN = r"(?:[Hh][Tt][Tt][Pp][Ss]?://|[Ww][Ww][Ww]\.)[^ \t\n\r\f]+"
HANDLE_PATTERN = r"@[A-Za-z0-9_]+"
RULES: dict[str, tuple[tuple[str, str], ...]] = {
    "none": (),
    "neutral-v1": ((URL_PATTERN, " "), (HANDLE_PATTERN, "@user")),
}
_COMPILED = {name: tuple((re.compile(p), r) for p, r in rules) for name, rules in RULES.items()}


def check_normalization(name: Any, source: str = "model") -> str:
    """`name` if it is a known normaliser, else a one-line ModelError."""
    if not isinstance(name, str) or name not in RULES:  # a list from a hostile file must not raise TypeError
        raise ModelError(f"{source}: unknown text_normalization {name!r} (known: {', '.join(RULES)})")
    return str(name)


def normalization_of(info: dict[str, Any], source: str = "model") -> str:
    """The normaliser a model's metadata (or a `.tflite` manifest, under "model") names; "none" if none."""
    name = info.get("text_normalization")
    if name is None and isinstance(info.get("model"), dict):
        name = info["model"].get("text_normalization")
    return check_normalization(name if name is not None else "none", source)


def normalize(texts: Sequence[str], name: str) -> list[str]:
    """The texts as the model named `name` reads them."""
    rules = _COMPILED[name]
    if not rules:
        return list(texts)
    out = []
    for text in texts:
        for pattern, replacement in rules:
            text = pattern.sub(replacement, text)
        out.append(text)
    return out


class NormalizingTokenizer:
    """A SubwordTokenizer that normalises texts first (`encode`, `encode_pieces`, `pieces`); everything
    else (proto, vocab_size, ids) is the wrapped tokenizer's."""

    def __init__(self, tokenizer: Any, name: str) -> None:
        self.tokenizer = tokenizer
        self.normalization = check_normalization(name)

    def __getattr__(self, item: str) -> Any:
        return getattr(self.tokenizer, item)

    def encode(self, texts: Sequence[str], max_length: int) -> list[list[int]]:
        return self.tokenizer.encode(normalize(texts, self.normalization), max_length)

    def encode_pieces(self, texts: Sequence[str]) -> list[list[int]]:
        return self.tokenizer.encode_pieces(normalize(texts, self.normalization))

    def pieces(self, text: str) -> list[str]:
        return self.tokenizer.pieces(normalize([text], self.normalization)[0])


def with_normalization(tokenizer: Any, name: str) -> Any:
    """`tokenizer` itself for "none", else it wrapped in a NormalizingTokenizer."""
    return tokenizer if check_normalization(name) == "none" or tokenizer is None else NormalizingTokenizer(tokenizer,
                                                                                                           name)
