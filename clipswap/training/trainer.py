"""SwapTrainer: the optimisation of a SwapLoss -- one G and one D update per step, as a keras.Model `train_step`.

The loss (clipswap.training.loss.SwapLoss) owns what is computed: the G pass (G, the frozen encoders, the active terms
of clipswap.losses.terms) and the D pass (logistic loss and R1). This file owns how it is optimised: the two gradient
tapes, loss scaling, the optimisers' updates, the global step, distribution and the per-step metrics.

Both gradients are taken from the same forward pass (the state at the start of the step) and then applied, so a step
is a pure function of (weights, optimiser state, CLIP mean, step counter, batch). The step counter is also the RNG
state of the loss's stateless augmentations (keras.random.SeedGenerator keeps its state in a variable with
aggregation "none", which cannot be assigned inside a MirroredStrategy replica).

Distribution: build and compile under the strategy's scope; every replica's losses are divided by the replica count
before the gradient (the optimiser sums gradients across replicas), so the update equals the global-batch mean's.
Mixed precision: set the Keras dtype policy before building the models; losses are float32; fp16 wraps the optimisers
in keras.optimizers.LossScaleOptimizer (scale_loss here, unscaling and skipping of non-finite steps in apply).
"""

from __future__ import annotations

import keras
import tensorflow as tf

# The optimisers are built by clipswap.training.assembly (no TensorFlow there); importable from here as before.
from clipswap.training.assembly import current_learning_rate, make_optimizer  # noqa: F401
from clipswap.training.loss import SwapLoss


class SwapTrainer(keras.Model):
    """Takes one G and one D update per step on the passes of a SwapLoss.

    Args:
        loss: the SwapLoss (its generator and discriminator are what this model trains).

    Metrics (per step, after `reset_metrics`): loss.metric_names -- every active generator term by name ("id",
    "rec", ...), "g_total", "d_adv", "r1", "d_total".

    Example:
        trainer = SwapTrainer(loss)
        trainer.compile(make_optimizer(...), make_optimizer(...))
        logs = trainer.train_function(iterator)     # one step; trainer.step_counter counts them
    """

    def __init__(self, loss: SwapLoss, name: str = "swap_trainer", **kwargs):
        super().__init__(name=name, **kwargs)
        self.swap_loss = loss
        self.generator = loss.generator
        self.discriminator = loss.discriminator
        # Trackers are created here (Keras tracks them as this model's metrics); run.py resets them every step.
        self.trackers = {term: keras.metrics.Mean(name=term) for term in loss.metric_names}
        self.step_counter = tf.Variable(
            tf.constant(0, tf.int64), trainable=False, name="global_step",
            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
        )
        self.g_optimizer: keras.optimizers.Optimizer | None = None
        self.d_optimizer: keras.optimizers.Optimizer | None = None

    def compile(
        self,
        g_optimizer: keras.optimizers.Optimizer,
        d_optimizer: keras.optimizers.Optimizer,
        jit_compile: bool = False,
        **kwargs,
    ) -> None:
        """Set the two optimisers (create and compile under the strategy's scope) and build their slots."""
        super().compile(optimizer=g_optimizer, jit_compile=jit_compile, **kwargs)
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer
        # Built now so a checkpoint can restore their slots before the first step.
        g_optimizer.build(self.generator.trainable_variables)
        d_optimizer.build(self.discriminator.trainable_variables)

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        return list(self.trackers.values())

    def call(self, inputs, training: bool = False):
        """The swap: inputs {"target": [B, S, S, 3], "source": [B, S, S, 3]} in [-1, 1] -> [B, S, S, 3]."""
        return self.swap_loss.swap(inputs["target"], inputs["source"], training=training)

    def train_step(self, data):
        if self.g_optimizer is None:
            raise RuntimeError("SwapTrainer.compile(g_optimizer, d_optimizer) must be called before training")
        batch = self.swap_loss.read_batch(data)
        replicas = tf.cast(tf.distribute.get_strategy().num_replicas_in_sync, tf.float32)
        step = self.step_counter.read_value()

        with tf.GradientTape() as g_tape:
            g_pass = self.swap_loss.generator_pass(batch, step)
            g_scaled = self.g_optimizer.scale_loss(g_pass.total / replicas)
        with tf.GradientTape() as d_tape:
            d_pass = self.swap_loss.discriminator_pass(batch, g_pass.swap)
            d_scaled = self.d_optimizer.scale_loss(d_pass.total / replicas)

        g_vars = self.generator.trainable_variables
        d_vars = self.discriminator.trainable_variables
        g_grads = g_tape.gradient(g_scaled, g_vars)
        d_grads = d_tape.gradient(d_scaled, d_vars)
        self.g_optimizer.apply(g_grads, g_vars)
        self.d_optimizer.apply(d_grads, d_vars)
        self.step_counter.assign_add(1)

        values = {**g_pass.terms, **d_pass.terms}
        for term, tracker in self.trackers.items():
            tracker.update_state(values[term])
        results = {term: tracker.result() for term, tracker in self.trackers.items()}
        if isinstance(tf.distribute.get_strategy(), tf.distribute.MultiWorkerMirroredStrategy):
            # Keras reduces a multi-worker step's outputs with strategy.reduce("MEAN", v, axis=0), which fails on
            # scalars ("Invalid reduction dimension 0 for input with 0 dimensions"): give each a length-1 axis,
            # which that reduction (the mean over every replica of every worker) removes again.
            results = {term: tf.reshape(value, [1]) for term, value in results.items()}
        return results
