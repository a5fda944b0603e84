"""Fixed-shape training batches (pipelines/common/batching.py): no sample dropped or repeated with
weight, padding masked, metrics the same as on the unpadded batches."""
from __future__ import annotations

import numpy as np
import pytest

from sensorium.pipelines.common.batching import fixed_batch_size, fixed_batches


def test_fixed_batch_size_is_even_per_replica():
    assert [fixed_batch_size(b) for b in (1, 2, 31, 32, 64)] == [2, 2, 32, 32, 64]
    assert fixed_batch_size(30, replicas=2) == 32 and fixed_batch_size(8, replicas=2) == 8
    with pytest.raises(ValueError):
        fixed_batch_size(0)


def _batches(ds):
    return [tuple(np.asarray(t) for t in b) for b in ds.as_numpy_iterator()]


def test_every_sample_once_with_weight_one_and_padding_masked():
    import tensorflow as tf

    x = np.arange(11 * 3, dtype=np.float32).reshape(11, 3)
    y = np.arange(11)
    batches = _batches(fixed_batches(tf.data.Dataset.from_tensor_slices((x, y)), 4))
    assert [b[0].shape for b in batches] == [(4, 3)] * 3  # 11 = 4 + 4 + 3 (+ 1 padding row)
    weights = np.concatenate([b[2] for b in batches])
    labels = np.concatenate([b[1] for b in batches])
    assert weights.dtype == np.float32 and weights.tolist() == [1] * 11 + [0]
    assert labels[weights == 1].tolist() == list(range(11))  # every sample, once, in order
    last_x, last_y, _ = batches[-1]
    np.testing.assert_array_equal(last_x[3], last_x[0])  # padding repeats the batch's own first row
    assert last_y[3] == last_y[0]


def test_odd_batch_size_pads_every_batch_and_keeps_given_weights():
    import tensorflow as tf

    x = {"a": np.ones((6, 2), np.float32), "b": np.zeros((6,), np.int32)}  # nested inputs
    y = np.arange(6)
    w = np.linspace(0.5, 3.0, 6).astype(np.float32)
    ds = fixed_batches(tf.data.Dataset.from_tensor_slices((x, y, w)), 3)  # 3 rows -> 4 (one masked)
    assert ds.element_spec[0]["a"].shape.as_list() == [4, 2] and ds.element_spec[2].shape.as_list() == [4]
    batches = list(ds.as_numpy_iterator())
    weights = np.concatenate([b[2] for b in batches])
    labels = np.concatenate([b[1] for b in batches])
    np.testing.assert_allclose(weights[weights > 0], w)
    assert labels[weights > 0].tolist() == list(range(6))


def test_metrics_on_padded_batches_equal_the_unpadded_ones():
    """Keras' weighted accuracy over fixed, padded batches is the one over the plain batches, exactly;
    so is the sum of per-sample losses. (Keras' `metrics=` ignore sample weights: a task that trains
    on padded batches compiles its metrics as `weighted_metrics=`.)"""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(3)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(37, 5)).astype(np.float32)
    y = rng.integers(0, 3, 37)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3, activation="softmax")])
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(),
                  weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    plain = model.evaluate(tf.data.Dataset.from_tensor_slices((x, y)).batch(8), verbose=0, return_dict=True)
    padded = model.evaluate(fixed_batches(tf.data.Dataset.from_tensor_slices((x, y)), 8), verbose=0,
                            return_dict=True)
    assert padded["accuracy"] == plain["accuracy"]
    per_sample = keras.losses.SparseCategoricalCrossentropy(reduction=None)
    total = 0.0
    for bx, by, bw in fixed_batches(tf.data.Dataset.from_tensor_slices((x, y)), 8):
        total += float(np.sum(per_sample(by, model(bx)).numpy() * bw.numpy()))
    np.testing.assert_allclose(total, float(np.sum(per_sample(y, model(x)).numpy())), rtol=1e-5)


def test_image_training_dataset_is_fixed_shape_and_complete():
    from sensorium.pipelines.image.data import ImageSplit

    n = 13
    split = ImageSplit("t", "train", ["a", "b"], [str(i) for i in range(n)],
                      x=np.arange(n, dtype=np.uint8)[:, None, None, None] * np.ones((1, 4, 4, 3), np.uint8),
                      y=np.arange(n) % 2)
    ds = split.dataset(5, training=True, seed=1, fixed=True)  # 5 -> 6 rows, 13 = 6 + 6 + 1 (+ 5 padding rows)
    assert ds.element_spec[0].shape.as_list() == [6, 4, 4, 3]
    batches = list(ds.as_numpy_iterator())
    seen = np.concatenate([b[0][b[2] > 0, 0, 0, 0] for b in batches])
    assert sorted(seen.tolist()) == list(range(n)) and len(batches) == 3
    # evaluation, and the generative models' training, keep plain batches (the last one partial)
    assert [b[0].shape[0] for b in split.dataset(5).as_numpy_iterator()] == [5, 5, 3]
    assert [len(b) for b in split.dataset(5, training=True).as_numpy_iterator()] == [2, 2, 2]
