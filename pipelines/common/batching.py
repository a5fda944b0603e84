"""Fixed-shape training batches: every batch holds the same number of rows, the last one padded with
rows of its own that carry sample weight 0, so no sample is dropped and weighted metrics stay exact.

Why: TensorFlow 2.21's oneDNN kernel for the filter gradient of a 1x1, stride-2 float32 convolution
(Conv2DBackpropFilter; the projection shortcut of our ResNet stages) writes out of bounds when the
batch holds an odd number of images and the convolution has fewer than 16 input channels on an even
feature map: `double free or corruption` or a segmentation fault, a few steps later. A partial last
batch (1,439 digits in batches of 64 leave 31) was how training met it. Even-sized batches of a
fixed shape never reach it, and they also keep Keras from tracing the training step a second time
for the last batch of each epoch.

Padding rows are copies of the batch's own first rows (not zeros), so batch-norm statistics of the
padded batch see real images; their weight 0 keeps them out of the loss sum and the metrics.
"""
from __future__ import annotations

from typing import Any


def fixed_batch_size(batch_size: int, replicas: int = 1) -> int:
    """The rows of every training batch: `batch_size` rounded up so each replica gets an even number
    of rows (an odd `--batch-size 31` trains on 32 rows, one of them masked)."""
    if batch_size < 1 or replicas < 1:
        raise ValueError(f"batch_size and replicas must be positive, got {batch_size} and {replicas}")
    step = 2 * replicas
    return -(-batch_size // step) * step


def fixed_batches(ds: Any, batch_size: int, *, replicas: int = 1) -> Any:
    """Batch `ds` (unbatched elements `(x, y)` or `(x, y, weight)`; x and y may be nested) into
    `(x, y, weight)` batches of exactly `fixed_batch_size(batch_size, replicas)` rows with a static
    batch dimension. Rows past a batch's real ones repeat its rows from the start with weight 0; a
    given weight is kept for the real rows. `weight` is float32 (B,)."""
    import tensorflow as tf

    size = fixed_batch_size(batch_size, replicas)

    def pad(*batch):
        x, y = batch[0], batch[1]
        first = tf.nest.flatten(x)[0]
        n = tf.shape(first)[0]
        index = tf.range(size) % n  # (size,): 0..n-1, then the first rows again
        real = tf.cast(tf.range(size) < n, tf.float32)  # (size,) 1 for real rows, 0 for padding

        def take(t):
            t = tf.gather(t, index)
            t.set_shape([size, *t.shape[1:]])
            return t

        x, y = tf.nest.map_structure(take, x), tf.nest.map_structure(take, y)
        weight = real if len(batch) < 3 else take(tf.cast(batch[2], tf.float32)) * real
        return x, y, weight

    return ds.batch(size).map(pad, num_parallel_calls=tf.data.AUTOTUNE)
