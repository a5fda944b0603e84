"""Shared fixtures: offline, tiny, deterministic."""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# The default suite keeps the Eigen kernels its tolerances were set with; the CLI runs with oneDNN on, and
# tests/pipelines/test_onednn_stress.py (slow) trains the image ResNet with it in child processes.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

ASSETS = Path(__file__).resolve().parents[1] / "assets"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI (CI=true) a skipped test fails: CI installs everything the tests need (espeak-ng, flite,
    gettext, gpg, apache-beam, the MNIST cache), so a skip means a missing dependency, not a choice.
    Elsewhere skips are listed at the end of the run (-rs in pytest's addopts)."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") == "true" and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, where every test dependency must be installed: {reason}"


def _asset_state() -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(ASSETS)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(ASSETS.rglob("*")) if p.is_file()}


@pytest.fixture(scope="session", autouse=True)
def bundled_assets_untouched():
    """Tests read the bundled models and examples but never change them (an evaluation without `out`
    writes into a run directory: tests must pass one)."""
    before = _asset_state()
    yield
    after = _asset_state()
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    assert not changed, f"tests changed bundled assets: {changed[:10]}"


def _shape_image(kind: str, rng: np.random.Generator, size: int = 16) -> np.ndarray:
    """A noisy RGB image of a solid square (kind 'square') or a horizontal bar (kind 'bar')."""
    img = rng.integers(0, 40, (size, size, 3), dtype=np.uint8)
    if kind == "square":
        img[4:12, 4:12] = 220
    else:
        img[7:9, 1:15] = 220
    return img


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory) -> Path:
    """A folder dataset: two classes x 15 PNGs of 16x16 shapes (easy to learn)."""
    from PIL import Image

    root = tmp_path_factory.mktemp("shapes")
    rng = np.random.default_rng(0)
    for cls in ("bar", "square"):
        (root / cls).mkdir()
        for i in range(15):
            Image.fromarray(_shape_image(cls, rng)).save(root / cls / f"{cls}{i:02d}.png")
    return root


@pytest.fixture(scope="session")
def shapes32(image_folder, tmp_path_factory) -> Path:
    """`image_folder` at 32x32 (each pixel doubled): pretrained backbones refuse images under 32 px."""
    from PIL import Image

    root = tmp_path_factory.mktemp("shapes32")
    for src in image_folder.glob("*/*.png"):
        (root / src.parent.name).mkdir(exist_ok=True)
        Image.open(src).resize((32, 32), Image.NEAREST).save(root / src.parent.name / src.name)
    return root


@pytest.fixture(scope="session")
def make_shape_image():
    rng = np.random.default_rng(1)
    return lambda kind: _shape_image(kind, rng)


@pytest.fixture
def interrupt_training(monkeypatch):
    """`interrupt_training(n)`: the next training run is killed (KeyboardInterrupt) right after epoch
    n has been checkpointed; `interrupt_training(None)` lets training run normally again."""
    from sensorium.pipelines.common import callbacks

    original = callbacks.RunState.on_epoch_end

    def arm(after_epoch: int | None) -> None:
        if after_epoch is None:
            monkeypatch.setattr(callbacks.RunState, "on_epoch_end", original)
            return

        def end_then_interrupt(self, epoch, logs=None):
            original(self, epoch, logs)
            if epoch + 1 == after_epoch:
                raise KeyboardInterrupt

        monkeypatch.setattr(callbacks.RunState, "on_epoch_end", end_then_interrupt)

    return arm


TONES = {"a": 500.0, "b": 1500.0, "c": 3000.0}


def _tone_speech(text: str, rng: np.random.Generator, rate: int = 16000) -> np.ndarray:
    """Tone "speech": each letter of `text` (a, b, c) a 0.15 s tone, letters and the start separated
    by 0.05 s of quiet noise. Tiny speech models learn it in seconds: (samples,) float32 at `rate`."""
    t = np.arange(int(0.15 * rate)) / rate
    parts = [rng.normal(0, 0.003, int(0.05 * rate))]
    for ch in text:
        parts += [0.5 * np.sin(2 * np.pi * TONES[ch] * t), rng.normal(0, 0.003, int(0.05 * rate))]
    return np.concatenate(parts).astype("float32")


@pytest.fixture(scope="session")
def tone_speech():
    """`tone_speech(text, rng, rate=16000)`: see `_tone_speech`."""
    return _tone_speech


@pytest.fixture(scope="session")
def varied_texts() -> list[str]:
    """Texts that stress tokenisation: accents, emoji (ZWJ sequences, flags), URLs, other scripts,
    control characters, compatibility forms that NFKC changes, long inputs."""
    return [
        "", " ", "a", "!!!", "...", "😀😀😀", "👨‍👩‍👧‍👦 family 🏳️‍🌈", "Héllo wörld, naïve café",
        "İstanbul ß ẞ ǅ", "ﬁ ligature Ⅻ ＦＵＬＬＷＩＤＴＨ", "日本語のテキスト", "Привет, мир", "مرحبا بالعالم",
        "Z̤͔ͧ̑̓ä͖̭̈̇lͮ̒ͫǧ̗͚̚o̙̔ͮ̇", "tab\tand\nnewline\r\n", "NUL\x00byte", "\u200bzero width\ufeff",
        "http://t.co/AbC123 https://www.example.org/a_b-c#frag?x=1", "noooooooooooooooooooooope",
        "RUINING MY LIFE!!!!!!!!!!!!!!!!!!!!!!!!!!!!!", "good " * 500, "x" * 5000,
    ]
