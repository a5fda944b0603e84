"""Beam search's length penalty chosen on validation (issue 26): the choice rule, the model's own value in
its metadata (used when a caller gives none, refused in one line when it is not a number in [0, 5]), and a
tiny run that records its choice in its model, manifest, card and export manifest."""
from __future__ import annotations

import json

import numpy as np
import pytest
from test_translation_longrun import make_config, pairs, train_run  # noqa: F401  (pairs: a fixture)

from sensorium.pipelines.translation.length_penalty import choose_length_penalty
from sensorium.runtime.beam_search import DEFAULT_LENGTH_PENALTY
from sensorium.runtime.errors import ModelError
from sensorium.runtime.translation import Translator, model_length_penalty

REFERENCES = ["Die Datei wurde gespeichert", "Seite löschen", "Benutzer und Gruppen bearbeiten", "Ordner öffnen"]


class FakeTranslator:
    """Whole references at `good` alpha, their first word otherwise; records the alphas it decoded with."""

    def __init__(self, good: float):
        self.good, self.length_penalty, self.seen = good, 0.7, []

    def translate(self, texts: list[str], beam: int | None = None) -> list[str]:
        assert beam == 3 and len(texts) == len(REFERENCES)
        self.seen.append(self.length_penalty)
        return [r if self.length_penalty == self.good else r.split()[0] for r in REFERENCES]


def test_the_best_alpha_wins_by_the_minimum_gain_else_the_default():
    fake = FakeTranslator(good=1.0)
    choice = choose_length_penalty(fake, REFERENCES, REFERENCES, grid=[0.6, 1.0], beam=3)
    assert choice.alpha == 1.0 and choice.chrf[1.0] == pytest.approx(100.0)
    assert sorted(fake.seen) == [0.6, 1.0, DEFAULT_LENGTH_PENALTY]  # the default is always tried
    assert choice.chrf[0.6] == choice.chrf[DEFAULT_LENGTH_PENALTY] < 60
    assert fake.length_penalty == 0.7  # the caller's setting is restored
    assert choice.summary() == {"chosen": 1.0, "chrf": {f"{a:g}": round(c, 4) for a, c in choice.chrf.items()},
                                "pairs": 4, "beam": 3}
    # a gain below min_gain keeps the default; a tie among equals goes to the one nearest the default
    assert choose_length_penalty(FakeTranslator(1.0), REFERENCES, REFERENCES, grid=[1.0], beam=3,
                                 min_gain=101).alpha == DEFAULT_LENGTH_PENALTY
    assert choose_length_penalty(FakeTranslator(-1), REFERENCES, REFERENCES, grid=[0.6, 2.6],
                                 beam=3).alpha == DEFAULT_LENGTH_PENALTY
    with pytest.raises(ValueError):
        choose_length_penalty(fake, REFERENCES, REFERENCES[:2], beam=3)


def test_the_model_length_penalty_is_used_when_the_caller_gives_none(monkeypatch):
    import sensorium.runtime.beam_search as bs
    from sensorium.runtime.tokenizer import SubwordTokenizer, Tokenizers

    used = []

    def fake_beam_search(step, n, *, length_penalty, **kwargs):
        used.append(length_penalty)
        return [[] for _ in range(n)]

    monkeypatch.setattr(bs, "beam_search", fake_beam_search)
    tok = SubwordTokenizer.train(["save the file", "delete the page"] * 20, 384, case_fold=False)
    encode = lambda ids: np.zeros((*ids.shape, 4), np.float32)  # noqa: E731
    step = lambda memory, ids, prefixes: np.zeros((len(prefixes), tok.vocab_size), np.float32)  # noqa: E731
    for explicit, tuned, expected in [(None, None, DEFAULT_LENGTH_PENALTY), (None, 0.8, 0.8), (1.3, 0.8, 1.3)]:
        t = Translator(encode, step, Tokenizers(tok, tok), 16, 16, "fake", length_penalty=explicit,
                       tuned_length_penalty=tuned)
        t.translate(["save the file"], beam=2)
        assert used[-1] == expected


@pytest.mark.parametrize("value", ["1.0", True, -0.1, 5.5, float("nan"), [1.0]])
def test_a_bad_length_penalty_in_a_model_is_one_line(value):
    with pytest.raises(ModelError, match="length_penalty must be a number between 0 and 5") as info:
        model_length_penalty({"length_penalty": value}, "hostile.tflite")
    assert "\n" not in str(info.value) and str(info.value).startswith("hostile.tflite: ")
    assert model_length_penalty({"max_source_length": 8}, "m") is None and model_length_penalty(None, "m") is None
    assert model_length_penalty({"length_penalty": 1}, "m") == 1.0


def test_a_run_records_its_chosen_length_penalty(pairs, tmp_path):  # noqa: F811
    from sensorium.export.translation import TranslationExportSource
    from sensorium.pipelines.common.artifacts import inspect_artifact
    from sensorium.pipelines.translation.predict import load

    cfg = make_config(pairs, epochs=2, length_penalty_grid=[0.6, 1.0], length_penalty_pairs=5)
    cfg.beam = 2
    out = tmp_path / "run"
    summary = train_run(cfg, out)
    lp = summary["length_penalty"]
    assert lp["pairs"] == 5 and lp["beam"] == 2 and set(lp["chrf"]) == {"0.6", "1", "2"}
    assert lp["chosen"] in (0.6, 1.0, 2.0)
    assert json.loads((out / "sensorium.json").read_text())["summary"]["length_penalty"] == lp
    assert f"length penalty | {lp['chosen']:g}, chosen on 5 validation pairs" in (out / "model_card.md").read_text()
    assert load(out).tuned_length_penalty == lp["chosen"]
    source = TranslationExportSource.load(inspect_artifact(out))
    assert source.manifest("tflite", "dynamic", "0")["model"]["length_penalty"] == lp["chosen"]

    greedy = make_config(pairs, epochs=1, length_penalty_grid=[0.6])
    greedy.beam = 1  # no beam search: nothing to choose
    assert "length_penalty" not in train_run(greedy, tmp_path / "greedy")
    assert load(tmp_path / "greedy").tuned_length_penalty is None


def test_the_grid_is_checked():
    from sensorium.pipelines.translation.config import TranslationConfig
    from sensorium.runtime.errors import UsageError

    for grid, pairs_ in [([], 10), ([6.0], 10), (["2"], 10), ([1.0], 0)]:
        cfg = TranslationConfig()
        cfg.data.spec = "builtin:ui-de"
        cfg.train.length_penalty_grid, cfg.train.length_penalty_pairs = grid, pairs_
        with pytest.raises(UsageError, match="length_penalty"):
            cfg.validate()
