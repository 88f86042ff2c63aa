"""The shared network test harness (STYLE.md item 10): one set of checks run on every network and
custom layer the package builds, in the spirit of keras-hub's `run_layer_test`/`run_model_saving_test` and timm's
all-models test.

`run_model_test` and `run_layer_test` check, on a small configuration:
    build            the network builds and has weights (a layer: it also survives get_config -> from_config);
    symbolic call    called on keras.Input tensors it gives the declared output shapes (batch axis None);
    eager call       called on arrays it gives the declared shapes, float32, finite, not constant;
    graph call       under tf.function (how the trainer runs it) it gives the eager output;
    gradients        every trainable weight gets a finite, non-zero gradient of one scalar that reads every output
                     element (a fixed random projection), under tf.GradientTape as the trainer takes them; so do the
                     inputs that are declared differentiable;
    save/load        a `.keras` round trip (safe_mode on, so every custom layer must be registered serialisable), or
                     the network's own checkpoint format where given, reproduces the output exactly;
    bf16             a mixed_bfloat16 build with the same weights runs, keeps its variables float32, and stays within
                     a stated tolerance of the float32 output.

Golden tensors: `seed_weights` writes deterministic values into every float variable (a legacy NumPy RandomState,
whose stream NumPy freezes, seeded from the variable's path, so the values depend neither on Keras' initialisers
and RNG nor on the order variables are created in), `fixed_inputs` draws the inputs the same way, and
`golden_summary` reduces each output to a few KB (every output in full when small, else a strided sample, 16 fixed
random projections of the whole tensor and its moments) that tests/golden/make_golden.py stores and `assert_golden`
compares.

Everything here is backend-agnostic Keras except the gradient tape and tf.function: the trainer is TensorFlow.
"""

from __future__ import annotations

import contextlib
import math
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

#: Seed of the golden weights and inputs (tests/golden/make_golden.py writes with it).
GOLDEN_SEED = 0
#: Projections of each output kept in a golden file.
GOLDEN_PROJECTIONS = 16
#: Outputs up to this many elements are stored whole; larger ones as a strided sample of about this many values.
GOLDEN_FULL_LIMIT = 512
#: Golden comparison: |actual - golden| <= GOLDEN_ATOL * scale + GOLDEN_RTOL * |golden|, scale = the output's
#: standard deviation. Float32 reordering (thread count, oneDNN, tf.* -> keras.ops) moves outputs by ~1e-7 of their
#: scale (1e-6 for the ResNets); a changed epsilon, slope or weight layout by 1e-3 and more.
GOLDEN_ATOL = 2e-5
GOLDEN_RTOL = 1e-4


@dataclass(frozen=True)
class InputSpec:
    """One input of a network: its shape with the batch axis, its value range, and whether a gradient must reach it
    (False for inputs read only for their shape, such as ResizeNearestLike's reference)."""

    shape: tuple[int, ...]
    low: float = -1.0
    high: float = 1.0
    differentiable: bool = True


@dataclass(frozen=True)
class Bf16Tolerance:
    """Largest mean and max of |bf16 - float32| / std(float32 output) allowed (bf16 keeps 8 bits of mantissa, so one
    rounding is ~0.4 %; deep networks accumulate several)."""

    mean: float
    max: float


# ------------------------------------------------------------------------------------------------ seeds and inputs


def _stream(seed: int, key: str) -> np.random.RandomState:
    return np.random.RandomState([seed, zlib.crc32(key.encode("utf-8"))])


def fixed_inputs(specs: Sequence[InputSpec], seed: int = GOLDEN_SEED) -> list[np.ndarray]:
    """float32 arrays drawn uniformly from each spec's range, the same in every process and NumPy version."""
    return [
        _stream(seed, f"input{i}").uniform(spec.low, spec.high, spec.shape).astype(np.float32)
        for i, spec in enumerate(specs)
    ]


def _seeded_value(name: str, shape: tuple[int, ...], rng: np.random.RandomState) -> np.ndarray:
    """A value for a variable by its role: scales near 1, offsets and statistics near 0, kernels with variance
    1 / fan-in, so deep stacks keep their activations O(1) and every branch contributes to the output."""
    if name in ("gamma", "moving_variance"):
        return rng.uniform(0.5, 1.5, shape)
    if name in ("beta", "moving_mean"):
        return rng.uniform(-0.2, 0.2, shape)
    if name == "alpha":  # PReLU slopes
        return rng.uniform(0.05, 0.3, shape)
    if len(shape) <= 1 or name == "bias":
        return rng.uniform(-0.1, 0.1, shape)
    fan_in = math.prod(shape[:2]) if name == "depthwise_kernel" else math.prod(shape[:-1])
    return rng.uniform(-1.0, 1.0, shape) * math.sqrt(3.0 / fan_in)


def seed_weights(target: keras.layers.Layer, seed: int = GOLDEN_SEED) -> None:
    """Overwrite every float variable of a built model or layer with deterministic values keyed by its path.

    Keras' own initialisers would leave a residual generator's zero-initialised output block at zero (its output
    would be its input, and a golden file would test nothing) and depend on Keras' RNG implementation; these values
    depend only on `seed` and each variable's path (layer names are fixed by the builders, so paths are stable).
    Integer variables (seed-generator states, keras-hub's position ids) are left alone.
    """
    paths = [v.path for v in target.variables]
    if len(set(paths)) != len(paths):
        raise ValueError(f"{target.name} has duplicate variable paths; seeded weights need unique paths")
    for variable in target.variables:
        if not np.issubdtype(np.dtype(variable.dtype), np.floating):
            continue
        rng = _stream(seed, variable.path)
        shape = tuple(int(d) for d in variable.shape)
        variable.assign(_seeded_value(variable.name, shape, rng).astype(variable.dtype))


def weights_fingerprint(target: keras.layers.Layer) -> np.ndarray:
    """[count, sum, a position-weighted sum] of the float variables: tells a golden failure caused by other weights
    (renamed layers, another layout) from one caused by other maths."""
    count, total, weighted = 0, 0.0, 0.0
    for variable in target.variables:
        if np.issubdtype(np.dtype(variable.dtype), np.floating):
            flat = np.asarray(variable.numpy()).ravel()
            count += 1
            total += float(flat.sum(dtype=np.float64))
            weighted += count * float(flat[::7].sum(dtype=np.float64))
    return np.array([count, total, weighted], np.float64)


@contextlib.contextmanager
def dtype_policy(name: str) -> Iterator[None]:
    """Build under Keras' global dtype policy `name`, restoring the previous one afterwards."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


# --------------------------------------------------------------------------------------------------- calling


def call(network: Callable, inputs: Sequence, training: bool = False):
    """Call a model or layer with one input as itself and several as a list."""
    return network(inputs[0] if len(inputs) == 1 else list(inputs), training=training)


def named_outputs(outputs) -> dict[str, object]:
    """A network's output(s) as {name: tensor}: a dict as it is, a list as output_0.., a tensor as "output"."""
    if isinstance(outputs, Mapping):
        return dict(sorted(outputs.items()))
    if isinstance(outputs, (list, tuple)):
        return {f"output_{i}": y for i, y in enumerate(outputs)}
    return {"output": outputs}


def to_numpy(outputs) -> dict[str, np.ndarray]:
    """{name: float32 array} of a network's eager output(s)."""
    return {k: keras.ops.convert_to_numpy(keras.ops.cast(y, "float32")) for k, y in named_outputs(outputs).items()}


def _projection_loss(outputs: dict[str, tf.Tensor]) -> tf.Tensor:
    """A scalar that reads every element of every output with its own fixed random weight. A plain sum would not do:
    the sum of a batch- or instance-normalised output does not depend on the normalised input, so its gradient is
    zero where the network is fine."""
    total = tf.constant(0.0, tf.float32)
    for key, y in outputs.items():
        y = tf.cast(y, tf.float32)
        weights = _stream(GOLDEN_SEED, f"loss/{key}").uniform(-1.0, 1.0, tuple(y.shape)).astype(np.float32)
        total += tf.reduce_mean(y * weights)
    return total


# ------------------------------------------------------------------------------------------------------ checks


def check_symbolic_call(network: Callable, specs: Sequence[InputSpec], expected: Mapping[str, tuple]) -> None:
    """Called on keras.Input tensors (batch None), the outputs have the declared shapes with batch None."""
    symbolic = [keras.Input(spec.shape[1:], name=f"probe_input{i}") for i, spec in enumerate(specs)]
    outputs = named_outputs(call(network, symbolic))
    assert sorted(outputs) == sorted(expected), f"outputs {sorted(outputs)}, declared {sorted(expected)}"
    for key, y in outputs.items():
        declared = (None, *expected[key][1:])
        assert tuple(y.shape) == declared, f"{key}: symbolic shape {y.shape}, declared {declared}"


def check_eager_call(network: Callable, inputs: Sequence[np.ndarray], expected: Mapping[str, tuple],
                     graph: bool = True) -> dict[str, np.ndarray]:
    """Eager outputs have the declared shapes, are float32, finite and not constant; under tf.function they are the
    same within float32 reordering. Returns the eager outputs."""
    raw = named_outputs(call(network, inputs))
    for key, y in raw.items():
        assert y.dtype == "float32", f"{key}: a float32 network returned {y.dtype}"
    outputs = to_numpy(raw)
    assert sorted(outputs) == sorted(expected), f"outputs {sorted(outputs)}, declared {sorted(expected)}"
    for key, y in outputs.items():
        assert y.shape == tuple(expected[key]), f"{key}: eager shape {y.shape}, declared {expected[key]}"
        assert np.isfinite(y).all(), f"{key}: {np.size(y) - np.isfinite(y).sum()} non-finite values"
        assert y.std() > 0, f"{key}: constant output {y.ravel()[0]} (the checks below would mean nothing)"
    if graph:
        traced = tf.function(lambda *x: call(network, x))
        for key, y in to_numpy(traced(*inputs)).items():
            scale = outputs[key].std()
            np.testing.assert_allclose(y, outputs[key], rtol=1e-5, atol=1e-5 * scale, err_msg=f"{key}: tf.function")
    return outputs


def check_gradients(network: keras.layers.Layer, inputs: Sequence[np.ndarray], specs: Sequence[InputSpec],
                    training: bool) -> None:
    """Every trainable weight, and every input declared differentiable, gets a finite, non-zero gradient; the
    weights a network says another loss trains on its own (`separately_trained_variables`, e.g. a source_flow
    generator's flow network behind its gradient stop) get none from its outputs.

    `training` is how the network is used: True for what the trainer updates (G, D), False for frozen encoders the
    losses call in inference mode. The variables are restored afterwards (a training-mode call moves BatchNorm
    statistics and seed generators).
    """
    saved = [v.numpy() for v in network.variables]
    tensors = [tf.convert_to_tensor(x) for x in inputs]
    trainable = list(network.trainable_variables)
    # A layer whose weights are fitted constants (ShapeTransfer's pose directions) says so with constant_weights.
    assert trainable or not network.weights or getattr(network, "constant_weights", False), (
        f"{network.name} has weights but none trainable")
    try:
        with tf.GradientTape() as tape:
            tape.watch(tensors)
            loss = _projection_loss(named_outputs(call(network, tensors, training=training)))
        gradients = tape.gradient(loss, trainable + tensors)
    finally:
        for variable, value in zip(network.variables, saved, strict=True):
            variable.assign(value)
    assert np.isfinite(loss.numpy()), f"non-finite loss {loss.numpy()}"
    problems = []
    separate = {v.path for v in getattr(network, "separately_trained_variables", ())}
    for variable, gradient in zip(trainable, gradients[: len(trainable)], strict=True):
        if variable.path in separate:
            problems += [] if gradient is None else [f"{variable.path}: a gradient through the stop"]
            continue
        problems += _gradient_problem(variable.path, gradient)
    for i, (spec, gradient) in enumerate(zip(specs, gradients[len(trainable):], strict=True)):
        if spec.differentiable:
            problems += _gradient_problem(f"input {i}", gradient)
    assert not problems, "gradient problems:\n" + "\n".join(problems)


def _gradient_problem(what: str, gradient) -> list[str]:
    if gradient is None:
        return [f"{what}: no gradient"]
    value = keras.ops.convert_to_numpy(gradient)
    if not np.isfinite(value).all():
        return [f"{what}: non-finite gradient"]
    if not np.any(value):
        return [f"{what}: all-zero gradient"]
    return []


def keras_round_trip(model: keras.Model, folder: Path) -> keras.Model:
    """Save as .keras and load back with safe_mode on (every custom class must be registered serialisable)."""
    path = Path(folder) / f"{model.name}.keras"
    model.save(path)
    return keras.models.load_model(path, safe_mode=True)


def check_round_trip(model: keras.Model, inputs: Sequence[np.ndarray], folder: Path,
                     reload: Callable[[keras.Model, Path], keras.Model] = keras_round_trip) -> None:
    """The reloaded network gives exactly the original's outputs (same weights, same graph, same kernels)."""
    expected = to_numpy(call(model, inputs))
    restored = reload(model, Path(folder))
    assert restored is not model
    got = to_numpy(call(restored, inputs))
    assert sorted(got) == sorted(expected)
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key], err_msg=f"{key} after save/load")


def default_bf16(build: Callable[[], keras.Model]) -> Callable[[keras.Model], keras.Model]:
    """A bf16 twin maker: `build` again under the mixed_bfloat16 global policy, the float32 weights copied in."""

    def make(model: keras.Model) -> keras.Model:
        with dtype_policy("mixed_bfloat16"):
            mixed = build()
        mixed.set_weights(model.get_weights())
        return mixed

    return make


def check_bf16(model: keras.layers.Layer, mixed: keras.layers.Layer, inputs: Sequence[np.ndarray],
               tolerance: Bf16Tolerance) -> dict[str, tuple[float, float]]:
    """The mixed_bfloat16 twin computes in bf16 with float32 variables, its outputs are finite and within
    `tolerance` of the float32 ones. Returns {output: (mean, max)} of the relative difference."""
    computes = {layer.compute_dtype for layer in mixed._flatten_layers(include_self=True, recursive=True)}
    assert "bfloat16" in computes, f"no layer of the bf16 build computes in bfloat16 ({computes})"
    assert all(v.dtype == "float32" for v in mixed.trainable_variables), "mixed precision keeps float32 variables"
    expected = to_numpy(call(model, inputs))
    got = to_numpy(call(mixed, inputs))
    measured = {}
    for key, y in expected.items():
        assert np.isfinite(got[key]).all(), f"{key}: non-finite bf16 output"
        relative = np.abs(got[key] - y) / y.std()
        measured[key] = (float(relative.mean()), float(relative.max()))
        assert relative.mean() <= tolerance.mean and relative.max() <= tolerance.max, (
            f"{key}: bf16 differs from float32 by mean {relative.mean():.4f}, max {relative.max():.4f} of the "
            f"output's spread (allowed {tolerance.mean}, {tolerance.max})"
        )
    return measured


# ------------------------------------------------------------------------------------------------------ runners


def run_model_test(
    build: Callable[[], keras.Model],
    specs: Sequence[InputSpec],
    expected: Mapping[str, tuple],
    folder: Path,
    *,
    training: bool = True,
    reload: Callable[[keras.Model, Path], keras.Model] = keras_round_trip,
    make_bf16: Callable[[keras.Model], keras.Model] | None = None,
    bf16_tolerance: Bf16Tolerance | None = None,
    graph: bool = True,
    after_seed: Callable[[keras.Model], None] | None = None,
) -> keras.Model:
    """Every check on the network `build()` returns, with seeded weights.

    Args:
        build: returns the network in float32 (the global policy is float32 in tests).
        specs: its inputs (batch axis included).
        expected: {output name: shape} ("output" for a single tensor, dict keys for a dict of outputs).
        folder: an empty folder for the save/load round trip.
        training: the mode of the gradient pass (True for trained networks, False for frozen encoders).
        reload: save + load back (default: .keras with safe_mode; a network that cannot round-trip through
            .keras passes its own checkpoint format).
        make_bf16: returns a mixed_bfloat16 twin with the model's weights (default: `default_bf16(build)`).
        bf16_tolerance: None skips the bf16 check.
        graph: also compare a tf.function call with the eager one.
        after_seed: adjusts the seeded weights where the generic values put the network out of its working range.

    Returns:
        The float32 network with seeded weights.
    """
    model = build()
    assert model.weights, f"{model.name} has no weights"
    seed_weights(model)
    if after_seed is not None:
        after_seed(model)
    inputs = fixed_inputs(specs)
    check_symbolic_call(model, specs, expected)
    check_eager_call(model, inputs, expected, graph=graph)
    check_gradients(model, inputs, specs, training)
    check_round_trip(model, inputs, folder, reload)
    if bf16_tolerance is not None:
        check_bf16(model, (make_bf16 or default_bf16(build))(model), inputs, bf16_tolerance)
    return model


def build_layer(layer_cls: type, init_kwargs: Mapping, specs: Sequence[InputSpec], dtype: str | None = None,
                seed: bool = True) -> keras.layers.Layer:
    """A layer named "probe" (so its variable paths are fixed), built by one call, with seeded weights."""
    kwargs = {**init_kwargs, "name": "probe", **({"dtype": dtype} if dtype else {})}
    layer = layer_cls(**kwargs)
    call(layer, fixed_inputs(specs))
    if seed:
        seed_weights(layer)
    return layer


def run_layer_test(
    layer_cls: type,
    init_kwargs: Mapping,
    specs: Sequence[InputSpec],
    expected_shape: tuple,
    folder: Path,
    *,
    bf16_tolerance: Bf16Tolerance | None = None,
) -> keras.layers.Layer:
    """Every check on one custom layer: config round trip, compute_output_shape, symbolic and eager calls, gradients
    (weights and differentiable inputs), a .keras round trip inside a functional model (safe_mode: the layer must be
    registered), and the mixed_bfloat16 layer against the float32 one."""
    layer = build_layer(layer_cls, init_kwargs, specs)
    config = layer.get_config()
    clone = layer_cls.from_config(config)
    assert type(clone) is layer_cls and clone.get_config() == config, "get_config -> from_config changed the config"
    shapes = [spec.shape for spec in specs]
    declared = layer.compute_output_shape(shapes[0] if len(shapes) == 1 else shapes)
    assert tuple(declared) == tuple(expected_shape), f"compute_output_shape {declared}, expected {expected_shape}"

    expected = {"output": tuple(expected_shape)}
    inputs = fixed_inputs(specs)
    check_symbolic_call(layer, specs, expected)
    check_eager_call(layer, inputs, expected)
    check_gradients(layer, inputs, specs, training=True)

    symbolic = [keras.Input(spec.shape[1:], name=f"layer_input{i}") for i, spec in enumerate(specs)]
    wrapper = keras.Model(symbolic[0] if len(symbolic) == 1 else symbolic, call(layer, symbolic),
                          name=f"{layer_cls.__name__.lower()}_probe")
    check_round_trip(wrapper, inputs, folder)

    if bf16_tolerance is not None:
        mixed = build_layer(layer_cls, init_kwargs, specs, dtype="mixed_bfloat16", seed=False)
        mixed.set_weights(layer.get_weights())
        check_bf16(layer, mixed, inputs, bf16_tolerance)
    return layer


# ------------------------------------------------------------------------------------------------------ golden


def golden_summary(outputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A few KB per output that any change of its values shows in: the whole output when small, else a strided
    sample, GOLDEN_PROJECTIONS fixed random projections of every element (a change anywhere moves them) and the
    mean, standard deviation, min and max."""
    summary = {}
    for key, y in outputs.items():
        flat = np.asarray(y, np.float64).ravel()
        summary[f"{key}/shape"] = np.asarray(np.shape(y), np.int64)
        if flat.size <= GOLDEN_FULL_LIMIT:
            summary[f"{key}/values"] = flat.astype(np.float32)
            continue
        step = math.ceil(flat.size / GOLDEN_FULL_LIMIT)
        summary[f"{key}/sample"] = flat[::step].astype(np.float32)
        directions = _stream(GOLDEN_SEED, f"projection/{key}").uniform(-1.0, 1.0, (GOLDEN_PROJECTIONS, flat.size))
        summary[f"{key}/projections"] = directions @ flat / math.sqrt(flat.size)
        summary[f"{key}/moments"] = np.array([flat.mean(), flat.std(), flat.min(), flat.max()])
    return summary


def assert_golden(outputs: Mapping[str, np.ndarray], golden_file: Path, fingerprint: np.ndarray | None = None) -> None:
    """Compare today's outputs with the stored golden summary (tests/golden/make_golden.py writes it)."""
    with np.load(golden_file) as stored:
        golden = dict(stored)
    if fingerprint is not None and "weights/fingerprint" in golden:
        np.testing.assert_allclose(
            fingerprint, golden.pop("weights/fingerprint"), rtol=1e-9,
            err_msg="the seeded weights differ from the golden run's (variables renamed, added or reshaped?): "
                    "this is not a maths check; see tests/golden/make_golden.py",
        )
    golden.pop("weights/fingerprint", None)
    actual = golden_summary(outputs)
    assert sorted(actual) == sorted(golden), f"outputs {sorted(actual)}, golden {sorted(golden)}"
    for key, value in golden.items():
        if key.endswith("/shape"):
            np.testing.assert_array_equal(actual[key], value, err_msg=key)
            continue
        output = key.rsplit("/", 1)[0]
        scale = float(golden[f"{output}/moments"][1]) if f"{output}/moments" in golden else float(np.std(value))
        np.testing.assert_allclose(
            actual[key], value, rtol=GOLDEN_RTOL, atol=GOLDEN_ATOL * max(scale, 1e-12),
            err_msg=f"{key} differs from {golden_file.name}: the maths changed (regenerate only if on purpose)",
        )
