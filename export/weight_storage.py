"""Weight-only int8: a float32 `.tflite` whose kernels are stored as int8.

Each constant float32 filter of a CONV_2D, DEPTHWISE_CONV_2D or FULLY_CONNECTED op becomes an int8
tensor (per output channel, symmetric, scale max|w| / 127: the rounding TFLite gives int8 weights)
with a DEQUANTIZE op in front of the op, so the file holds int8 weights (about a quarter of the
float32 size) and computes in float32: no activation is quantised. The interpreter dequantises the
constant weights once, when it prepares the model, so in memory they take float32's room.
"""
from __future__ import annotations

import numpy as np

DEQUANTIZE_VERSION = 4  # the DEQUANTIZE version that reads per-channel int8


def int8_per_channel(w: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """TFLite's int8 weights of `w`: (int8 codes, shaped as `w`; float64 scales (channels,)), per channel
    on `axis`, symmetric, scale max|w| / 127 (1 for a channel of zeros)."""
    moved = np.moveaxis(np.asarray(w, np.float64), axis, -1)
    scale = np.abs(moved).reshape(-1, moved.shape[-1]).max(axis=0) / 127.0
    scale[scale == 0] = 1.0
    codes = np.clip(np.round(moved / scale), -127, 127).astype(np.int8)
    return np.moveaxis(codes, -1, axis), scale


def int8_weight_storage(flatbuffer: bytes) -> tuple[bytes, int]:
    """(the `.tflite` with its float32 kernels stored as per-channel int8, the number of kernels stored)."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    ops = schema.BuiltinOperator
    model = flatbuffer_utils.read_model_from_bytearray(bytearray(flatbuffer))
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    dequantize = schema.OperatorCodeT()
    dequantize.builtinCode = dequantize.deprecatedBuiltinCode = ops.DEQUANTIZE
    dequantize.version = DEQUANTIZE_VERSION
    model.operatorCodes.append(dequantize)
    opcode = len(model.operatorCodes) - 1
    stored = 0
    for graph in model.subgraphs:
        operators = []
        for op in graph.operators:
            code = codes[op.opcodeIndex]
            if code in (ops.CONV_2D, ops.DEPTHWISE_CONV_2D, ops.FULLY_CONNECTED) and len(op.inputs) > 1:
                int8 = _int8_filter(model, graph, op.inputs[1], depthwise=code == ops.DEPTHWISE_CONV_2D)
                if int8 is not None:
                    step = schema.OperatorT()
                    step.opcodeIndex, step.inputs, step.outputs = opcode, [int8], [op.inputs[1]]
                    operators.append(step)
                    stored += 1
            operators.append(op)
        graph.operators = operators
    if not stored:
        return flatbuffer, 0
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model)), stored


def _int8_filter(model, graph, index: int, *, depthwise: bool) -> int | None:
    """Store tensor `index` (a constant float32 filter: (O, ...) or depthwise (1, kh, kw, C)) as a new
    int8 tensor, leaving `index` without data for a DEQUANTIZE op to fill; the new tensor's index, or
    None when `index` is not a constant float32 tensor."""
    from tensorflow.lite.python import schema_py_generated as schema

    tensor = graph.tensors[index]
    buffer = model.buffers[tensor.buffer] if tensor.buffer < len(model.buffers) else None
    if (tensor.type != schema.TensorType.FLOAT32 or buffer is None or buffer.data is None or not len(buffer.data)
            or tensor.shape is None or len(tensor.shape) < 2):
        return None
    w = np.frombuffer(bytes(bytearray(buffer.data)), np.float32).reshape(tensor.shape)
    axis = 3 if depthwise else 0  # the output channel
    q, scale = int8_per_channel(w, axis)  # (as w) int8, (channels,)
    data = schema.BufferT()
    data.data = np.frombuffer(q.tobytes(), np.uint8)
    model.buffers.append(data)
    params = schema.QuantizationParametersT()
    params.scale, params.zeroPoint = scale.astype(np.float32).tolist(), [0] * len(scale)
    params.quantizedDimension = axis
    int8 = schema.TensorT()
    int8.shape, int8.type, int8.buffer = list(tensor.shape), schema.TensorType.INT8, len(model.buffers) - 1
    name = tensor.name.decode() if isinstance(tensor.name, bytes) else str(tensor.name)
    int8.name, int8.quantization = f"{name}/int8", params
    graph.tensors.append(int8)
    buffer.data = None  # the float filter is now computed by the DEQUANTIZE op
    return len(graph.tensors) - 1
