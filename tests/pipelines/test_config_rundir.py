import json

import pytest

from sensorium.pipelines.common.config import config_to_dict, resolve_config
from sensorium.pipelines.common.rundir import RunDir
from sensorium.pipelines.image.config import ImageClassificationConfig
from sensorium.runtime.atomic import atomic_path, atomic_write_text
from sensorium.runtime.errors import ModelError, UsageError
from sensorium.runtime.registry import Registry, RegistryError


def test_config_file_then_flags(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  epochs: 3\n  batch_size: 16\nmodel:\n  widths: [8, 16]\n")
    cfg = resolve_config(ImageClassificationConfig, f, {"train.epochs": 5, "model.image_size": [32, 32]})
    assert cfg.train.epochs == 5 and cfg.train.batch_size == 16
    assert tuple(cfg.model.widths) == (8, 16) and tuple(cfg.model.image_size) == (32, 32)
    # the resolved config is valid --config input again, and round-trips exactly
    again = tmp_path / "config.json"
    again.write_text(json.dumps(config_to_dict(cfg)))
    assert config_to_dict(resolve_config(ImageClassificationConfig, again, {})) == config_to_dict(cfg)


@pytest.mark.parametrize("text, match", [
    ('{"train": {"epochz": 1}}', "unknown key.*epochz"),
    ('{"train": {"epochs": "many"}}', "train.epochs: expected int"),
    ('{"train": {"optimizer": "rmsprop"}}', "not one of"),
    ("[1, 2]", "must hold a mapping"),
    ("{not json", "not valid JSON"),
])
def test_bad_config_files(tmp_path, text, match):
    f = tmp_path / "c.json"
    f.write_text(text)
    with pytest.raises(UsageError, match=match):
        resolve_config(ImageClassificationConfig, f, {})


def _laughs(levels: int) -> str:
    """A "billion laughs" YAML: each level an anchored list of nine aliases of the one before."""
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "\n".join(lines + [f"train: *l{levels - 1}"]) + "\n"


@pytest.mark.parametrize("text", [_laughs(3), "train:\n  epochs: &n 3\n", "base: &b {epochs: 3}\ntrain:\n  <<: *b\n"])
def test_yaml_anchors_and_aliases_are_refused(tmp_path, text):
    f = tmp_path / "c.yaml"
    f.write_text(text)
    with pytest.raises(UsageError, match=r"not valid YAML: anchors and aliases .* are not allowed in a config"):
        resolve_config(ImageClassificationConfig, f, {})


@pytest.mark.parametrize("name, text, match", [
    ("big.json", '{"seed": 1, "pad": "' + "x" * (1 << 20) + '"}', "is larger than 1024 kB"),
    ("deep.json", "[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ("deep.yaml", "a: " + "[" * 5_000 + "]" * 5_000 + "\n", "nested too deeply"),
    ("latin1.yaml", "seed: 1 # caf\xe9\n".encode("latin-1"), "not UTF-8 text"),
])
def test_config_files_are_capped_and_checked(tmp_path, name, text, match):
    f = tmp_path / name
    f.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(UsageError, match=match) as err:
        resolve_config(ImageClassificationConfig, f, {})
    assert len(str(err.value)) < 300


@pytest.mark.parametrize("data", [
    {"train": {"epochs": ["x" * 100] * 5000}},  # a large value of the wrong type
    {"train": {"optimizer": "y" * 500_000}},  # not one of the choices
    {"train": {"z" * 500_000: 1}},  # an unknown key
    {"model": {"image_size": [[[[[[1]]]]]] * 1000}},  # nested
])
def test_errors_quote_values_briefly(tmp_path, data):
    f = tmp_path / "c.json"
    f.write_text(json.dumps(data))
    with pytest.raises(UsageError) as err:
        resolve_config(ImageClassificationConfig, f, {})
    assert len(str(err.value)) < 400 and "\n" not in str(err.value)


def test_flags_under_a_key_that_is_not_a_mapping(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("train: 5\n")
    with pytest.raises(UsageError, match="config: train must be a mapping to set train.epochs, got 5"):
        resolve_config(ImageClassificationConfig, f, {"train.epochs": 3})


def test_registry_errors_list_known_names():
    reg = Registry("widget")
    reg.register("a", 1)
    reg.register("b", 2)
    with pytest.raises(RegistryError, match="unknown widget 'c'; known: a, b"):
        reg.get("c")
    with pytest.raises(RegistryError, match="already registered"):
        reg.register("a", 3)


def test_rundir_lifecycle(tmp_path):
    run = RunDir.create(tmp_path / "r", "image")
    assert run.read_manifest()["status"] == "training"
    assert set(run.read_manifest()) >= {"schema_version", "task", "status", "created", "versions"}
    with pytest.raises(ModelError, match="not complete"):
        run.require_complete()
    with pytest.raises(UsageError, match="already holds a run"):
        RunDir.create(tmp_path / "r", "image")
    with pytest.raises(UsageError, match="holds a 'image' run, not 'speech'"):
        RunDir.create(tmp_path / "r", "speech", resume=True)
    assert RunDir.create(tmp_path / "r", "image", resume=True).read_manifest()["resumed"] == 1
    run.model_path.write_bytes(b"x")
    run.set_status("complete")
    assert run.require_complete("image")["status"] == "complete"
    with pytest.raises(ModelError, match="is a 'image' model, not 'speech'"):
        run.require_complete("speech")
    with pytest.raises(UsageError, match="already complete"):
        RunDir.create(tmp_path / "r", "image", resume=True)


def test_rundir_refuses_foreign_folder(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(UsageError, match="non-empty folder"):
        RunDir.create(tmp_path, "image")
    assert (tmp_path / "mine.txt").read_text() == "keep me"


def test_atomic_writes_leave_old_file_on_failure(tmp_path):
    target = tmp_path / "a.txt"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]
    assert oct(target.stat().st_mode & 0o777) != oct(0o600)


def test_a_speech_run_from_before_0_8_loads_with_its_own_defaults(tmp_path):
    """A run written before per-utterance normalisation and augmentation resumes, evaluates and exports
    as the model it is (training-set statistics, no warping, no augmentation), not with today's defaults."""
    import json
    from dataclasses import asdict

    from sensorium.pipelines.common.rundir import RunDir
    from sensorium.pipelines.speech.config import SpeechConfig

    current = json.loads(json.dumps(asdict(SpeechConfig()), default=list))
    old = {key: value for key, value in current.items() if key != "augment"}
    old["model"] = {k: v for k, v in current["model"].items() if k not in ("normalization", "freq_warp")}
    for folder, data in (("old", old), ("new", current)):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "config.json").write_text(json.dumps(data))
    legacy = RunDir(tmp_path / "old").load_config(SpeechConfig)
    assert (legacy.model.normalization, legacy.model.freq_warp, legacy.augment.levers) == ("global", 0.0, [])
    today = RunDir(tmp_path / "new").load_config(SpeechConfig)
    assert (today.model.normalization, today.model.freq_warp) == ("utterance", 0.1)
    assert today.augment.levers == SpeechConfig().augment.levers and today.augment.levers
    assert RunDir(tmp_path / "old").load_config(SpeechConfig, {"augment.levers": ["noise"]}).augment.levers == ["noise"]
