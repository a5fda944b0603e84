"""oneDNN stress: the image ResNet trained with TensorFlow's oneDNN kernels on, over the shapes that
corrupted the heap before training batches had a fixed, even size (issue 25).

The trigger (TensorFlow 2.21): the oneDNN filter gradient of a 1x1, stride-2, float32 convolution (a
ResNet stage's projection shortcut) with fewer than 16 input channels on an even feature map, run on an
odd number of images. `double free or corruption` / SIGSEGV followed within a few steps. The first three
shapes run in mixed bfloat16 too, the policy `--mixed-precision auto` trains this network in on a CPU
with native bfloat16. Each case runs
in a child process (a crash must not take pytest down) with glibc's heap checks on where available.
Run: `python -m pytest tests/pipelines/test_onednn_stress.py -m slow`.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# (images, batch size, stage widths, image side): 1,439 digits in batches of 64 (a last batch of 31,
# the original crash), odd batch sizes, 1-12 input channels to the projection, even sides 10-28.
CASES = [(1439, 64, "8,16", 28), (1439, 31, "8,16", 28), (203, 7, "4,8", 14), (97, 15, "1,16", 10),
         (61, 9, "12,24", 16), (99, 33, "8,16,32", 28)]

CHILD = r"""
import os, sys
import numpy as np, keras, tensorflow as tf
from sensorium.models.image import ImageClassifierSpec, build_image_classifier
from sensorium.pipelines.common.batching import fixed_batches
from sensorium.pipelines.common.strategy import onednn_enabled
assert onednn_enabled(), "oneDNN is off: this test would prove nothing"
n, batch, widths, side = int(sys.argv[1]), int(sys.argv[2]), tuple(map(int, sys.argv[3].split(","))), int(sys.argv[4])
keras.mixed_precision.set_global_policy(sys.argv[5])
keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
x = rng.integers(0, 256, (n, side, side, 3), dtype=np.uint8)
y = rng.integers(0, 10, n)
model = build_image_classifier(ImageClassifierSpec(widths=widths, image_size=(side, side)), 10)
model.compile("adam", "sparse_categorical_crossentropy", weighted_metrics=["accuracy"])
ds = fixed_batches(tf.data.Dataset.from_tensor_slices((x, y)).shuffle(n, seed=0), batch)
history = model.fit(ds, epochs=2, verbose=0)
assert np.isfinite(history.history["loss"]).all()
print("ok")
"""


@pytest.mark.slow
@pytest.mark.parametrize("n,batch,widths,side,policy", [(*case, "float32") for case in CASES]
                         # mixed bfloat16: what `auto` trains this network in on a CPU with native bf16
                         + [(*case, "mixed_bfloat16") for case in CASES[:3]])
def test_image_resnet_trains_with_onednn_on_shapes_that_crashed(n, batch, widths, side, policy):
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "1", "TF_CPP_MIN_LOG_LEVEL": "2", "KERAS_BACKEND": "tensorflow"}
    debug = Path("/usr/lib/x86_64-linux-gnu/libc_malloc_debug.so.0")
    if debug.is_file():  # glibc >= 2.34: heap consistency checks on every free
        env.update(LD_PRELOAD=str(debug), GLIBC_TUNABLES="glibc.malloc.check=3")
    proc = subprocess.run([sys.executable, "-c", CHILD, str(n), str(batch), widths, str(side), policy], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), (proc.returncode, proc.stderr[-2000:])
