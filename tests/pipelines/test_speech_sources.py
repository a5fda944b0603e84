"""Speech sources: manifests and the LibriSpeech layout give normalised (audio, transcript) pairs,
seeded splits, and one-line errors."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from sensorium.pipelines.speech.sources import load_utterances
from sensorium.runtime.errors import DataError


def _wav(path, seconds=0.2):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(int(16000 * seconds), "float32"), 16000)
    return path


def test_manifest_with_relative_paths_and_normalised_text(tmp_path):
    for i in range(10):
        _wav(tmp_path / "clips" / f"{i}.wav")
    rows = ["path,transcript"] + [f"clips/{i}.wav,Call {i} NOW!" for i in range(10)] + ["clips/0.wav,?!"]
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    items, split = load_utterances(str(tmp_path / "m.csv"), seed=0, default_split=None)
    assert split == "all" and len(items) == 10  # the punctuation-only row is skipped
    assert items.texts[3] == "call three now" and items.audio[3] == str(tmp_path / "clips" / "3.wav")
    train, _ = load_utterances(f"{tmp_path / 'm.csv'}@train", seed=0, default_split=None)
    test, _ = load_utterances(f"{tmp_path / 'm.csv'}@test", seed=0, default_split=None)
    assert len(train) == 8 and len(test) == 1 and not set(train.ids) & set(test.ids)
    again, _ = load_utterances(f"{tmp_path / 'm.csv'}@train", seed=0, default_split=None)
    assert again.ids == train.ids


def test_librispeech_layout(tmp_path):
    chapter = tmp_path / "LibriSpeech" / "dev-clean" / "84" / "121123"
    for n in range(3):
        _wav(chapter / f"84-121123-{n:04d}.flac".replace(".flac", ".wav"))
    (chapter / "84-121123.trans.txt").write_text(
        "84-121123-0000 GO DO YOU HEAR\n84-121123-0001 BUT IN LESS THAN FIVE MINUTES\n84-121123-0002 AT 10\n")
    items, _ = load_utterances(str(tmp_path / "LibriSpeech"), seed=0, default_split=None)
    assert items.texts == ["go do you hear", "but in less than five minutes", "at ten"]
    assert items.ids[0] == "84-121123-0000"


@pytest.mark.parametrize("content, message", [
    ("file,category\nx.wav,a\n", "no transcript column"),
    ("path,text\n,hello\n", "empty audio path"),
])
def test_bad_manifests(tmp_path, content, message):
    (tmp_path / "m.csv").write_text(content)
    with pytest.raises(DataError, match=message):
        load_utterances(str(tmp_path / "m.csv"), seed=0, default_split=None)


def test_unbuilt_speech_corpus_says_how_to_build_it(tmp_path, monkeypatch):
    monkeypatch.setenv("SENSORIUM_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(DataError, match="sensorium data speech"):
        load_utterances("builtin:speech@train", seed=0, default_split=None)


def test_folder_without_transcripts_and_unknown_builtin(tmp_path):
    with pytest.raises(DataError, match="no LibriSpeech"):
        load_utterances(str(tmp_path), seed=0, default_split=None)
    with pytest.raises(DataError, match="builtin:mnist is image data, not speech data; speech builtins: speech"):
        load_utterances("builtin:mnist", seed=0, default_split=None)
