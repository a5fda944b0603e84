"""The edge runtime with TensorFlow and Keras blocked: every runtime module imports, each of the four
inference commands runs on its bundled `.tflite`, and so does the Python API (in fresh processes
where `import tensorflow` raises)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "assets" / "examples"

BLOCK = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "keras", "tf_keras", "tensorflow_text", "tensorflow_hub",
                                  "tensorflow_datasets", "librosa"):
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, _Block())
"""


def run_blocked(code: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-c", BLOCK + code], capture_output=True, text=True, timeout=300,
                          cwd=ROOT.parent)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_every_runtime_module_imports_without_tensorflow():
    proc = run_blocked("""
import importlib, pkgutil, sensorium.runtime as rt
names = sorted(m.name for m in pkgutil.iter_modules(rt.__path__))
for name in names:
    importlib.import_module("sensorium.runtime." + name)
import sensorium
assert sensorium.__version__ and callable(sensorium.pipeline)
print(len(names), " ".join(names))
assert not any(m.split(".")[0] in ("tensorflow", "keras") for m in sys.modules)
""")
    count, names = proc.stdout.split(maxsplit=1)
    assert int(count) >= 15 and "tflite" in names and "predictor" in names


def test_the_four_commands_run_their_bundled_tflite_without_tensorflow():
    proc = run_blocked(f"""
import contextlib, io, json
from sensorium.apps import classify, sentiment, transcribe, translate
runs = {{
    "classify": (classify.main, [{str(EXAMPLES / 'cat.jpg')!r}, {str(EXAMPLES / 'coffee.jpg')!r}]),
    "digits": (classify.main, ["--model", "digits", {str(EXAMPLES / 'digit-7.png')!r},
                               {str(EXAMPLES / 'digit-2.png')!r}]),
    "transcribe": (transcribe.main, [{str(EXAMPLES / 'speech-four-two-seven.wav')!r}]),
    "sentiment": (sentiment.main, ["I love this airline, the crew was great",
                                   "Delayed three hours and nobody told us"]),
    "translate": (translate.main, ["Delete %(name)s?"]),
}}
out = {{}}
for name, (main, args) in runs.items():
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(args + ["--json"]) == 0, name
    out[name] = [json.loads(line) for line in buf.getvalue().splitlines()]
assert not any(m.split(".")[0] in ("tensorflow", "keras") for m in sys.modules)
print(json.dumps(out))
""")
    out = json.loads(proc.stdout.splitlines()[-1])
    assert [r["label"] for r in out["classify"]] == ["Egyptian cat", "espresso"]  # the ImageNet default
    assert [r["label"] for r in out["digits"]] == ["7", "2"]
    assert out["transcribe"][0]["text"] == "four two seven" and out["transcribe"][0]["segments"]
    assert [r["label"] for r in out["sentiment"]] == ["positive", "negative"]
    assert "%(name)s" in out["translate"][0]["translation"]


def test_the_python_api_without_tensorflow():
    proc = run_blocked(f"""
import json
import numpy as np
import soundfile as sf
from PIL import Image
import sensorium
clf = sensorium.pipeline("classify", model="digits")
photo = sensorium.pipeline("classify")({str(EXAMPLES / 'cat.jpg')!r})
pixels = np.asarray(Image.open({str(EXAMPLES / 'digit-7.png')!r}))
wave, rate = sf.read({str(EXAMPLES / 'speech-turn-on-the-light.wav')!r}, dtype="float32")
result = {{
    "one": clf({str(EXAMPLES / 'digit-2.png')!r}),
    "photo": photo,
    "array": clf(pixels),
    "records": clf(["missing.png", pixels], errors="record"),
    "speech": sensorium.pipeline("transcribe")((wave, rate)),
    "sentiment": sensorium.pipeline("sentiment")(["great!", "awful"]),
    "translate": sensorium.pipeline("translate", beam=4)("Delete %(name)s?"),
}}
try:
    clf("missing.png")
except sensorium.InputError as exc:
    result["raised"] = [str(exc), exc.index]
try:
    sensorium.pipeline("classify", model={str(ROOT / 'assets' / 'models' / 'mnist')!r}, runtime="keras")
except sensorium.SensoriumError as exc:
    result["keras"] = str(exc)
assert not any(m.split(".")[0] in ("tensorflow", "keras") for m in sys.modules)
print(json.dumps(result))
""")
    r = json.loads(proc.stdout.splitlines()[-1])
    assert r["one"]["label"] == "2" and r["array"]["label"] == "7" and r["array"]["input"] == 0
    assert r["photo"]["label"] == "Egyptian cat" and len(r["photo"]["top_k"]) == 5
    assert [x["ok"] for x in r["records"]] == [False, True] and "no such file" in r["records"][0]["error"]
    assert r["speech"]["text"] == "turn on the light"
    assert [x["label"] for x in r["sentiment"]] == ["positive", "negative"]
    assert "%(name)s" in r["translate"]["translation"]
    assert r["raised"] == ["missing.png: no such file", 0]
    assert "needs TensorFlow" in r["keras"] and 'pip install "sensorium[full]"' in r["keras"]


def test_edge_translate_loads_only_what_it_needs():
    """The edge `translate` command's import footprint: the runtime modules it uses and nothing from
    models, pipelines or export."""
    proc = run_blocked("""
import contextlib, io
from sensorium.apps import translate
with contextlib.redirect_stdout(io.StringIO()):
    assert translate.main(["Delete %(name)s?"]) == 0
print(" ".join(sorted(m for m in sys.modules if m == "sensorium" or m.startswith("sensorium."))))
""")
    modules = proc.stdout.split()
    assert not [m for m in modules if m.split(".")[1:2] in (["models"], ["pipelines"], ["export"])], modules
    assert "sensorium.runtime.text_windows" in modules  # sources are translated a sentence at a time
    assert len(modules) <= 13, modules
