"""Float operations of a TensorFlow graph, counted op by op, including loop bodies and einsums.

TensorFlow's profiler (`tf.compat.v1.profiler`, the `flops` statistics registered per op type) counts
the top level of a graph: it does not enter a `While` loop's body (Keras's LSTM steps run in one) and
has no count for `Einsum` (Keras's attention and `EinsumDense`). `graph_flops` walks the graph itself:
- ops that TensorFlow registers a `flops` statistic for (MatMul, Conv2D and its gradients, element-wise
  ops, ...) count what it says;
- `Einsum`, `BatchMatMulV2`/`V3` count 2 x the product of every index size (a multiply and an add
  per term); an einsum of one operand counts its input's size;
- `While` / `StatelessWhile` count their body times the loop's trip count: the static value of its
  `maximum_iterations` input where the graph has one (an upper bound if its condition ends it
  sooner), else `loop_trips` (a Keras RNN's time steps; one count for every such loop of the graph),
  else it raises. Loops whose body is a v1 `Defun` (it keeps no graph to walk) are left out.
- `If`/`Case` count their costliest branch, function calls (`PartitionedCall`) their function's graph.
Ops with an unknown shape raise: a count must come from fully-defined shapes (a concrete function
traced at the batch shape).
"""
from __future__ import annotations

import logging
import math
from typing import Any

log = logging.getLogger(__name__)

LOOPS = {"While", "StatelessWhile"}
BRANCHES = {"If", "StatelessIf", "Case", "StatelessCase"}
CALLS = {"PartitionedCall", "StatefulPartitionedCall"}
CONTRACTIONS = {"BatchMatMul", "BatchMatMulV2", "BatchMatMulV3"}


def _dims(tensor: Any) -> list[int]:
    shape = tensor.shape
    if shape.rank is None or not shape.is_fully_defined():
        raise ValueError(f"{tensor.name}: shape {shape} is not fully defined")
    return [int(d) for d in shape]


def _broadcast(a: list[int], b: list[int]) -> list[int]:
    """The broadcast of two leading-dimension lists (right-aligned)."""
    width = max(len(a), len(b))
    a, b = [1] * (width - len(a)) + a, [1] * (width - len(b)) + b
    return [max(x, y) for x, y in zip(a, b)]


def einsum_flops(equation: str, shapes: list[list[int]]) -> int:
    """2 x the product of the sizes of every index of a two-operand einsum (each output element sums
    over the contracted indices: one multiply and one add per term); the input size for one operand.
    An ellipsis stands for the broadcast leading dimensions."""
    inputs = equation.replace(" ", "").split("->")[0].split(",")
    if len(inputs) != len(shapes):
        raise ValueError(f"einsum {equation!r}: {len(shapes)} operands for {len(inputs)} subscripts")
    if len(shapes) == 1:
        return math.prod(shapes[0])
    sizes: dict[str, int] = {}
    batch: list[int] = []
    for subscripts, shape in zip(inputs, shapes):
        if "..." in subscripts:
            head, tail = subscripts.split("...")
            batch = _broadcast(batch, shape[len(head): len(shape) - len(tail)])
            shape = shape[: len(head)] + shape[len(shape) - len(tail):]
            subscripts = head + tail
        for letter, size in zip(subscripts, shape):
            sizes[letter] = max(sizes.get(letter, 1), size)
    return 2 * math.prod(sizes.values()) * math.prod(batch)


def _batch_matmul_flops(op: Any) -> int:
    a, b = _dims(op.inputs[0]), _dims(op.inputs[1])
    m, k = (a[-1], a[-2]) if op.get_attr("adj_x") else (a[-2], a[-1])
    n = b[-2] if op.get_attr("adj_y") else b[-1]
    return 2 * m * n * k * math.prod(_broadcast(a[:-2], b[:-2]))


def _registered_flops(graph: Any, op: Any) -> int:
    from tensorflow.python.framework import ops as tf_ops

    try:
        value = tf_ops.get_stats_for_node_def(graph, op.node_def, "flops").value
    except (ValueError, KeyError, TypeError):  # no statistic for this op type, or a shape it cannot read
        return 0
    return int(value or 0)


def _function_graph(graph: Any, name: str) -> Any:
    """The graph of the library function `name`; None for a v1 `Defun`, which keeps none."""
    outer = graph
    while outer is not None:
        function = outer._get_function(name)  # FuncGraphs look up their outer graphs' libraries too
        if function is not None:
            return getattr(function, "graph", None)  # None: a v1 `Defun` keeps no graph
        outer = getattr(outer, "outer_graph", None)
    raise ValueError(f"function {name!r} is not in the graph's library")


def _trips(op: Any, loop_trips: int | None) -> int:
    from tensorflow.python.framework import tensor_util

    static = tensor_util.constant_value(op.inputs[1])  # while_v2's loop vars: counter, maximum_iterations, ...
    if static is not None and int(static) >= 0:
        return int(static)
    if loop_trips is None:
        raise ValueError(f"{op.name}: the loop's trip count is not static; pass loop_trips")
    return int(loop_trips)


def graph_flops(graph: Any, *, loop_trips: int | None = None) -> int:
    """Float operations of one run of `graph` (a `tf.Graph` or a concrete function's FuncGraph)."""
    total = 0
    for op in graph.get_operations():
        kind = op.type
        if kind in LOOPS:
            body = _function_graph(graph, op.get_attr("body").name)
            if body is None:
                log.info("%s: a loop over a v1 Defun, not counted", op.name)
                continue
            total += _trips(op, loop_trips) * graph_flops(body, loop_trips=loop_trips)
        elif kind in BRANCHES:
            names = ([op.get_attr("then_branch").name, op.get_attr("else_branch").name] if "If" in kind
                     else [f.name for f in op.get_attr("branches")])
            graphs = [g for g in (_function_graph(graph, n) for n in names) if g is not None]
            total += max((graph_flops(g, loop_trips=loop_trips) for g in graphs), default=0)
        elif kind in CALLS:
            called = _function_graph(graph, op.get_attr("f").name)
            total += graph_flops(called, loop_trips=loop_trips) if called is not None else 0
        elif kind == "Einsum":
            equation = op.get_attr("equation")
            equation = equation.decode() if isinstance(equation, bytes) else equation
            total += einsum_flops(equation, [_dims(t) for t in op.inputs])
        elif kind in CONTRACTIONS:
            total += _batch_matmul_flops(op)
        else:
            total += _registered_flops(graph, op)
    return total


def training_step_flops(model: Any, loss: Any, batch: tuple[Any, Any, Any], *, loop_trips: int | None = None) -> int:
    """Float operations of one training step of a Keras `model` on `batch` (x, y, sample weight or None;
    `loss` a Keras loss or a function of (y, prediction) -> per-item values):
    forward pass, `loss` and the gradients of every trainable weight (the optimizer's update, a few
    operations per weight, is left out)."""
    import numpy as np
    import tensorflow as tf

    x, y, w = batch

    import keras

    def objective(y: Any, pred: Any, w: Any) -> Any:
        if isinstance(loss, keras.losses.Loss):
            return loss(y, pred, sample_weight=w)
        values = loss(y, pred)  # a plain function: per-item values, weighted and averaged as `fit` does
        return tf.reduce_mean(values if w is None else values * tf.cast(w, values.dtype))

    @tf.function
    def step(x, y, w):
        with tf.GradientTape() as tape:
            value = objective(y, model(x, training=True), w)
        return tape.gradient(value, model.trainable_variables)

    def spec(t: Any) -> Any:
        if t is None:
            return None
        if isinstance(t, (tuple, list)):
            return type(t)(spec(v) for v in t)
        return tf.TensorSpec(np.shape(t), tf.as_dtype(np.asarray(t).dtype))

    return graph_flops(step.get_concrete_function(spec(x), spec(y), spec(w)).graph, loop_trips=loop_trips)

