"""One JAX training step of the tiny trainer from given weights and batch, for tests/training/test_jax_step.py.

Run under KERAS_BACKEND=jax with TensorFlow unimportable: builds the configuration the test names (the assembly
`clipswap train` uses), assigns every weight of the identity encoder, G and D from IN.npz (their names and shapes
must match the TensorFlow side's), takes one JaxSwapStep on IN.npz's batch and writes the step's figures, the
updated weights of G and D, and D's gradient of each of its terms at the start, to OUT.npz.

With --r1-float64 it writes instead the independent reference of D's R1 gradients: the penalty written out here
(not clipswap's function) and differentiated twice in float64 (jax_enable_x64, Keras' float64 policy).

Usage: KERAS_BACKEND=jax python tests/jax_step_probe.py IN.npz OUT.npz [--r1-float64]
"""

from __future__ import annotations

import sys

from backend_probe import block_tensorflow

block_tensorflow()  # importing TensorFlow now fails: the JAX step must not need it

import numpy as np  # noqa: E402

#: The weights both sides build (run.build_trainer's order is identity encoder, then G, then D).
MODELS = ("identity", "generator", "discriminator")


def build(weights_json: str, model_json: str = "{}"):
    """(JaxSwapStep, {name: model}) of tiny_train_config(weights, clip=False, model=model changes)."""
    import json

    import keras

    from clipswap.losses.composite import LossWeights
    from clipswap.training.assembly import build_loss, build_networks, make_optimizers
    from clipswap.training.jax_step import JaxSwapStep

    from conftest import tiny_identity_encoder, tiny_train_config

    config = tiny_train_config(LossWeights(**json.loads(weights_json)), clip=False, model=json.loads(model_json))
    identity = tiny_identity_encoder(config.model.identity_encoder)
    keras.utils.set_random_seed(config.seed)
    generator, discriminator = build_networks(config.model)
    loss = build_loss(config, generator, discriminator, identity, None)
    step = JaxSwapStep(loss, *make_optimizers(config))
    return step, {"identity": identity, "generator": generator, "discriminator": discriminator}


def discriminator_gradients(step, state, batch) -> dict[str, np.ndarray]:
    """{"dgrad_TERM_i": d TERM / d (D's trainable weight i)} for d_adv and r1 at `state`, each term's own gradient
    (the step applies their sum), on the swap of the G pass at `state`."""
    import jax
    import keras

    loss = step.loss
    swap_batch = loss.read_batch(batch)
    with keras.StatelessScope(state_mapping=step.state_mapping(state)):
        swap = loss.generator_pass(swap_batch, state.step).swap
    out = {}
    for term in ("d_adv", "r1"):
        def objective(d_trainable, term=term):
            with keras.StatelessScope(state_mapping=step.state_mapping(state, d_trainable=d_trainable)):
                return loss.discriminator_pass(swap_batch, swap).terms[term]

        gradients = jax.grad(objective)(state.d_trainable)
        out.update({f"dgrad_{term}_{i}": np.asarray(g) for i, g in enumerate(gradients)})
    return out


def generator_gradients(step, state, batch) -> dict[str, np.ndarray]:
    """{"ggrad_i": d g_total / d (G's trainable weight i)} at `state`: the gradients the step hands to G's Adam."""
    import jax
    import keras

    loss = step.loss
    swap_batch = loss.read_batch(batch)

    def objective(g_trainable):
        with keras.StatelessScope(state_mapping=step.state_mapping(state, g_trainable=g_trainable)):
            return loss.generator_pass(swap_batch, state.step).total

    return {f"ggrad_{i}": np.asarray(g) for i, g in enumerate(jax.grad(objective)(state.g_trainable))}


def r1_float64(source: str, destination: str) -> None:
    """{"r1_i": d R1 / d (D's trainable weight i)} in float64 on IN.npz's real images (the batch's sources)."""
    import jax

    jax.config.update("jax_enable_x64", True)
    import json

    import jax.numpy as jnp
    import keras

    from clipswap.losses.composite import LossWeights
    from clipswap.training.assembly import build_networks

    from conftest import tiny_train_config

    keras.config.set_dtype_policy("float64")
    data = dict(np.load(source))
    config = tiny_train_config(LossWeights(**json.loads(str(data["weights_json"]))), clip=False,
                               model=json.loads(str(data["model_json"])))
    _, discriminator = build_networks(config.model)
    for index, variable in enumerate(discriminator.weights):
        variable.assign(data[f"discriminator_{index}"].astype(np.float64))
    real = jnp.asarray(data["batch_source"], jnp.float64)

    def penalty(weights):
        with keras.StatelessScope(state_mapping=list(zip(discriminator.trainable_variables, weights, strict=True))):
            def mean_logit_sum(images):
                logits = discriminator(images, training=True)
                return jnp.sum(jnp.mean(logits.reshape(logits.shape[0], -1), axis=1))

            slope = jax.grad(mean_logit_sum)(real)
            return 0.5 * config.weights.r1_gamma * jnp.mean(jnp.sum(jnp.square(slope).reshape(len(real), -1), axis=1))

    gradients = jax.grad(penalty)([jnp.asarray(v.value) for v in discriminator.trainable_variables])
    np.savez(destination, **{f"r1_{i}": np.asarray(g) for i, g in enumerate(gradients)})


def main(source: str, destination: str) -> None:
    data = dict(np.load(source))
    step, models = build(str(data["weights_json"]), str(data["model_json"]))
    for name in MODELS:
        names = [f"{v.path} {tuple(v.shape)}" for v in models[name].weights]
        if names != data[f"{name}_names"].tolist():
            raise SystemExit(f"{name}: the weights differ from TensorFlow's:\n{names}\n{data[f'{name}_names']}")
        for index, variable in enumerate(models[name].weights):
            variable.assign(data[f"{name}_{index}"])
    state = step.initial_state()
    batch = {key: data[f"batch_{key}"] for key in ("target", "source", "same")}
    out = discriminator_gradients(step, state, batch)
    out.update(generator_gradients(step, state, batch))
    state, logs = step(state, batch)
    step.write_back(state)
    out.update({f"log_{name}": np.asarray(value, np.float32) for name, value in logs.items()})
    for name in ("generator", "discriminator"):
        for index, variable in enumerate(models[name].trainable_weights):
            out[f"{name}_{index}"] = np.asarray(variable.value)
    out["step"] = np.asarray(state.step)
    np.savez(destination, **out)


if __name__ == "__main__":
    (r1_float64 if "--r1-float64" in sys.argv[3:] else main)(sys.argv[1], sys.argv[2])
