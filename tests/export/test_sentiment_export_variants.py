"""Which quantisations a sentiment model offers: int8 is refused in one line for lexicon models."""
from __future__ import annotations

import pytest

from sensorium.export.api import _supported
from sensorium.export.sentiment import SentimentExportSource
from sensorium.runtime.errors import UsageError


def _source(info):
    return SentimentExportSource(artifact=None, model=None, labels=["negative", "positive"], info=info,
                                 tokenizer=object())


def test_a_lexicon_model_offers_no_int8_and_says_why():
    plain, lexicon = _source({}), _source({"lexicon": "vader+afinn"})
    assert plain.quantizations == ("none", "dynamic", "float16", "int8") and not plain.unavailable
    assert "int8" not in lexicon.quantizations
    with pytest.raises(UsageError, match="not offered for sentiment models with lexicon features"):
        _supported(lexicon, "tflite", ["int8"], all_variants=False)
    assert _supported(lexicon, "tflite", ["none", "dynamic", "float16", "int8"], all_variants=True) == [
        "none", "dynamic", "float16"]  # --quantize all skips it
