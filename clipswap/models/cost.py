"""Parameter and multiply-accumulate (MAC) counts of Keras models, by our own counter over the traced graph.

The model is traced once at a fixed input size (batch 1) into a TensorFlow graph and every op that multiplies
and accumulates is counted from its shapes:

* conv MACs: Conv2D = H_out * W_out * k_h * k_w * C_in * C_out; DepthwiseConv2dNative = H_out * W_out * k_h * k_w * C.
* dense MACs: MatMul = M * N * K; BatchMatMul = batch * M * N * K; Einsum = the product of the sizes of all distinct
  indices (this counts Dense, EinsumDense and the attention products of transformers).

Elementwise work (normalisation, activations, resizing, bias adds) is not counted, as in the paper's Table I, whose
GMACs count convolutions and matrix products.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf


@dataclass(frozen=True)
class Cost:
    """Parameters and MACs of one component at one input size."""

    name: str
    params: int
    conv_macs: int
    dense_macs: int
    input_desc: str

    @property
    def macs(self) -> int:
        return self.conv_macs + self.dense_macs


def _dims(tensor) -> list[int]:
    shape = tensor.shape
    if shape.rank is None or any(d is None for d in shape.as_list()):
        raise ValueError(f"op input {tensor.name} has an unknown shape {shape}; trace with a fixed input size")
    return [int(d) for d in shape.as_list()]


def _einsum_macs(equation: str, inputs) -> int:
    lhs = equation.replace(" ", "").split("->")[0]
    sizes: dict[str, int] = {}
    for term, tensor in zip(lhs.split(","), inputs, strict=True):
        if "." in term:
            raise ValueError(f"einsum with ellipsis is not supported by the MAC counter: {equation}")
        for letter, size in zip(term, _dims(tensor), strict=True):
            sizes[letter] = size
    return int(np.prod(list(sizes.values()), dtype=np.int64))


def _op_macs(op) -> tuple[int, int]:
    """(conv MACs, dense MACs) of one graph op."""
    kind = op.type
    if kind == "Conv2D":
        out = _dims(op.outputs[0])
        kernel = _dims(op.inputs[1])
        return int(np.prod(out[1:3], dtype=np.int64)) * int(np.prod(kernel, dtype=np.int64)) * out[0], 0
    if kind == "DepthwiseConv2dNative":
        out = _dims(op.outputs[0])
        kh, kw = _dims(op.inputs[1])[:2]
        return int(np.prod(out, dtype=np.int64)) * kh * kw, 0
    if kind == "MatMul":
        a, b = _dims(op.inputs[0]), _dims(op.inputs[1])
        m = a[1] if op.get_attr("transpose_a") else a[0]
        k = a[0] if op.get_attr("transpose_a") else a[1]
        n = b[0] if op.get_attr("transpose_b") else b[1]
        return 0, m * n * k
    if kind in ("BatchMatMulV2", "BatchMatMulV3", "BatchMatMul"):
        a, b = _dims(op.inputs[0]), _dims(op.inputs[1])
        adj_a = op.get_attr("adj_x")
        adj_b = op.get_attr("adj_y")
        m, k = (a[-1], a[-2]) if adj_a else (a[-2], a[-1])
        n = b[-2] if adj_b else b[-1]
        batch = int(np.prod(_dims(op.outputs[0])[:-2], dtype=np.int64))
        return 0, batch * m * n * k
    if kind == "Einsum":
        equation = op.get_attr("equation")
        equation = equation.decode() if isinstance(equation, bytes) else equation
        return 0, _einsum_macs(equation, op.inputs)
    if re.match(r"Conv\dD", kind) or kind.startswith("Conv3D"):
        raise ValueError(f"the MAC counter does not handle op {kind}")
    return 0, 0


def count_macs(model: keras.Model, input_specs: list[tuple[int, ...]] | tuple[int, ...]) -> tuple[int, int]:
    """(conv MACs, dense MACs) of one forward pass of `model` at batch 1.

    Args:
        model: any Keras 3 model on the TensorFlow backend.
        input_specs: the per-sample shape of each input (no batch axis), e.g. [(256, 256, 3), (512,)].
    """
    specs = input_specs if isinstance(input_specs, list) else [input_specs]
    signature = [tf.TensorSpec((1, *shape), tf.float32) for shape in specs]

    def forward(*inputs):
        return model(list(inputs) if len(inputs) > 1 else inputs[0], training=False)

    graph = tf.function(forward).get_concrete_function(*signature).graph
    conv = dense = 0
    for op in graph.get_operations():
        c, d = _op_macs(op)
        conv += c
        dense += d
    return conv, dense


def model_cost(name: str, model: keras.Model, input_specs, input_desc: str) -> Cost:
    """Parameters (all weights, trainable or not) and MACs of `model`."""
    conv, dense = count_macs(model, input_specs)
    return Cost(name, int(model.count_params()), conv, dense, input_desc)
