"""Reading an ONNX file as data: its compute nodes and its constant tensors, with weight dequantisation folded in.

This is not an ONNX runtime. It evaluates only the constant sub-graphs that produce weights (Constant,
DequantizeLinear and Reshape whose inputs are all constants) so that a converter sees plain float32 arrays; every other
node is handed over untouched for the converter to map onto Keras layers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import helper, numpy_helper

from clipswap.checkpoints.errors import CheckpointError


@dataclass(frozen=True)
class OnnxNode:
    """One compute node: op type, node name, input and output tensor names, attributes as Python values."""

    op_type: str
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attributes: dict = field(default_factory=dict)


@dataclass
class OnnxGraph:
    """The graph after constant folding.

    Attributes:
        path: the file, for messages.
        inputs: names of the data graph inputs: declared inputs that have no initializer and that a node reads.
        outputs: names of the graph outputs.
        nodes: compute nodes in file (topological) order.
        constants: tensor name -> numpy array for every initializer and every folded constant.
    """

    path: str
    inputs: list[str]
    outputs: list[str]
    nodes: list[OnnxNode]
    constants: dict[str, np.ndarray]

    def constant(self, name: str) -> np.ndarray:
        if name not in self.constants:
            raise CheckpointError(f"{self.path}: tensor {name!r} was expected to be a constant (a weight) but is not")
        return self.constants[name]


def dequantize_linear(
    quantized: np.ndarray,
    scale: np.ndarray,
    zero_point: np.ndarray | None = None,
    axis: int = 1,
    block_size: int = 0,
) -> np.ndarray:
    """ONNX DequantizeLinear (opset 21): y = (x - zero_point) * scale, as float32.

    The layout of `scale` (and `zero_point`, which has the same shape) selects the granularity, as the operator
    specification defines it:
      * scalar (or one element): per tensor;
      * 1-D of length x.shape[axis] and block_size 0: per axis;
      * same rank as x, with shape[axis] == ceil(x.shape[axis] / block_size): blocked, each scale covering
        block_size consecutive elements along `axis` (the last block may be shorter).

    Args:
        quantized: integer array x.
        scale: float32 scales.
        zero_point: integer zero points (same shape as scale) or None for 0.
        axis: the quantisation axis (negative counts from the end).
        block_size: 0 for per-tensor/per-axis, else the block length.

    Returns:
        float32 array of x's shape.
    """
    x = np.asarray(quantized)
    scale = np.asarray(scale, dtype=np.float32)
    zero = np.zeros_like(scale, dtype=np.int32) if zero_point is None else np.asarray(zero_point, dtype=np.int32)
    if zero.shape != scale.shape:
        raise ValueError(f"zero_point shape {zero.shape} differs from scale shape {scale.shape}")
    axis = axis % max(x.ndim, 1)
    if scale.size == 1 and block_size == 0:
        scale_full, zero_full = scale.reshape(()), zero.reshape(())
    elif block_size == 0:
        if scale.ndim != 1 or scale.shape[0] != x.shape[axis]:
            raise ValueError(f"per-axis scale of shape {scale.shape} does not fit x {x.shape} along axis {axis}")
        shape = [1] * x.ndim
        shape[axis] = -1
        scale_full, zero_full = scale.reshape(shape), zero.reshape(shape)
    else:
        blocks = -(-x.shape[axis] // block_size)
        expected = list(x.shape)
        expected[axis] = blocks
        if list(scale.shape) != expected:
            raise ValueError(
                f"blocked scale of shape {scale.shape} does not fit x {x.shape} with block_size {block_size} "
                f"along axis {axis} (expected {tuple(expected)})"
            )
        length = x.shape[axis]
        scale_full = np.repeat(scale, block_size, axis=axis).take(range(length), axis=axis)
        zero_full = np.repeat(zero, block_size, axis=axis).take(range(length), axis=axis)
    # The specification computes in float; int8 differences are exact in float32, so this is bit-exact.
    return ((x.astype(np.float32) - zero_full.astype(np.float32)) * scale_full).astype(np.float32)


def _attributes(node: onnx.NodeProto) -> dict:
    values = {}
    for attribute in node.attribute:
        value = helper.get_attribute_value(attribute)
        if isinstance(value, onnx.TensorProto):
            value = numpy_helper.to_array(value)
        elif isinstance(value, bytes):
            value = value.decode("utf-8")
        values[attribute.name] = value
    return values


def _fold(node: onnx.NodeProto, attributes: dict, constants: dict[str, np.ndarray], path: str) -> np.ndarray:
    """Evaluate one weight-producing node whose inputs are all constants."""
    args = [constants[name] if name else None for name in node.input]
    if node.op_type == "Constant":
        if "value" not in attributes:
            raise CheckpointError(f"{path}: Constant node {node.name!r} uses an unsupported attribute {attributes}")
        return np.asarray(attributes["value"])
    if node.op_type == "DequantizeLinear":
        zero_point = args[2] if len(args) > 2 else None
        axis, block_size = int(attributes.get("axis", 1)), int(attributes.get("block_size", 0))
        return dequantize_linear(args[0], args[1], zero_point, axis=axis, block_size=block_size)
    if node.op_type == "Reshape":
        shape = [int(s) for s in args[1]]
        if attributes.get("allowzero", 0) == 0:
            shape = [args[0].shape[i] if s == 0 else s for i, s in enumerate(shape)]
        return args[0].reshape(shape)
    raise AssertionError(node.op_type)


_FOLDABLE = ("Constant", "DequantizeLinear", "Reshape")


def read_onnx_graph(path: str | Path) -> OnnxGraph:
    """Parse an ONNX file into compute nodes and constant tensors (weights dequantised to float32).

    Raises:
        CheckpointError: the file cannot be parsed, or a DequantizeLinear acts on a computed tensor (an
            activation-quantised graph, which a float Keras model cannot reproduce without fake-quant layers).
    """
    path = str(path)
    try:
        model = onnx.load(path)
    except (OSError, DecodeError) as error:
        raise CheckpointError(f"cannot read ONNX file {path}: {error}") from error
    graph = model.graph
    constants = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    nodes: list[OnnxNode] = []
    for node in graph.node:
        attributes = _attributes(node)
        if node.op_type in _FOLDABLE and all(name in constants for name in node.input if name):
            constants[node.output[0]] = _fold(node, attributes, constants, path)
            continue
        if node.op_type == "DequantizeLinear":
            raise CheckpointError(
                f"{path}: DequantizeLinear {node.name!r} dequantises a computed tensor ({node.input[0]!r}); "
                "activation quantisation is not supported by this float converter."
            )
        nodes.append(OnnxNode(node.op_type, node.name, tuple(node.input), tuple(node.output), attributes))
    # Exporters often leave the float originals of quantised weights declared as graph inputs; only inputs that a
    # remaining node reads are data inputs.
    used = {name for node in nodes for name in node.inputs}
    inputs = [i.name for i in graph.input if i.name not in constants and i.name in used]
    outputs = [o.name for o in graph.output]
    return OnnxGraph(path=path, inputs=inputs, outputs=outputs, nodes=nodes, constants=constants)
