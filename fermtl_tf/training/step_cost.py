"""Arithmetic cost of a traced training step, counted from the graph instead of timed.

On a shared CPU a step's time varies with the load; the work its convolutions do does not.
:func:`step_flops` counts it on the ops a compiled step actually runs (TensorFlow prunes
the rest, e.g. gradients a tape builds towards sources nobody asked for), so a benchmark can
say where the work goes and a test can check that a step makes exactly the passes its
algorithm needs (MML: ``tests/test_meta_mtl_model.py``).
"""

import collections

import numpy as np

#: Convolution ops whose cost :func:`op_flops` counts.
CONV_OPS = ("Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter")

#: Ops that update state: a step runs them whether or not an output depends on them.
_STATE_UPDATES = ("Assign", "ResourceApply")


def live_ops(graph):
    """Ops of a traced function graph that run: those its outputs or state updates need."""
    todo = [tensor.op for tensor in graph.outputs]
    todo += [op for op in graph.get_operations() if op.type.startswith(_STATE_UPDATES)]
    seen = {}
    while todo:
        op = todo.pop()
        if op.name not in seen:
            seen[op.name] = op
            todo.extend(tensor.op for tensor in op.inputs)
            todo.extend(op.control_inputs)
    return list(seen.values())


def op_flops(op):
    """FLOPs (2 per multiply-add) of a 2-D convolution, either gradient of one, or a matmul.

    Each convolution op costs as much as the forward convolution it belongs to: output
    elements x window (kernel height x width x input channels). Other ops: 0.
    """
    if op.type in CONV_OPS:
        output = op.inputs[2].shape if op.type != "Conv2D" else op.outputs[0].shape
        kernel = op.outputs[0].shape if op.type == "Conv2DBackpropFilter" else op.inputs[1].shape
        return 2 * _size(output) * kernel[0] * kernel[1] * kernel[2]
    if op.type == "MatMul":
        a = op.inputs[0].shape
        inner = a[-2] if op.get_attr("transpose_a") else a[-1]
        return 2 * _size(op.outputs[0].shape) * inner
    return 0


def step_flops(graph, key=lambda op: op.type):
    """``{key(op): FLOPs}`` over the live ops of ``graph`` that do any (see :func:`op_flops`)."""
    totals = collections.Counter()
    for op in live_ops(graph):
        flops = op_flops(op)
        if flops:
            totals[key(op)] += flops
    return dict(totals)


def _size(shape):
    return int(np.prod(shape.as_list()))
