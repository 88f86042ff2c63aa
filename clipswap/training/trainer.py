"""SwapTrainer: a keras.Model that owns G, D and the frozen encoders and takes one G and one D update per step.

One step on a batch {"target", "source", "same"} (images [B, S, S, 3] RGB in [-1, 1], same [B] in {0, 1}):

    z_src, z_tgt = R(source), R(target)                 frozen identity encoder (ArcFace-R50 or SFace), no gradient
    c_src        = CLIP(source)                         when CLIP is on: appended to the identity input (paper z_id)
    swap         = G(target, [z_src, c_src])               G(teacher, ...) for a pre_swap generator (below);
                                                        G(target, ..., source) for a source_image generator
                                                        G(target, ..., warped) for a source_warp one
    G terms      = id (eq. 6), rec (eq. 7), perceptual (eq. 8), contra (eqs. 2-5), att (eq. 9), adv,
                   and for the facedancer preset cycle (G(swap, z_tgt) vs target) and IFSR
    D terms      = logistic loss on D(source) real / D(swap) fake, R1 (gamma 10) on the real images

A generator whose config has pre_swap="landmarks" reads the landmark swap of the source onto the target instead of
the target (what the swap pipeline feeds it): in training that is the batch's teacher image (`clipswap pairs` data;
on same-identity pairs the teacher is the target itself), so its batches must carry teachers.

Both gradients are taken from the same forward pass (the state at the start of the step) and then applied, so a step
is a pure function of (weights, optimiser state, CLIP mean, step counter, batch). Randomness (the CLIP augmentations)
is stateless, seeded by [config seed, global step * replicas + replica id]: a resumed run draws exactly what the
uninterrupted run would have. (keras.random.SeedGenerator keeps its state in a variable with aggregation "none",
which cannot be assigned inside a MirroredStrategy replica, so the step counter is the RNG state instead.)

Distribution: build and compile under the strategy's scope; every replica's losses are divided by the replica count
before the gradient (the optimiser sums gradients across replicas), so the update equals the global-batch mean's.
Mixed precision: set the Keras dtype policy before building the models; losses are float32; fp16 wraps the optimisers
in keras.optimizers.LossScaleOptimizer (scale_loss here, unscaling and skipping of non-finite steps in apply).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import keras
import tensorflow as tf

from clipswap.face.templates import ARCFACE_SIZE
from clipswap.losses.adversarial import (
    discriminator_adversarial_loss,
    discriminator_logits_with_r1,
    generator_adversarial_loss,
)
from clipswap.losses.attribute import attribute_loss
from clipswap.losses.augment import clip_augment, identity_augment
from clipswap.losses.composite import LossWeights, discriminator_loss, generator_loss
from clipswap.losses.contrastive import ClipMeanTracker, clip_contrastive_loss
from clipswap.losses.facedancer import IFSR_MARGINS, cycle_loss, ifsr_loss
from clipswap.losses.identity import identity_loss
from clipswap.losses.perceptual import perceptual_loss
from clipswap.losses.reconstruction import reconstruction_loss, teacher_loss
from clipswap.losses.terms import DISCRIMINATOR_TERMS, active_generator_terms
from clipswap.models.generator import generator_inputs
from clipswap.models.sface import SFACE_SPEC

logger = logging.getLogger(__name__)

#: Stage outputs of SFace (layer names of clipswap.models.sface.build_sface with the default name):
#: [B, 56, 56, 128], [B, 28, 28, 256], [B, 14, 14, 512], [B, 7, 7, 1024] at 112 px.
SFACE_STAGES: tuple[str, ...] = SFACE_SPEC.stages
#: How many leading stages the default attribute network A (attribute_network="identity") reads: the stride-4 and
#: stride-8 maps (ArcFace conv2/conv3, SFace conv_4/conv_6), which hold pose, expression, lighting and layout. The
#: deeper stages carry the identity itself: matching them to the TARGET on every swap pulls directly against the
#: identity loss (FaceDancer's IFSR lets even conv4 drift by a margin for this reason, REFERENCE.md section 7).
#: The perceptual loss, which only compares same-identity pairs, still reads every stage.
ATTRIBUTE_STAGE_COUNT = 2
#: Key of the identity embedding in IdentityNetwork's outputs (the other keys are layer names).
EMBEDDING = "embedding"


class IdentityNetwork:
    """The frozen identity encoder R read at once for its embedding and any intermediate layers.

    Feeds R the way FaceDancer feeds ArcFace (REFERENCE.md section 3): images [B, S, S, 3] RGB in [-1, 1] ->
    (x + 1) / 2 -> bilinear resize to 112 -> R. The S-px crops are ArcFace-template crops, so the resized crop is
    the 112 ArcFace crop both ArcFace-R50 and SFace expect.

    Args:
        model: functional keras.Model, [B, 112, 112, 3] RGB in [0, 1] -> [B, D] raw embedding.
        layer_names: intermediate layers to return too (perceptual/attribute/IFSR features).
        input_size: side fed to the model.

    Calling returns {layer name: [B, h, w, c], ..., "embedding": [B, D]} (float32).
    """

    def __init__(self, model: keras.Model, layer_names: Sequence[str] = (), input_size: int = ARCFACE_SIZE):
        known = {layer.name for layer in model.layers}
        missing = [name for name in layer_names if name not in known]
        if missing:
            raise ValueError(f"the identity encoder {model.name!r} has no layers {missing}")
        self.model = model
        self.layer_names = tuple(dict.fromkeys(layer_names))
        outputs = {name: model.get_layer(name).output for name in self.layer_names}
        outputs[EMBEDDING] = model.output
        self.tapped = keras.Model(model.input, outputs, name=f"{model.name}_tapped")
        self.input_size = int(input_size)

    def __call__(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        x = (tf.cast(images, tf.float32) + 1.0) * 0.5
        x = tf.image.resize(x, (self.input_size, self.input_size), method="bilinear")
        outputs = self.tapped(x, training=False)
        return {name: tf.cast(value, tf.float32) for name, value in outputs.items()}


@dataclass(frozen=True)
class FeatureSource:
    """Where a feature loss reads its features: layers of the identity pass (shared, no extra forward pass) or
    its own extractor (images [B, S, S, 3] in [-1, 1] -> list of [B, ...] tensors, e.g. perceptual.vgg16_features).

    `layer_weights` are per-layer weights for the perceptual loss (None = all 1).
    """

    identity_layers: tuple[str, ...] = ()
    extractor: Callable[[tf.Tensor], list[tf.Tensor]] | None = None
    layer_weights: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if bool(self.identity_layers) == (self.extractor is not None):
            raise ValueError("a FeatureSource takes either identity_layers or an extractor, exactly one")

    def features(self, images: tf.Tensor, identity_outputs: dict[str, tf.Tensor]) -> list[tf.Tensor]:
        if self.identity_layers:
            return [identity_outputs[name] for name in self.identity_layers]
        return [tf.cast(f, tf.float32) for f in self.extractor(images)]


def pre_swap_input(pre_swap: str | None, target: tf.Tensor, teacher: tf.Tensor | None) -> tf.Tensor:
    """What G reads as its target: the target, or for a pre_swap generator the teacher (the landmark swap).

    Raises:
        ValueError: a pre_swap generator and no teacher images.
    """
    if pre_swap is None:
        return target
    if teacher is None:
        raise ValueError(f"a generator with pre_swap={pre_swap!r} reads the landmark swap of each pair: train it on "
                         "`clipswap pairs` data, whose batches carry it as the teacher image")
    return teacher


class SwapTrainer(keras.Model):
    """Holds G, D and the frozen encoders; `train_step` takes one G and one D update.

    Args:
        generator: clipswap.models.generator.Generator (trainable).
        discriminator: clipswap.models.discriminator.Discriminator (trainable).
        identity: IdentityNetwork over the frozen identity encoder R (its embedding feeds G and the id loss).
        weights: LossWeights; a term whose weight is 0 is not computed at all (except id, rec and adv, always
            reported).
        clip_encoder: frozen CLIP image encoder ([B, S, S, 3] in [-1, 1] -> [B, Dc]) or None. When given its
            embedding of the source is appended to G's identity input.
        perceptual, attribute: FeatureSource of eq. 8 / eq. 9 (required when the weight is non-zero).
        ifsr_layers: identity-encoder layers of the IFSR loss (ArcFace names, IFSR_MARGINS keys).
        n_aug, aug_distortion, aug_crop_fraction: CLIP augmentations (clip_augment).
        facedancer_rec_clip: FaceDancer's clip-and-halve of the reconstruction loss.
        id_augment: score the identity loss on a randomly shifted and flipped swap (identity_augment).
        teacher_face_only: average the teacher term over the face region only (teacher_loss with the target).
        teacher_background: with teacher_face_only, add the mean outside the face region (teacher_loss background).
        id_warmup: (steps, weight): the identity term's weight is `weight` instead of weights.id while the global
            step is below `steps` (0 steps = off); the reported terms are unchanged, only g_total differs.
        perceptual_to_teacher: the perceptual term compares the swap with the teacher on every pair (batches with
            teachers) instead of with the target on same-identity pairs.
        seed: run seed (the CLIP augmentation draws are derived from it and the step).

    Metrics (per step, after `reset_metrics`): every generator term by name ("id", "rec", ...), "g_total",
    "d_adv", "r1", "d_total".
    """

    def __init__(
        self,
        generator: keras.Model,
        discriminator: keras.Model,
        identity: IdentityNetwork,
        weights: LossWeights,
        *,
        clip_encoder: keras.Model | None = None,
        perceptual: FeatureSource | None = None,
        attribute: FeatureSource | None = None,
        ifsr_layers: Sequence[str] = (),
        n_aug: int = 4,
        aug_distortion: float = 0.5,
        aug_crop_fraction: float = 0.75,
        facedancer_rec_clip: bool = False,
        id_augment: bool = False,
        teacher_face_only: bool = False,
        teacher_background: bool = False,
        id_warmup: tuple[int, float] = (0, 0.0),
        perceptual_to_teacher: bool = False,
        seed: int = 0,
        name: str = "swap_trainer",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        self.generator = generator
        self.discriminator = discriminator
        self.identity = identity
        self.loss_weights_ = weights
        self.clip_encoder = clip_encoder
        self.perceptual = perceptual
        self.attribute = attribute
        self.ifsr_layers = tuple(ifsr_layers)
        self.n_aug = int(n_aug)
        self.aug_distortion = float(aug_distortion)
        self.aug_crop_fraction = float(aug_crop_fraction)
        self.facedancer_rec_clip = bool(facedancer_rec_clip)
        self.id_augment = bool(id_augment)
        self.teacher_face_only = bool(teacher_face_only)
        self.teacher_background = bool(teacher_background)
        self.id_warmup = (int(id_warmup[0]), float(id_warmup[1]))
        self.perceptual_to_teacher = bool(perceptual_to_teacher)
        self.seed = int(seed)

        if weights.perceptual and perceptual is None:
            raise ValueError("weights.perceptual > 0 needs a perceptual FeatureSource")
        if weights.att and attribute is None:
            raise ValueError("weights.att > 0 needs an attribute FeatureSource")
        if weights.ifsr and not self.ifsr_layers:
            raise ValueError("weights.ifsr > 0 needs the ArcFace IFSR layers (ifsr_layers); IFSR needs ArcFace-R50")
        if weights.contra and clip_encoder is None:
            raise ValueError("weights.contra > 0 needs a CLIP encoder")

        for frozen in (identity.model, clip_encoder):
            if frozen is not None:
                frozen.trainable = False

        self.g_terms = self._active_generator_terms()
        self.d_terms = DISCRIMINATOR_TERMS
        # Trackers are created here (Keras tracks them as this model's metrics); run.py resets them every step.
        self.trackers = {
            term: keras.metrics.Mean(name=term) for term in (*self.g_terms, "g_total", *self.d_terms, "d_total")
        }
        self.clip_mean = ClipMeanTracker(clip_encoder.output.shape[-1]) if clip_encoder is not None else None
        self.step_counter = tf.Variable(
            tf.constant(0, tf.int64), trainable=False, name="global_step",
            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
        )
        self.g_optimizer: keras.optimizers.Optimizer | None = None
        self.d_optimizer: keras.optimizers.Optimizer | None = None

    def _active_generator_terms(self) -> tuple[str, ...]:
        return active_generator_terms(self.loss_weights_)

    # --- Keras plumbing ------------------------------------------------------------------------------------------

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
        return self.swap(inputs["target"], inputs["source"], training=training)

    # --- the pieces of a step ------------------------------------------------------------------------------------

    def clip_embedding(self, images: tf.Tensor) -> tf.Tensor | None:
        """CLIP(x) as [B, Dc] float32 without gradient, or None when CLIP is off."""
        if self.clip_encoder is None:
            return None
        return tf.stop_gradient(tf.cast(self.clip_encoder(images, training=False), tf.float32))

    def identity_input(
        self,
        images: tf.Tensor,
        identity_outputs: dict[str, tf.Tensor] | None = None,
        clip_embedding: tf.Tensor | None = None,
    ) -> tf.Tensor:
        """G's identity input for source images: R(x) (then CLIP(x) when on); no gradient flows back.

        `identity_outputs` / `clip_embedding` reuse R(x) / CLIP(x) already computed for these images.
        """
        if identity_outputs is None:
            identity_outputs = self.identity(images)
        parts = [identity_outputs[EMBEDDING]]
        if self.clip_encoder is not None:
            parts.append(self.clip_embedding(images) if clip_embedding is None else clip_embedding)
        return tf.stop_gradient(tf.concat(parts, axis=-1))

    def run_generator(self, target: tf.Tensor, identity_in: tf.Tensor, source: tf.Tensor,
                      training: bool = False) -> tf.Tensor:
        """G on (what it reads as its target, identity input, and the source crops when the generator reads them:
        ModelConfig.source_image): [B, S, S, 3] float32."""
        config = getattr(self.generator, "config_", None)
        inputs = generator_inputs(config, target, identity_in, source) if config else [target, identity_in]
        return tf.cast(self.generator(inputs, training=training), tf.float32)

    def swap(self, target: tf.Tensor, source: tf.Tensor, training: bool = False,
             generator_source: tf.Tensor | None = None) -> tf.Tensor:
        """G(target, identity of source): [B, S, S, 3] float32, linear output read as [-1, 1]. `generator_source`:
        what G reads as its source image when that is not `source` itself (a source_warp generator's warps)."""
        return self.run_generator(target, self.identity_input(source),
                                  source if generator_source is None else generator_source, training=training)

    @property
    def source_warp(self) -> bool:
        """The generator reads the warped source (ModelConfig.source_warp) as its source image."""
        return bool(getattr(getattr(self.generator, "config_", None), "source_warp", False))

    @property
    def pre_swap(self) -> str | None:
        """The generator's ModelConfig.pre_swap (None for any model without a clipswap config)."""
        return getattr(getattr(self.generator, "config_", None), "pre_swap", None)

    def generator_input(self, target: tf.Tensor, teacher: tf.Tensor | None) -> tf.Tensor:
        """What G reads as its target (pre_swap_input)."""
        return pre_swap_input(self.pre_swap, target, teacher)

    def augmentation_seed(self) -> tf.Tensor:
        """[2] int64 stateless seed for this step and replica."""
        context = tf.distribute.get_replica_context()
        replicas = tf.cast(tf.distribute.get_strategy().num_replicas_in_sync, tf.int64)
        replica = tf.cast(context.replica_id_in_sync_group if context is not None else 0, tf.int64)
        return tf.stack([tf.constant(self.seed, tf.int64), self.step_counter.read_value() * replicas + replica])

    def generator_terms(
        self,
        target: tf.Tensor,
        source_clip: tf.Tensor | None,
        same: tf.Tensor,
        src_out: dict[str, tf.Tensor],
        tgt_out: dict[str, tf.Tensor],
        identity_in: tf.Tensor,
        seed: tf.Tensor,
        teacher: tf.Tensor | None = None,
        source: tf.Tensor | None = None,
    ) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        """Forward G and every generator term; call inside the G tape. Returns (swap float32, raw terms).

        `source_clip` is CLIP(source) [B, Dc] (None when CLIP is off), computed once per step by train_step.
        `teacher` is the batch's teacher images [B, S, S, 3] (needed when weights.teacher > 0, and G's input for a
        pre_swap generator). `source` is the batch's source images (G's third input for a source_image generator).
        """
        w = self.loss_weights_
        swap = self.run_generator(self.generator_input(target, teacher), identity_in, source, training=True)
        swap_out = self.identity(swap)
        if self.id_augment:
            # Its own seed stream: the CLIP augmentations use `seed` itself.
            swap_embedding = self.identity(identity_augment(swap, seed + tf.constant([0, 1 << 40], tf.int64)))
            swap_embedding = swap_embedding[EMBEDDING]
        else:
            swap_embedding = swap_out[EMBEDDING]
        terms: dict[str, tf.Tensor] = {
            "id": identity_loss(tf.stop_gradient(src_out[EMBEDDING]), swap_embedding),
            "rec": reconstruction_loss(target, swap, same, facedancer_clip=self.facedancer_rec_clip),
        }
        if w.perceptual:
            if self.perceptual_to_teacher and teacher is not None:
                # Towards the teacher on every pair (on same pairs the teacher is the target: eq. 8 unchanged).
                teacher_out = {k: tf.stop_gradient(v) for k, v in self.identity(teacher).items()}
                feats_t = [tf.stop_gradient(f) for f in self.perceptual.features(teacher, teacher_out)]
                compared = tf.ones_like(same)
            else:
                feats_t = [tf.stop_gradient(f) for f in self.perceptual.features(target, tgt_out)]
                compared = same
            feats_s = self.perceptual.features(swap, swap_out)
            terms["perceptual"] = perceptual_loss(feats_t, feats_s, compared, self.perceptual.layer_weights)
        if w.att:
            feats_t = [tf.stop_gradient(f) for f in self.attribute.features(target, tgt_out)]
            terms["att"] = attribute_loss(feats_t, self.attribute.features(swap, swap_out))
        terms["adv"] = generator_adversarial_loss(self.discriminator(swap, training=True))
        if w.contra:
            terms["contra"] = self._contrastive(source_clip, swap, seed)
        if w.cycle:
            back = self.identity_input(target, tgt_out)
            cycled = self.run_generator(swap, back, target, training=True)
            terms["cycle"] = cycle_loss(cycled, target)
        if w.ifsr:
            margins = {name: IFSR_MARGINS[name] for name in self.ifsr_layers}
            feats_t = {name: tf.stop_gradient(tgt_out[name]) for name in self.ifsr_layers}
            terms["ifsr"] = ifsr_loss(feats_t, {name: swap_out[name] for name in self.ifsr_layers}, margins)
        if w.teacher:
            if teacher is None:
                raise ValueError("weights.teacher > 0 needs batches with teacher images (data made by clipswap pairs)")
            terms["teacher"] = teacher_loss(teacher, swap, target if self.teacher_face_only else None,
                                            background=self.teacher_background)
        return swap, terms

    def _id_warmup_extra(self, id_term: tf.Tensor) -> tf.Tensor:
        """(warm-up weight - weights.id) * id term while the step is below the warm-up's end, else 0."""
        steps, weight = self.id_warmup
        if steps <= 0:
            return tf.constant(0.0, tf.float32)
        active = tf.cast(self.step_counter.read_value() < steps, tf.float32)
        return active * (weight - self.loss_weights_.id) * tf.cast(id_term, tf.float32)

    def _contrastive(self, e_ref: tf.Tensor, swap: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        """Eqs. 2-5: e_ref = CLIP(X_ref = source) [B, Dc], X_aug = n_aug augmentations of the swap; updates the CLIP
        mean EMA."""
        e_swap = tf.cast(self.clip_encoder(swap, training=False), tf.float32)
        augmented = clip_augment(
            swap, n_aug=self.n_aug, distortion=self.aug_distortion, crop_fraction=self.aug_crop_fraction, seed=seed
        )
        shape = tf.shape(augmented)
        flat = tf.reshape(augmented, [shape[0] * shape[1], shape[2], shape[3], shape[4]])
        e_aug = tf.cast(self.clip_encoder(flat, training=False), tf.float32)
        e_aug = tf.reshape(e_aug, [shape[0], shape[1], -1])
        e_mean = self.clip_mean.update(e_swap)
        return clip_contrastive_loss(e_ref, e_swap, e_aug, e_mean)

    def discriminator_terms(self, source: tf.Tensor, swap: tf.Tensor) -> dict[str, tf.Tensor]:
        """D's logistic loss (source real, swap fake) and R1 on the real images; call inside the D tape."""
        real_logits, r1 = discriminator_logits_with_r1(
            source, lambda x: self.discriminator(x, training=True), self.loss_weights_.r1_gamma
        )
        fake_logits = self.discriminator(tf.stop_gradient(swap), training=True)
        return {"d_adv": discriminator_adversarial_loss(real_logits, fake_logits), "r1": r1}

    def train_step(self, data):
        if self.g_optimizer is None:
            raise RuntimeError("SwapTrainer.compile(g_optimizer, d_optimizer) must be called before training")
        target = tf.cast(data["target"], tf.float32)
        source = tf.cast(data["source"], tf.float32)
        same = tf.cast(data["same"], tf.float32)
        teacher = tf.cast(data["teacher"], tf.float32) if "teacher" in data else None
        if self.source_warp and "warped" not in data:
            raise ValueError("a source_warp generator reads each pair's warped source: train it on `clipswap pairs` "
                             "data made by this version")
        # What G reads as its source image: the source, or the source warped onto the target (source_warp).
        g_source = tf.cast(data["warped"], tf.float32) if self.source_warp else source
        replicas = tf.cast(tf.distribute.get_strategy().num_replicas_in_sync, tf.float32)
        seed = self.augmentation_seed()

        src_out = {k: tf.stop_gradient(v) for k, v in self.identity(source).items()}
        tgt_out = {k: tf.stop_gradient(v) for k, v in self.identity(target).items()}
        # CLIP(source) once: it is both part of G's identity input and the contrastive loss's reference.
        source_clip = self.clip_embedding(source)
        identity_in = self.identity_input(source, src_out, source_clip)

        with tf.GradientTape() as g_tape:
            swap, terms = self.generator_terms(target, source_clip, same, src_out, tgt_out, identity_in, seed,
                                               teacher, g_source)
            g_total, g_named = generator_loss(terms, self.loss_weights_)
            g_total = g_total + self._id_warmup_extra(terms["id"])
            g_scaled = self.g_optimizer.scale_loss(g_total / replicas)
        with tf.GradientTape() as d_tape:
            d_total, d_named = discriminator_loss(self.discriminator_terms(source, swap))
            d_scaled = self.d_optimizer.scale_loss(d_total / replicas)

        g_vars = self.generator.trainable_variables
        d_vars = self.discriminator.trainable_variables
        g_grads = g_tape.gradient(g_scaled, g_vars)
        d_grads = d_tape.gradient(d_scaled, d_vars)
        self.g_optimizer.apply(g_grads, g_vars)
        self.d_optimizer.apply(d_grads, d_vars)
        self.step_counter.assign_add(1)

        values = {**{term: g_named[term] for term in self.g_terms}, "g_total": g_total, **d_named}
        for term, tracker in self.trackers.items():
            tracker.update_state(values[term])
        results = {term: tracker.result() for term, tracker in self.trackers.items()}
        if isinstance(tf.distribute.get_strategy(), tf.distribute.MultiWorkerMirroredStrategy):
            # Keras reduces a multi-worker step's outputs with strategy.reduce("MEAN", v, axis=0), which fails on
            # scalars ("Invalid reduction dimension 0 for input with 0 dimensions"): give each a length-1 axis,
            # which that reduction (the mean over every replica of every worker) removes again.
            results = {term: tf.reshape(value, [1]) for term, value in results.items()}
        return results

    # --- evaluation helpers --------------------------------------------------------------------------------------

    def heldout_inputs(self, source: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """(R(source), G's identity input for source) of a fixed batch. R and CLIP are frozen, so a caller that
        scores the same batch again and again (the held-out callback) computes these once."""
        src = self.identity(source)
        return src[EMBEDDING], self.identity_input(source, src)

    def heldout_swap_embedding(self, target: tf.Tensor, identity_in: tf.Tensor, shift: int = 0,
                               source: tf.Tensor | None = None, control_source: tf.Tensor | None = None
                               ) -> tf.Tensor:
        """R(G(target, identity input `shift` places further on)): shift 0 is the swap asked for; shift 1 gives each
        target the NEXT sample's source identity (the wrong-source control). `source`: the batch's source images,
        rolled with the identity input (a source_image generator reads them); `control_source`: what G reads as its
        source image for the control instead of the rolled `source` (a source_warp generator: the next source's face
        warped onto each target)."""
        if shift:
            identity_in = tf.roll(identity_in, shift=-shift, axis=0)
            if control_source is not None:
                source = control_source
            elif source is not None:
                source = tf.roll(source, shift=-shift, axis=0)
        swap = self.run_generator(target, identity_in, source, training=False)
        return self.identity(swap)[EMBEDDING]

    def heldout_identity_loss(self, target: tf.Tensor, source: tf.Tensor) -> tf.Tensor:
        """Identity loss (eq. 6) of G(target, source) against source on a fixed batch; scalar float32."""
        src, identity_in = self.heldout_inputs(source)
        return identity_loss(src, self.heldout_swap_embedding(target, identity_in, source=source))

    def heldout_wrong_source_loss(self, target: tf.Tensor, source: tf.Tensor) -> tf.Tensor:
        """Control for `heldout_identity_loss`: G is given the NEXT sample's source identity, the loss is still
        measured against each sample's own source. A generator that moves every face toward a generic face lowers
        both; only one that transfers the identity it is given puts the matched loss below this one."""
        src, identity_in = self.heldout_inputs(source)
        return identity_loss(src, self.heldout_swap_embedding(target, identity_in, shift=1, source=source))


def make_optimizer(
    learning_rate: float, beta1: float, beta2: float, decay_rate: float, decay_steps: int, loss_scaling: bool,
    name: str,
) -> keras.optimizers.Optimizer:
    """Adam with an optional continuous exponential decay (FaceDancer), wrapped for fp16 loss scaling when asked."""
    schedule: float | keras.optimizers.schedules.LearningRateSchedule = learning_rate
    if decay_rate < 1.0:
        schedule = keras.optimizers.schedules.ExponentialDecay(learning_rate, decay_steps, decay_rate, staircase=False)
    optimizer = keras.optimizers.Adam(schedule, beta_1=beta1, beta_2=beta2, name=name)
    if loss_scaling:
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer, name=f"{name}_loss_scale")
    return optimizer


def current_learning_rate(optimizer: keras.optimizers.Optimizer) -> float:
    """The learning rate the optimiser applies at its current iteration."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    return float(keras.ops.convert_to_numpy(inner.learning_rate))
