#!/usr/bin/env python
"""int8 fidelity of an image classifier (issue 21): top-1 agreement of its int8 `.tflite` with Keras, by how
far Keras's top class leads the second, with size and batch-1 latency.

    python tests/benchmarks/int8_agreement.py --model assets/models/imagenet [--out DIR] [--threads 2]
        [--weights-only]

The calibration and parity images are those of the ImageNet card (`write_check_images`: disjoint sets of
300 crops of the packaged photos and Adwaita icons, at the model's size), written to DIR (default: a
temporary folder). The int8 file is converted with the exporter's own `convert` (pixel map folded into the
input quantisation, bias correction, depthwise rounding) and kept as DIR/model-int8.tflite whatever its
agreement; `sensorium export` keeps a file only when it passes parity. Prints a Markdown table.

`--weights-only` measures a weight-only int8 file instead (DIR/model-int8-weights.tflite; not an export
variant yet): the same bias correction and weight rounding on a clone, converted as float32, then every
convolution and dense kernel stored as per-channel int8 behind a DEQUANTIZE op (`int8_weight_storage`),
so weights are int8 on disk and activations stay float.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import logging  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

log = logging.getLogger("int8_agreement")
MARGINS = (0.0, 0.05, 0.1, 0.2, 0.4, 1.01)


def int8_weight_storage(flatbuffer: bytes) -> bytes:
    """A float32 `.tflite` with the constant float32 filters of its CONV_2D, DEPTHWISE_CONV_2D and
    FULLY_CONNECTED ops stored as int8 (per output channel, symmetric, scale max|w| / 127, as TFLite
    quantises weights) and dequantised by a DEQUANTIZE op in front of each: weights int8, compute float."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    ops = schema.BuiltinOperator
    model = flatbuffer_utils.read_model_from_bytearray(bytearray(flatbuffer))
    graph = model.subgraphs[0]
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    dequantize = schema.OperatorCodeT()
    dequantize.builtinCode = dequantize.deprecatedBuiltinCode = ops.DEQUANTIZE
    dequantize.version = 4  # per-channel int8
    model.operatorCodes.append(dequantize)
    operators = []
    for op in graph.operators:
        code = codes[op.opcodeIndex]
        weighted = code in (ops.CONV_2D, ops.DEPTHWISE_CONV_2D, ops.FULLY_CONNECTED)
        tensor = graph.tensors[op.inputs[1]] if weighted else None
        buffer = model.buffers[tensor.buffer] if weighted else None
        if weighted and tensor.type == schema.TensorType.FLOAT32 and buffer.data is not None and len(buffer.data):
            w = np.frombuffer(bytes(bytearray(buffer.data)), np.float32).reshape(tensor.shape)
            axis = 3 if code == ops.DEPTHWISE_CONV_2D else 0  # (1, kh, kw, C) or (O, ...): the output channel
            scale = np.abs(np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)).max(axis=1) / 127.0
            scale[scale == 0] = 1.0
            shape = [-1 if i == axis else 1 for i in range(w.ndim)]
            q = np.clip(np.round(w / scale.reshape(shape)), -127, 127).astype(np.int8)
            stored = schema.BufferT()
            stored.data = np.frombuffer(q.tobytes(), np.uint8)
            model.buffers.append(stored)
            params = schema.QuantizationParametersT()
            params.scale, params.zeroPoint = scale.astype(np.float32).tolist(), [0] * len(scale)
            params.quantizedDimension = axis
            int8 = schema.TensorT()
            int8.shape, int8.type, int8.buffer = list(tensor.shape), schema.TensorType.INT8, len(model.buffers) - 1
            name = tensor.name.decode() if isinstance(tensor.name, bytes) else str(tensor.name)
            int8.name, int8.quantization = f"{name}/int8", params
            graph.tensors.append(int8)
            buffer.data = None  # the float filter is now the DEQUANTIZE op's output
            step = schema.OperatorT()
            step.opcodeIndex = len(model.operatorCodes) - 1
            step.inputs, step.outputs = [len(graph.tensors) - 1], [op.inputs[1]]
            operators.append(step)
        operators.append(op)
    graph.operators = operators
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="assets/models/imagenet", help="run directory or .keras file")
    parser.add_argument("--out", help="folder for the images and the int8 file (default: temporary)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--weights-only", action="store_true", help="measure a weight-only int8 file instead")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    from sensorium.export.image import ImageExportSource
    from sensorium.export.tflite import convert
    from sensorium.pipelines.common.artifacts import inspect_artifact
    from sensorium.pipelines.image.imagenet import write_check_images
    from sensorium.runtime.tflite import EdgeModel

    out = Path(args.out or tempfile.mkdtemp(prefix="int8-agreement-"))
    source = ImageExportSource.load(inspect_artifact(args.model))
    calibration_path, parity_path = write_check_images(out, source.image_size)
    calibration, parity = np.load(calibration_path), np.load(parity_path)
    start = time.perf_counter()
    if args.weights_only:
        import keras

        from sensorium.export.bias_correction import MAX_IMAGES, correct_bias

        clone = keras.models.clone_model(source.model)
        clone.set_weights(source.model.get_weights())
        correct_bias(clone, calibration[:MAX_IMAGES])
        flatbuffer = int8_weight_storage(convert(clone, input_shape=source.input_shape, quantize="none"))
    else:
        flatbuffer = convert(source.model, input_shape=source.input_shape, quantize="int8",
                             calibration=[c[None] for c in calibration])
    log.info("converted in %.0f s", time.perf_counter() - start)
    name = "int8 weights" if args.weights_only else "int8"
    path = out / ("model-int8-weights.tflite" if args.weights_only else "model-int8.tflite")
    path.write_bytes(flatbuffer)
    float32 = convert(source.model, input_shape=source.input_shape, quantize="none")
    edge = EdgeModel(path, num_threads=args.threads)
    keras_probs = source.model.predict(parity, batch_size=32, verbose=0)
    times, edge_probs = [], []
    for image in parity:
        t = time.perf_counter()
        edge_probs.append(edge(image[None])[0])
        times.append(time.perf_counter() - t)
    edge_probs = np.asarray(edge_probs)
    agree = keras_probs.argmax(1) == edge_probs.argmax(1)
    ranked = np.sort(keras_probs, axis=1)
    lead = ranked[:, -1] - ranked[:, -2]
    in_top5 = np.mean([k in np.argsort(-e)[:5] for k, e in zip(keras_probs.argmax(1), edge_probs)])
    print(f"| {name} vs Keras on {len(parity)} parity images | value |\n|---|---|")
    print(f"| top-1 agreement | {agree.mean():.3f} |")
    for low, high in zip(MARGINS, MARGINS[1:]):
        chosen = (lead >= low) & (lead < high)
        value = f"{agree[chosen].mean():.3f}" if chosen.any() else "-"
        print(f"| agreement where Keras's top-1 leads by {low}-{min(high, 1.0)} ({chosen.sum()} images) | {value} |")
    print(f"| Keras's top-1 in the {name} top 5 | {in_top5:.3f} |")
    kl = np.sum(keras_probs * (np.log(keras_probs + 1e-12) - np.log(edge_probs + 1e-12)), axis=1)
    print(f"| KL(Keras \\|\\| {name}), mean / median | {kl.mean():.4f} / {np.median(kl):.4f} |")
    print(f"| size | {len(flatbuffer):,} B ({len(float32) / len(flatbuffer):.2f}x smaller than float32, "
          f"{len(float32):,} B) |")
    print(f"| batch-1 latency, {args.threads} threads, {edge.runtime} | {1000 * np.median(times):.1f} ms median |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
