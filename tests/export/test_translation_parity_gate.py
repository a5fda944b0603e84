"""The translation export gate: identical translations AND chrF close to Keras's AND placeholders kept.

The gate used to pass a quantised file at agreement 0 when its corpus chrF was within a point of
Keras's; a file that rewrites every sentence is a broken export even if its chrF happens to be close."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from sensorium.export.translation import AGREEMENT, TranslationExportSource

SOURCES = [f"Delete the file number {i} now?" for i in range(40)] + [f"Save %(name)s as copy {i}" for i in range(10)]
KERAS = [f"Die Datei Nummer {i} jetzt löschen?" for i in range(40)] + [f"%(name)s als Kopie {i} speichern"
                                                                       for i in range(10)]
REFERENCES = ([f"Datei {i} sofort entfernen?" for i in range(40)]
              + [f"%(name)s unter Kopie {i} sichern" for i in range(10)])


def _parity(outputs: list[str], variant: str = "dynamic") -> dict:
    source = SimpleNamespace(tokenizers=SimpleNamespace(target=SimpleNamespace(
        encode_pieces=lambda texts: [t.split() for t in texts])))
    return TranslationExportSource.parity(source, variant, lambda texts: outputs[: len(texts)] if len(texts) > 1
                                          else [outputs[SOURCES.index(texts[0])]], (SOURCES, REFERENCES), KERAS,
                                          size_bytes=1, path="x.tflite", latency_runs=1)


def test_identical_translations_pass_and_name_their_figures():
    row = _parity(KERAS)
    assert row["passed"] and row["agreement"] == 1.0 and row["chrf"] == pytest.approx(row["keras_chrf"])
    assert {"latency_ms_median", "ms_per_sentence_batched", "tokens_per_second_batched"} <= set(row)
    assert row["latency_calls"] == 20  # single-sentence calls: a real median latency


def test_every_sentence_changed_fails_even_with_close_chrf():
    changed = [k.replace("Die ", "").replace(" als ", " zu ") for k in KERAS]  # every sentence differs a bit
    row = _parity(changed)
    assert row["agreement"] == 0.0 and abs(row["chrf"] - row["keras_chrf"]) <= 1.0  # the old rule passed it
    assert not row["passed"]


def test_a_few_changes_pass_but_lost_placeholders_fail():
    few = list(KERAS)
    for i in range(3):  # 6% of the sentences
        few[i] = few[i].replace("Nummer", "Nr.")
    row = _parity(few)
    assert row["agreement"] == pytest.approx(47 / 50) and row["agreement"] >= AGREEMENT["dynamic"] and row["passed"]
    lost = list(KERAS)
    lost[45] = "als Kopie 5 speichern"  # the %(name)s of its source is gone
    assert not _parity(lost)["passed"]
