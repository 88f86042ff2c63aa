"""The training step on Keras' JAX backend: one G and one D update of a SwapLoss as one jitted, pure function.

    state', logs = step(state, batch)

`state` (JaxTrainState) holds every value a step reads or changes as arrays: G's and D's trainable and
non-trainable weights, both optimisers' variables (Adam moments, iteration counts), the loss's own state (the CLIP
mean), the frozen encoders' weights (read only) and the global step. Inside the step the SwapLoss runs exactly as on
TensorFlow -- the same object, the same term table, the same keras.ops maths -- with its Keras variables mapped to
these arrays by a keras.StatelessScope (the mechanism of Layer.stateless_call, here around the whole pass, because
a pass calls G, D and the encoders several times):

    (g_total, aux), dG = jax.value_and_grad(G pass)(G's weights)     the swap, every G term, the CLIP mean update
    (d_total, aux), dD = jax.value_and_grad(D pass)(D's weights)     d_adv and R1 (jax.grad w.r.t. the real images
                                                                     inside: nested differentiation)
    G, G opt = g_optimizer.stateless_apply(G opt, dG, G)             likewise D

Both gradients come from the state at the start of the step, as in the TensorFlow step (clipswap.training.trainer),
so a step is a pure function of (state, batch); the step number seeds the augmentations (keras.random with the key
[seed, step]), so a resumed run draws what the uninterrupted one would have.

Precision: the Keras dtype policy set before the models are built (mixed_bfloat16 where the accelerator has bf16);
losses and weights stay float32. fp16's dynamic loss scaling is TensorFlow's only (SwapTrainer).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import jax
import jax.numpy as jnp
import keras
import numpy as np

from clipswap.training.loss import SwapLoss

#: The batch keys the step reads (SwapLoss.read_batch); the rest of a batch (labels, paths) stays on the host.
BATCH_KEYS = ("target", "source", "same", "teacher", "warped", "target_68", "source_68")


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class JaxTrainState:
    """Everything a JAX step reads and writes, as lists of arrays in the order of JaxSwapStep's variable lists."""

    g_trainable: list
    g_non_trainable: list
    d_trainable: list
    d_non_trainable: list
    g_optimizer: list
    d_optimizer: list
    loss_state: list
    frozen: list
    step: jax.Array


class JaxSwapStep:
    """The jitted G and D update of a SwapLoss, and the exchange of its state with the Keras variables.

    Args:
        loss: the SwapLoss (built under the JAX backend); its generator and discriminator are trained.
        g_optimizer, d_optimizer: G's and D's optimisers (built here on the networks' trainable weights).
        jit: compile the step with jax.jit (False runs it op by op, for debugging).

    Example:
        step = JaxSwapStep(loss, g_adam, d_adam)
        state = step.initial_state()
        state, logs = step(state, batch)        # batch: dict of NumPy arrays from the data stream
        step.write_back(state)                  # the Keras variables now hold the trained weights
    """

    def __init__(self, loss: SwapLoss, g_optimizer: keras.optimizers.Optimizer,
                 d_optimizer: keras.optimizers.Optimizer, jit: bool = True):
        if keras.backend.backend() != "jax":
            raise ValueError(f"the JAX step needs KERAS_BACKEND=jax, not {keras.backend.backend()!r}")
        if isinstance(g_optimizer, keras.optimizers.LossScaleOptimizer):
            raise ValueError("fp16 loss scaling is the TensorFlow step's only: train with --precision bf16 or fp32 "
                             "on JAX")
        self.loss = loss
        self.generator, self.discriminator = loss.generator, loss.discriminator
        self.g_optimizer, self.d_optimizer = g_optimizer, d_optimizer
        g_optimizer.build(self.generator.trainable_variables)
        d_optimizer.build(self.discriminator.trainable_variables)
        self.loss_variables = list(loss.clip_mean.variables) if loss.clip_mean is not None else []
        self.frozen_variables = _frozen_variables(loss)
        self._step = jax.jit(self._pure_step, donate_argnums=0) if jit else self._pure_step

    # --- state <-> Keras variables -----------------------------------------------------------------------------

    def variable_lists(self) -> dict[str, list]:
        """The Keras variables behind each field of JaxTrainState but the step (same names, same order)."""
        return {
            "g_trainable": self.generator.trainable_variables,
            "g_non_trainable": self.generator.non_trainable_variables,
            "d_trainable": self.discriminator.trainable_variables,
            "d_non_trainable": self.discriminator.non_trainable_variables,
            "g_optimizer": self.g_optimizer.variables,
            "d_optimizer": self.d_optimizer.variables,
            "loss_state": self.loss_variables,
            "frozen": self.frozen_variables,
        }

    def initial_state(self, step: int = 0) -> JaxTrainState:
        """The state read from the Keras variables (after building, or after a checkpoint restored them)."""
        fields = {name: [jnp.array(variable.value, copy=True) for variable in variables]
                  for name, variables in self.variable_lists().items()}
        return JaxTrainState(**fields, step=jnp.asarray(step, jnp.int32))

    def write_back(self, state: JaxTrainState) -> None:
        """Assign the state's arrays to the Keras variables (before a checkpoint, an evaluation or an export)."""
        for name, variables in self.variable_lists().items():
            if name == "frozen":
                continue
            for variable, value in zip(variables, getattr(state, name), strict=True):
                # A host copy: the step donates the state's buffers, which the variable must not share.
                variable.assign(np.asarray(value))

    # --- the step -------------------------------------------------------------------------------------------------

    def __call__(self, state: JaxTrainState, batch: Mapping[str, np.ndarray]) -> tuple[JaxTrainState, dict]:
        """One G and one D update; returns the new state (the old one is donated: do not reuse it) and every
        reported figure by name (loss.metric_names) as scalar arrays."""
        inputs = {key: jnp.asarray(batch[key], jnp.float32) for key in BATCH_KEYS if key in batch}
        state, logs = self._step(state, inputs)
        return state, {name: logs[name] for name in self.loss.metric_names}  # JAX returns dicts sorted by key

    def state_mapping(self, state: JaxTrainState, **replaced) -> list[tuple]:
        """(Keras variable, array) of every variable the passes read, with some fields' arrays replaced."""
        pairs = []
        for name, variables in self.variable_lists().items():
            pairs += list(zip(variables, replaced.get(name, getattr(state, name)), strict=True))
        return pairs

    def _pure_step(self, state: JaxTrainState, inputs: dict) -> tuple[JaxTrainState, dict]:
        batch = self.loss.read_batch(inputs)
        g_names = ("g_non_trainable", "loss_state")

        def generator_objective(g_trainable):
            with keras.StatelessScope(state_mapping=self.state_mapping(state, g_trainable=g_trainable)) as scope:
                g_pass = self.loss.generator_pass(batch, state.step)
            updated = {name: [_current(scope, variable) for variable in self.variable_lists()[name]]
                       for name in g_names}
            return g_pass.total, (g_pass.terms, g_pass.swap, updated)

        def discriminator_objective(d_trainable, swap):
            with keras.StatelessScope(state_mapping=self.state_mapping(state, d_trainable=d_trainable)) as scope:
                d_pass = self.loss.discriminator_pass(batch, swap)
            d_non_trainable = [_current(scope, variable) for variable in self.variable_lists()["d_non_trainable"]]
            return d_pass.total, (d_pass.terms, d_non_trainable)

        (_, (g_terms, swap, g_updated)), g_grads = jax.value_and_grad(generator_objective, has_aux=True)(
            state.g_trainable)
        (_, (d_terms, d_non_trainable)), d_grads = jax.value_and_grad(discriminator_objective, has_aux=True)(
            state.d_trainable, swap)
        g_trainable, g_optimizer = self.g_optimizer.stateless_apply(state.g_optimizer, g_grads, state.g_trainable)
        d_trainable, d_optimizer = self.d_optimizer.stateless_apply(state.d_optimizer, d_grads, state.d_trainable)
        new_state = replace(
            state, g_trainable=g_trainable, g_non_trainable=g_updated["g_non_trainable"], d_trainable=d_trainable,
            d_non_trainable=d_non_trainable, g_optimizer=g_optimizer, d_optimizer=d_optimizer,
            loss_state=g_updated["loss_state"], step=state.step + 1,
        )
        values = {**g_terms, **d_terms}
        return new_state, {name: values[name] for name in self.loss.metric_names}


def _current(scope: keras.StatelessScope, variable: keras.Variable):
    """The variable's value at the end of a stateless pass: its update if the pass assigned it."""
    value = scope.get_current_value(variable)
    return variable.value if value is None else value


def _frozen_variables(loss: SwapLoss) -> list:
    """The weights of the frozen networks the passes read (identity encoder, CLIP, a feature source's own model),
    passed to the jitted step as arguments rather than baked into it as constants."""
    models = [loss.identity.model, loss.clip_encoder]
    for source in (loss.perceptual, loss.attribute):
        extractor = getattr(source, "extractor", None)
        models.append(extractor if isinstance(extractor, keras.Model) else getattr(extractor, "model", None))
    seen, variables = set(), []
    for model in models:
        if not isinstance(model, keras.Model):
            continue
        for variable in model.weights:
            if id(variable) not in seen:
                seen.add(id(variable))
                variables.append(variable)
    trained = {id(v) for v in loss.generator.weights + loss.discriminator.weights}
    return [variable for variable in variables if id(variable) not in trained]
