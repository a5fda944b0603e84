"""The synthetic speech corpus (`sensorium_speech`): offline, tiny, deterministic.

Needs Debian's espeak-ng and flite (apt-get install espeak-ng flite); skipped without them.
"""
from __future__ import annotations

import re
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest

from sensorium.pipelines.datasets import synth
from sensorium.runtime.errors import DataError
from sensorium.runtime.transcripts import normalize_transcript

pytestmark = pytest.mark.skipif(
    shutil.which("espeak-ng") is None or shutil.which("flite") is None,
    reason="the speech corpus needs espeak-ng and flite: apt-get install espeak-ng flite",
)

TINY = {"train": 12, "validation": 4, "test": 4}


@pytest.fixture(scope="module")
def corpus():
    """The corpus module (imports TensorFlow Datasets; skipped without it)."""
    pytest.importorskip("tensorflow_datasets")
    from sensorium.pipelines.datasets import speech_corpus as corpus_module

    return corpus_module


@pytest.fixture(scope="module")
def tiny_default(corpus, tmp_path_factory) -> Path:
    return corpus.build_corpus(tmp_path_factory.mktemp("speech_default"), sizes=TINY, seed=0)


@pytest.fixture(scope="module")
def tiny_holdout(corpus, tmp_path_factory) -> Path:
    return corpus.build_corpus(tmp_path_factory.mktemp("speech_holdout"), config="engine_holdout", sizes=TINY, seed=0)


def _examples(corpus, out: Path, split: str, config: str = "default") -> list[dict]:
    rows = []
    for ex in corpus.load_corpus(out, split, config=config).as_numpy_iterator():
        rows.append({k: (v.decode() if isinstance(v, bytes) else v) for k, v in ex.items()})
    return sorted(rows, key=lambda r: r["id"])


def _metadata(corpus, out: Path, config: str = "default") -> dict:
    import tensorflow_datasets as tfds

    return dict(tfds.builder(f"{corpus.NAME}/{config}", data_dir=str(out)).info.metadata)


# === Synthesiser and mixing ===
def test_available_voices_are_english_and_usable():
    voices = synth.available_voices()
    engines = {v.engine for v in voices}
    assert engines == {"espeak-ng", "flite"}
    flite = {v.name for v in voices if v.engine == "flite"}
    assert {"slt", "kal"} <= flite and "awb_time" not in flite
    for v in voices:
        if v.engine == "espeak-ng":
            base, _, variant = v.name.partition("+")
            assert base.startswith("en") and variant in synth.ESPEAK_VARIANTS
    assert synth.Voice.parse("espeak-ng:en-us+f3") == synth.Voice("espeak-ng", "en-us+f3")
    audio, sr = synth.synthesize("flite:slt", "go left", rate=1.2, pitch=1.1)
    assert audio.dtype == np.float32 and audio.ndim == 1 and sr == 16000
    assert 0 < np.abs(audio).max() <= 1.0


@pytest.mark.parametrize("engine", ["espeak-ng", "flite"])
def test_missing_engine_is_one_line_with_apt_hint(monkeypatch, engine):
    monkeypatch.setenv("PATH", "")
    voice = synth.Voice(engine, "en-us+m1" if engine == "espeak-ng" else "slt")
    with pytest.raises(DataError) as info:
        synth.synthesize(voice, "stop")
    message = str(info.value)
    assert "\n" not in message and f"apt-get install {engine}" in message
    assert synth.available_voices() == []


def test_unknown_voice_is_one_line_error():
    with pytest.raises(DataError) as info:
        synth.synthesize("espeak-ng:xx-nope", "stop")
    assert "\n" not in str(info.value)
    with pytest.raises(DataError):
        synth.Voice.parse("no-engine-here")


@pytest.mark.parametrize("colour", ["white", "pink", "brown"])
def test_add_noise_hits_the_snr(colour):
    rng = np.random.default_rng(0)
    clean = np.sin(np.linspace(0, 400 * np.pi, 16000)).astype(np.float32)
    noisy = synth.add_noise(clean, 10.0, rng, colour)
    snr = 10 * np.log10(np.mean(clean ** 2) / np.mean((noisy - clean) ** 2))
    assert noisy.dtype == np.float32 and abs(snr - 10.0) < 0.01
    assert np.array_equal(synth.add_noise(clean, float("inf"), rng), clean)


def test_resample_and_peak_normalize():
    audio = np.sin(np.linspace(0, 100 * np.pi, 22050)).astype(np.float32) * 0.3
    out = synth.resample(audio, 22050)
    assert out.dtype == np.float32 and abs(out.size - 16000) <= 1
    assert np.isclose(np.abs(synth.peak_normalize(out, 0.9)).max(), 0.9)
    assert not synth.peak_normalize(np.zeros(10, np.float32)).any()


# === Planning ===
def test_plan_is_deterministic_and_uses_word_file(corpus, tmp_path):
    words = tmp_path / "words.txt"
    words.write_text("# my prompts\nHello World\n\n2024 is here\nCafé au lait\n", encoding="utf-8")
    voices = synth.available_voices()
    config = corpus.SensoriumSpeech.builder_configs["default"]
    opts = corpus.CorpusOptions(sizes=corpus.SplitSizes(40, 10, 10), seed=3, word_file=str(words), word_fraction=0.5)
    a = corpus.plan_corpus(config, voices, opts)
    b = corpus.plan_corpus(config, voices, opts)
    assert a == b
    c = corpus.plan_corpus(config, voices, corpus.CorpusOptions(sizes=opts.sizes, seed=4, word_file=str(words)))
    assert [u.text for u in a["train"]] != [u.text for u in c["train"]]
    user = {u.text for s in a.values() for u in s if u.kind == "user"}
    assert user and user <= {"hello world", "two thousand twenty four is here", "cafe au lait"}
    # a split's content does not depend on the other splits' sizes
    bigger = corpus.plan_corpus(config, voices, corpus.CorpusOptions(
        sizes=corpus.SplitSizes(80, 10, 10), seed=3, word_file=str(words), word_fraction=0.5))
    assert bigger["test"] == a["test"]
    with pytest.raises(DataError):
        corpus.read_word_file(tmp_path / "missing.txt")


def test_engine_holdout_varied_hears_its_extra_variants_in_training_only(corpus):
    """Pure (a made-up voice list, no synthesis): the extra espeak-ng variants go to training or
    nowhere, and validation and test are engine_holdout's voices and utterances."""
    configs = corpus.SensoriumSpeech.builder_configs
    varied, holdout = configs["engine_holdout_varied"], configs["engine_holdout"]
    assert varied.extra_train_variants == synth.ESPEAK_EXTRA_VARIANTS and not holdout.extra_train_variants
    assert not set(synth.ESPEAK_EXTRA_VARIANTS) & set(synth.ESPEAK_VARIANTS)
    variants = synth.ESPEAK_VARIANTS + synth.ESPEAK_EXTRA_VARIANTS
    bases = ("en-us", "en-gb", "en-029", "en-gb-x-gbcwmd")
    flite = [synth.Voice("flite", name) for name in ("awb", "kal", "kal16", "rms", "slt")]
    voices = [synth.Voice("espeak-ng", f"{b}+{v}") for b in bases for v in variants] + flite
    plain = [v for v in voices if v.name.partition("+")[2] not in synth.ESPEAK_EXTRA_VARIANTS]
    got, ref = corpus.assign_voices(varied, voices), corpus.assign_voices(holdout, plain)
    assert got["validation"] == ref["validation"] and got["test"] == ref["test"] == flite
    assert set(ref["train"]) < set(got["train"])
    assert len(got["train"]) == 3 * (len(variants) - 2)  # every accent but gbcwmd, every variant but m6, f3
    for voice in got["train"]:
        base, variant = voice.name.split("+")
        assert voice.engine == "espeak-ng" and base != "en-gb-x-gbcwmd" and variant not in ("m6", "f3"), voice
    # a held-out accent with an extra variant is not used at all (engine_holdout would validate on it)
    gbcwmd_klatt = synth.Voice("espeak-ng", "en-gb-x-gbcwmd+klatt")
    assert varied.split_of(gbcwmd_klatt) is None and holdout.split_of(gbcwmd_klatt) == "validation"
    opts = corpus.CorpusOptions(sizes=corpus.SplitSizes(40, 20, 20), seed=1)
    a, b = corpus.plan_corpus(varied, voices, opts), corpus.plan_corpus(holdout, plain, opts)
    assert a["validation"] == b["validation"] and a["test"] == b["test"]
    assert {u.voice for u in a["train"]} <= set(got["train"])
    # the installed voices: the other configs draw from exactly the voices they always did
    assert holdout.voices() == configs["default"].voices() == synth.available_voices()
    assert set(holdout.voices()) < set(varied.voices())


# === The built corpus ===
def test_splits_and_counts(corpus, tiny_default):
    import tensorflow_datasets as tfds

    builder = tfds.builder("sensorium_speech", data_dir=str(tiny_default))
    assert builder.builder_config.name == "default"
    assert {name: split.num_examples for name, split in builder.info.splits.items()} == TINY
    for split, n in TINY.items():
        rows = _examples(corpus, tiny_default, split)
        assert len(rows) == n and len({r["id"] for r in rows}) == n


def test_test_voices_are_never_heard_in_training(corpus, tiny_default):
    voices = _metadata(corpus, tiny_default)["voices"]
    train, val, test = (set(voices[s]) for s in ("train", "validation", "test"))
    assert train and val and test
    assert not (train & test) and not (train & val) and not (val & test)
    # each held-out espeak-ng voice has an accent or a variant that training lacks
    train_bases = {v.split(":")[1].split("+")[0] for v in train if v.startswith("espeak-ng:")}
    train_variants = {v.split("+")[1] for v in train if v.startswith("espeak-ng:")}
    for v in test | val:
        if v.startswith("espeak-ng:"):
            base, variant = v.split(":")[1].split("+")
            assert base not in train_bases or variant not in train_variants, v
    for split, allowed in (("train", train), ("validation", val), ("test", test)):
        assert {r["voice"] for r in _examples(corpus, tiny_default, split)} <= allowed


def test_engine_holdout_trains_on_espeak_and_tests_on_flite(corpus, tiny_holdout):
    for split, engine in (("train", "espeak-ng"), ("validation", "espeak-ng"), ("test", "flite")):
        rows = _examples(corpus, tiny_holdout, split, config="engine_holdout")
        assert {r["engine"] for r in rows} == {engine}
        assert all(r["voice"].startswith(engine + ":") for r in rows)
    voices = _metadata(corpus, tiny_holdout, "engine_holdout")["voices"]
    assert all(v.startswith("flite:") for v in voices["test"])
    assert all(v.startswith("espeak-ng:") for v in voices["train"] + voices["validation"])


def test_transcripts_are_normalised(corpus, tiny_default):
    rows = [r for s in TINY for r in _examples(corpus, tiny_default, s)]
    for r in rows:
        text = r["text"]
        assert text and text == normalize_transcript(text)
        assert re.fullmatch(r"[a-z']+( [a-z']+)*", text), text
        assert r["kind"] in {"digits", "command"}
        if r["kind"] == "command":
            assert text in corpus.COMMANDS
        else:
            assert 1 <= len(text.split()) <= 7


def test_audio_is_16khz_pcm_and_grows_with_text(corpus, tiny_default):
    import tensorflow_datasets as tfds

    assert tfds.builder("sensorium_speech", data_dir=str(tiny_default)).info.features["audio"].sample_rate == 16000
    rows = [r for s in TINY for r in _examples(corpus, tiny_default, s)]
    lengths, chars = [], []
    for r in rows:
        audio = r["audio"]
        assert audio.dtype == np.int16 and audio.ndim == 1 and audio.size > 1600  # > 0.1 s
        scaled = audio.astype(np.float32) / 32768.0
        assert scaled.any() and np.abs(scaled).max() <= 1.0
        assert 0.85 <= np.abs(scaled).max() <= 0.91  # peak-normalised to 0.9
        assert 0.8 <= r["rate"] <= 1.3 and 0.8 <= r["pitch"] <= 1.25
        assert (r["noise"] == "none") == bool(np.isinf(r["snr_db"]))
        lengths.append(audio.size)
        chars.append(len(r["text"]))
    assert np.corrcoef(chars, lengths)[0, 1] > 0.5


def test_same_seed_same_corpus_and_no_network(corpus, tiny_default, tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("the corpus build tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    again = corpus.build_corpus(tmp_path / "again", sizes=TINY, seed=0)
    other = corpus.build_corpus(tmp_path / "other", sizes=TINY, seed=1)
    for split in TINY:
        a = _examples(corpus, tiny_default, split)
        b = _examples(corpus, again, split)
        assert [(r["id"], r["text"], r["voice"], r["snr_db"]) for r in a] == \
            [(r["id"], r["text"], r["voice"], r["snr_db"]) for r in b]
        assert all(np.array_equal(x["audio"], y["audio"]) for x, y in zip(a, b, strict=True))
    assert [r["text"] for r in _examples(corpus, other, "train")] != \
        [r["text"] for r in _examples(corpus, tiny_default, "train")]


def test_rebuilding_reuses_or_refuses(corpus, tiny_default):
    assert corpus.build_corpus(tiny_default, sizes=TINY, seed=0) == tiny_default  # same options: reused
    with pytest.raises(DataError) as info:
        corpus.build_corpus(tiny_default, sizes=TINY, seed=5)
    assert "overwrite" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(DataError):
        corpus.build_corpus(tiny_default, config="nope", sizes=TINY)
    with pytest.raises(DataError):
        corpus.build_corpus(tiny_default, sizes={"train": 0})


def test_tfds_load_reads_it_like_any_dataset(corpus, tiny_default, tiny_holdout):
    import tensorflow_datasets as tfds

    ds = tfds.load("sensorium_speech", data_dir=str(tiny_default), split="train")
    assert sum(1 for _ in ds) == TINY["train"]
    ds, info = tfds.load("sensorium_speech/engine_holdout", data_dir=str(tiny_holdout), split="test",
                         as_supervised=True, with_info=True)
    audio, text = next(iter(ds))
    assert audio.dtype.name == "int16" and text.dtype.name == "string"
    assert info.splits["test"].num_examples == TINY["test"]
    from sensorium.pipelines.common.tfds_source import find_feature

    assert find_feature(info, ("Audio",), "audio") == "audio"
    assert isinstance(info.features["audio"], tfds.features.Audio)
    with pytest.raises(DataError):
        corpus.load_corpus(tiny_default, "dev")


def test_corpus_card_lists_voices(corpus, tiny_default):
    card = (tiny_default / "CORPUS.md").read_text(encoding="utf-8")
    assert "synthetic" in card and "normalize_transcript" in card
    for split, voices in _metadata(corpus, tiny_default)["voices"].items():
        assert f"Voices in {split} ({len(voices)})" in card
        assert all(f"`{v}`" in card for v in voices)
    for split, n in TINY.items():
        assert re.search(rf"\| {split} \| {n} \|", card)


def test_overwrite_rebuilds_with_new_options(corpus, tmp_path):
    import tensorflow_datasets as tfds

    out = corpus.build_corpus(tmp_path, sizes={"train": 3, "validation": 2, "test": 2}, seed=0)
    corpus.build_corpus(out, sizes={"train": 2, "validation": 2, "test": 2}, seed=1, overwrite=True)
    info = tfds.builder("sensorium_speech", data_dir=str(out)).info
    assert info.splits["train"].num_examples == 2 and info.metadata["options"]["seed"] == 1


def test_synthesis_failure_is_one_line_and_leaves_nothing(corpus, tmp_path, monkeypatch):
    def broken(voice, text, **kwargs):
        raise DataError(f"{voice} failed: Segmentation fault")

    monkeypatch.setattr(corpus.synth, "synthesize", broken)
    with pytest.raises(DataError) as info:
        corpus.build_corpus(tmp_path, sizes={"train": 2, "validation": 1, "test": 1})
    assert "\n" not in str(info.value) and "Segmentation fault" in str(info.value)
    assert not list(tmp_path.rglob("*.tfrecord*")) and not (tmp_path / "CORPUS.md").exists()
