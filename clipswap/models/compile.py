"""One compiled inference function per Keras backend: tf.function on TensorFlow, jax.jit on JAX, the plain call on
torch (and any other backend), so a model's predict path is compiled the same way wherever it runs.

Example:
    >>> predict = compile_predict(model, input_signature=[((None, None, None, 3), "float32")])
    >>> outputs = predict(images)      # backend tensors; keras.ops.convert_to_numpy(...) for NumPy
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras
import numpy as np

#: One input's shape (None where any size goes) and dtype.
InputSpec = tuple[tuple[int | None, ...], str]


def _call_for_inference(model: keras.Model, *inputs):
    return model(inputs[0] if len(inputs) == 1 else list(inputs), training=False)


def compile_predict(
    model: keras.Model,
    call: Callable | None = None,
    input_signature: Sequence[InputSpec] | None = None,
) -> Callable:
    """A compiled `call(model, *inputs)` for the current backend.

    Args:
        model: the Keras model whose variables the call reads.
        call: (model, *inputs) -> outputs; default: `model(inputs, training=False)` (one input, or the list of them).
        input_signature: on TensorFlow, the inputs' shapes and dtypes: one trace serves every input that fits
            (None dimensions take any size). JAX traces once per input shape and ignores it.

    Returns:
        A function of the inputs (NumPy arrays or backend tensors) returning what `call` returns, as backend tensors.
        On JAX the model's variables are passed in at each call (not baked into the trace as constants), so the
        compiled function sees weights assigned after it was made.
    """
    call = call or _call_for_inference
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        signature = None
        if input_signature is not None:
            signature = [tf.TensorSpec(shape, dtype) for shape, dtype in input_signature]
        return tf.function(lambda *inputs: call(model, *inputs), input_signature=signature)
    if backend == "jax":
        import jax

        variables = list(model.variables)

        def stateless(values, *inputs):
            with keras.StatelessScope(state_mapping=list(zip(variables, values, strict=True))):
                return call(model, *inputs)

        compiled = jax.jit(stateless)
        return lambda *inputs: compiled([variable.value for variable in variables], *inputs)
    return lambda *inputs: call(model, *inputs)


def sample_inputs(model: keras.Model, batch: int = 2, seed: int = 0) -> list[np.ndarray]:
    """A fixed random batch of the model's input shapes (to check or time a compiled call): images ([B, H, W, C]) in
    [-1, 1], other inputs ~ N(0, 1), float32."""
    rng = np.random.default_rng(seed)
    arrays = []
    for tensor in model.inputs:
        shape = (batch, *tensor.shape[1:])
        if len(shape) == 4:
            arrays.append(rng.uniform(-1.0, 1.0, shape).astype(np.float32))
        else:
            arrays.append(rng.normal(size=shape).astype(np.float32))
    return arrays
