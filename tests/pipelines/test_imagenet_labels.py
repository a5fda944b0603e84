"""ImageNet class names from tensorflow-datasets' synset list and WordNet 3.0, read as untrusted files."""
from __future__ import annotations

from pathlib import Path

import pytest

from sensorium.pipelines.datasets.imagenet_labels import imagenet_classes, read_synsets, tfds_labels_path
from sensorium.runtime.errors import DataError

WORDNET = Path("/usr/share/wordnet")


def test_names_come_from_wordnet_in_head_order_and_are_unique():
    classes = imagenet_classes(WORDNET)
    names = [c.name for c in classes]
    assert len(classes) == 1000 and len(set(names)) == 1000
    assert (classes[0].synset, classes[0].name, classes[0].lemmas) == ("n01440764", "tench", ("tench", "Tinca tinca"))
    assert names[281:286] == ["tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat"]
    assert names[967] == "espresso" and names[872] == "tripod"
    assert "crane (wading bird)" in names and "crane (lifting device)" in names  # qualified by the hypernym
    assert "large long-necked wading bird" in classes[names.index("crane (wading bird)")].gloss


def test_the_bundled_model_carries_the_same_names():
    labels = (Path(__file__).resolve().parents[2] / "assets/models/imagenet/labels.txt").read_text().splitlines()
    assert labels == [c.name for c in imagenet_classes(WORDNET)]


def test_bad_class_lists_and_databases_are_one_line(tmp_path):
    synsets = read_synsets(tfds_labels_path())
    bad = tmp_path / "labels.txt"
    bad.write_text("\n".join(synsets[:999] + ["x0144076"]))
    with pytest.raises(DataError, match="expected 1000 distinct WordNet noun ids .*found 'x0144076'"):
        read_synsets(bad)
    bad.write_text("\n".join(synsets[:999]))
    with pytest.raises(DataError, match="found 999"):
        read_synsets(bad)
    fake = tmp_path / "wordnet"
    fake.mkdir()
    (fake / "data.noun").write_bytes(b"  1 license text\n" * 1000)  # not WordNet 3.0: offsets point nowhere
    with pytest.raises(DataError, match="no WordNet 3.0 noun synset at offset 01440764"):
        imagenet_classes(fake)
    with pytest.raises(DataError, match="no WordNet noun database; install Debian's wordnet-base"):
        imagenet_classes(tmp_path / "nowhere")
