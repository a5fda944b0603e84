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
