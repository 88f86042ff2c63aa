"""SwapLoss: the training objective as one object that owns the generator pass and the discriminator pass and reports
every term by name (the shape of stylegan3's training/loss.py). It holds no optimiser: SwapTrainer
(clipswap.training.trainer) runs both passes under its gradient tapes and applies the updates.

G pass on a batch (SwapBatch: images [B, S, S, 3] RGB in [-1, 1], same [B] in {0, 1}):

    z_src, z_tgt = R(source), R(target)                 frozen identity encoder (ArcFace-R50 or SFace), no gradient
    c_src        = CLIP(source)                         when CLIP is on: appended to the identity input (paper z_id)
    swap         = G(target, [z_src, c_src])               G(teacher, ...) for a pre_swap generator (below);
                                                        G(target, ..., source) for a source_image generator
                                                        G(target, ..., warped) for a source_warp one
    terms        = the active rows of the loss-term table (clipswap.losses.terms: id eq. 6, rec eq. 7, perceptual
                   eq. 8, contra eqs. 2-5, att eq. 9, adv; FaceDancer's cycle and IFSR; the teacher and flow
                   terms), each computed by calling the row's function on the pass (GeneratorForward) with the
                   row's options
    g_total      = sum_k weight_k * term_k (clipswap.losses.composite.generator_loss) + the identity warm-up

D pass on the same batch and the swap (no gradient to G):

    real_logits, r1 = D(real), R1 (gamma r1_gamma) of that pass   real: the source; for a paired D
                                                        (models.discriminator) [target, another photo of its person],
                                                        counted only where the person has one
    fake_logits  = D(swap)                              a paired D: [swap, source]
    terms        = every discriminator row of the table (d_adv: the logistic loss; r1), each computed by calling the
                   row's function on the pass (DiscriminatorForward) with the row's options
    d_total      = sum_k term_k (clipswap.losses.composite.discriminator_loss; the rows enter unweighted)

G's adversarial term scores what D reads as fake ([swap, source] for a paired D).

A generator whose config has pre_swap="landmarks" reads the landmark swap of the source onto the target instead of
the target (what the swap pipeline feeds it): in training that is the batch's teacher image (`clipswap pairs` data;
on same-identity pairs the teacher is the target itself), so its batches must carry teachers.

Randomness (the CLIP augmentations, the identity augmentation) is stateless, seeded by [seed, global step * replicas
+ replica id]: a resumed run draws exactly what the uninterrupted run would have. The only state is the CLIP mean
EMA of the contrastive loss (`clip_mean`, checkpointed with the run).

Backends: the passes are keras.ops maths over Keras models, so the same object drives the TensorFlow step
(clipswap.training.trainer, under gradient tapes) and the JAX step (clipswap.training.jax_step, traced inside
jax.value_and_grad with the variables mapped by a keras.StatelessScope). What differs by backend -- the R1 double
backprop, the seeded draws and the CLIP mean's variables -- comes from `backend_parts()`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import keras
from keras import ops

from clipswap.layers.flow_warp import FlowWarp, ThinPlateFlow
from clipswap.layers.shape_transfer import shape_transfer_layer
from clipswap.losses.composite import LossWeights, discriminator_loss, generator_loss
from clipswap.losses.identity import EMBEDDING, identity_loss
from clipswap.losses.reconstruction import teacher_kept, teacher_region
from clipswap.losses.terms import (
    NETWORKS,
    OPTIONAL_BATCH,
    TERMS,
    TOTALS,
    LossTerm,
    active_generator_terms,
    check_table,
    metric_names,
    term_options,
)
from clipswap.models.conditioning import Conditioning
from clipswap.models.generator import generator_inputs
from clipswap.training.features import FeatureSource, IdentityNetwork

#: What the passes read and return: the backend's tensors (Tensor, jax.Array).
Tensor = object


def backend_parts():
    """The backend's own parts of the losses (R1, the seeded draws, the CLIP mean's state, the step's seed):
    clipswap.losses.tf_only on TensorFlow, clipswap.losses.jax_only on JAX.

    Raises:
        ValueError: another Keras backend (PyTorch has no training step here).
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        from clipswap.losses import tf_only

        return tf_only
    if backend == "jax":
        from clipswap.losses import jax_only

        return jax_only
    raise ValueError(f"training runs on Keras' TensorFlow or JAX backend, not {backend!r}")


def pre_swap_input(pre_swap: str | None, target: Tensor, teacher: Tensor | None) -> Tensor:
    """What G reads as its target: the target, or for a pre_swap generator the teacher (the landmark swap).

    Raises:
        ValueError: a pre_swap generator and no teacher images.
    """
    if pre_swap is None:
        return target
    if teacher is None:
        raise ValueError(
            f"a generator with pre_swap={pre_swap!r} reads the landmark swap of each pair: train it on "
            "`clipswap pairs` data, whose batches carry it as the teacher image"
        )
    return teacher


@dataclass(frozen=True)
class SwapBatch:
    """One training batch as the loss reads it, float32.

    Attributes:
        target, source: [B, S, S, 3] RGB in [-1, 1].
        same: [B], 1 where the source shows the target's identity (the reconstruction pairs), else 0.
        teacher: [B, S, S, 3] the landmark swap of each pair (`clipswap pairs` data), or None.
        generator_source: what G reads as its source image: the source, or the batch's "drawn_source" (the source
            with drawn glasses: AugmentationConfig.source_glasses) where it has one, or for a source_warp generator
            the source's face warped onto the target's landmarks. The identity terms read `source`.
        mate, has_mate: another photo of the target's person [B, S, S, 3] and [B] 1 where there is one (a paired
            discriminator's real pairs), or None.
        warped: the pair's landmark warp of the source onto the target (`clipswap pairs` data), which the flow term
            compares a source_flow generator's own warp with; None when that term is off.
        target_68, source_68: [B, 68, 2] the target's and the source's landmarks as fractions of the crop side
            (pairs data made with them), which the flow term also reads; None when it is off.
        teacher_kept: [B] 1 where the teacher terms count the pair's face, 0 where its source is turned too far
            from its target (LossOptions.teacher_turn_gap; reconstruction.teacher_kept); None: every pair.
    """

    target: Tensor
    source: Tensor
    same: Tensor
    teacher: Tensor | None
    generator_source: Tensor
    mate: Tensor | None = None
    has_mate: Tensor | None = None
    warped: Tensor | None = None
    target_68: Tensor | None = None
    source_68: Tensor | None = None
    teacher_kept: Tensor | None = None


@dataclass(frozen=True)
class GeneratorForward:
    """What the G pass computes once and every generator term reads (the `step` a row's function is called with).

    Attributes:
        loss: the SwapLoss running the pass (its networks and helpers).
        batch: the batch.
        seed: [2] int64 stateless seed of this step and replica.
        swap: G's output [B, S, S, 3] float32.
        swap_out: R(swap) (IdentityNetwork outputs: tapped stages and the embedding).
        src_out, tgt_out: R(source), R(target), no gradient.
        source_clip: CLIP(source) [B, Dc] float32, no gradient; None without CLIP.
    """

    loss: SwapLoss
    batch: SwapBatch
    seed: Tensor
    swap: Tensor
    swap_out: dict[str, Tensor]
    src_out: dict[str, Tensor]
    tgt_out: dict[str, Tensor]
    source_clip: Tensor | None


@dataclass(frozen=True)
class DiscriminatorForward:
    """What the D pass computes once and every discriminator term reads (the `step` a D row's function is called
    with). R1 comes with the real logits: it differentiates that very call of D with respect to its input, so a term
    computing it apart would run D on the real images twice.

    Attributes:
        loss: the SwapLoss running the pass (its networks and helpers).
        batch: the batch.
        swap: G's output [B, S, S, 3] float32, no gradient.
        real: what D reads as real: the source [B, S, S, 3], or for a paired D [target, mate] [B, S, S, 6].
        real_weights: [B] 1 where a real input counts (a paired D's samples with a mate), or None (all count).
        real_logits: D(real) in training mode [B, ...] (a patch D has several logits an image).
        fake_logits: D in training mode of the swap as D reads it (discriminator_input) [B, ...].
        r1: the R1 penalty of `real_logits`, scalar float32, gamma (weights.r1_gamma) applied.
    """

    loss: SwapLoss
    batch: SwapBatch
    swap: Tensor
    real: Tensor
    real_weights: Tensor | None
    real_logits: Tensor
    fake_logits: Tensor
    r1: Tensor


class LossPass(NamedTuple):
    """One side's result: its total (scalar float32, what the gradient is taken of), every reported figure by name
    (the side's active terms and its total, "g_total" or "d_total"), and for the G pass the swap."""

    total: Tensor
    terms: dict[str, Tensor]
    swap: Tensor | None = None


class SwapLoss:
    """The G and D passes of a training step over G, D and the frozen encoders.

    Args:
        generator: clipswap.models.generator.Generator (trained by the caller).
        discriminator: clipswap.models.discriminator.Discriminator (trained by the caller).
        identity: IdentityNetwork over the frozen identity encoder R (its embedding feeds G and the id loss).
        weights: LossWeights; a term whose weight is 0 is not computed at all (except the table's `always` terms:
            id, rec and adv, always reported).
        clip_encoder: frozen CLIP image encoder ([B, S, S, 3] in [-1, 1] -> [B, Dc]) or None. When given its
            embedding of the source is appended to G's identity input.
        perceptual, attribute: FeatureSource of eq. 8 / eq. 9 (required when the weight is non-zero).
        ifsr_layers: identity-encoder layers of the IFSR loss (ArcFace names, IFSR_MARGINS keys).
        id_warmup: (steps, weight): the identity term's weight is `weight` instead of weights.id while the global
            step is below `steps` (0 steps = off); the reported terms are unchanged, only g_total differs.
        seed: run seed (the augmentation draws are derived from it and the step).
        terms: the loss-term table whose rows this loss computes (clipswap.losses.terms.TERMS).
        **options: the rows' options by name (LossTerm.options: the CLIP augmentations n_aug, aug_distortion,
            aug_crop_fraction; facedancer_rec_clip; id_augment; teacher_face_only, teacher_background;
            perceptual_to_teacher); each left out takes its row's default, and a name no row has is an error.

    Create it under the distribution strategy's scope (the CLIP mean's variables).
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
        id_warmup: tuple[int, float] = (0, 0.0),
        teacher_turn_gap: float = 0.0,
        seed: int = 0,
        terms: Sequence[LossTerm] = TERMS,
        **options: Any,
    ):
        self.terms = check_table(tuple(terms))
        self.generator = generator
        self.discriminator = discriminator
        self.identity = identity
        self.weights = weights
        self.clip_encoder = clip_encoder
        self.perceptual = perceptual
        self.attribute = attribute
        self.ifsr_layers = tuple(ifsr_layers)
        self.id_warmup = (int(id_warmup[0]), float(id_warmup[1]))
        #: LossOptions.teacher_turn_gap (read_batch; 0: off).
        self.teacher_turn_gap = float(teacher_turn_gap)
        self.seed = int(seed)
        #: The generator terms this loss computes (the table's order), and every figure a step reports.
        self.generator_terms = active_generator_terms(weights, self.terms)
        #: The discriminator terms: every D row of the table, computed whatever the weights.
        self.discriminator_terms = tuple(term.name for term in self.terms if term.side == "D")
        self.metric_names = metric_names(weights, self.terms)
        active = [
            term for term in self.terms if term.name in self.generator_terms or term.name in self.discriminator_terms
        ]
        self._check_networks(active)
        #: Every row's options: the given values (cast to the type of the row's default), else the defaults.
        self.options = _read_options(self.terms, options)
        #: Term name -> its row's function with its row's options bound: called with its side's pass
        #: (GeneratorForward, DiscriminatorForward).
        self.term_functions: dict[str, Callable[..., Tensor]] = {
            term.name: functools.partial(term.resolve(), **{k: self.options[k] for k in term.options})
            for term in active
        }
        #: A keypoint-flow generator's shape transfer (ModelConfig.keypoint_shape), which also moves its teacher
        #: (read_batch) along the generator's own spline; None without one.
        self.shape = shape_transfer_layer(generator)
        if self.shape is not None:
            self._teacher_spline = next(layer for layer in generator.layers if isinstance(layer, ThinPlateFlow))
            self._teacher_warp = FlowWarp()
        #: The optional batch entries (OPTIONAL_BATCH) an active term reads, by the first term that reads each.
        self.batch_needs: dict[str, str] = {}
        for term in active:
            for key in term.needs:
                if key in OPTIONAL_BATCH:
                    self.batch_needs.setdefault(key, term.name)

        for frozen in (identity.model, clip_encoder):
            if frozen is not None:
                frozen.trainable = False
        #: The backend's R1, seeded draws and CLIP-mean state (backend_parts).
        self.parts = backend_parts()
        dim = clip_encoder.output.shape[-1] if clip_encoder is not None else None
        self.clip_mean = self.parts.ClipMeanTracker(dim) if dim is not None else None

    def _check_networks(self, active: Sequence[LossTerm]) -> None:
        """Refuse an active term whose network (LossTerm.needs, NETWORKS) this loss was built without.

        Raises:
            ValueError: one sentence naming the term's weight and what is missing.
        """
        present = {
            "perceptual": self.perceptual is not None,
            "attribute": self.attribute is not None,
            "ifsr_layers": bool(self.ifsr_layers),
            "clip": self.clip_encoder is not None,
        }
        for term in active:
            for need in term.needs:
                if need in NETWORKS and not present[need]:
                    what = f"weights.{term.weight} > 0" if term.weight else f"the {term.name} term"
                    raise ValueError(f"{what} needs {NETWORKS[need]}")

    # --- what G reads and runs -----------------------------------------------------------------------------------

    @property
    def conditioning(self) -> Conditioning | None:
        """The generator's conditioning row (ModelConfig.conditioning; None for any model without a clipswap config)."""
        config = getattr(self.generator, "config_", None)
        return config.conditioning_row if config is not None else None

    @property
    def source_warp(self) -> bool:
        """The generator reads the warped source (a "warp" source preparation) as its source image."""
        return bool(self.conditioning and self.conditioning.warped_source)

    @property
    def paired_discriminator(self) -> bool:
        """D reads each image beside a reference image (Discriminator.paired)."""
        return bool(getattr(self.discriminator, "paired", False))

    @property
    def pre_swap(self) -> str | None:
        """ "landmarks" when the generator reads the landmark swap as its target (a "landmark_swap" target
        preparation), else None."""
        return "landmarks" if self.conditioning and self.conditioning.refines_landmark_swap else None

    def read_batch(self, data: Mapping[str, Tensor]) -> SwapBatch:
        """The data pipeline's batch dict {"target", "source", "same"[, "teacher"][, "warped"][, "mate",
        "has_mate"][, "drawn_source"]} as a SwapBatch.

        Raises:
            ValueError: a source_warp generator, or the flow term, and no "warped" images; a paired discriminator
                and no mates.
        """
        source = ops.cast(data["source"], "float32")
        if self.source_warp and "warped" not in data:
            raise ValueError(
                "a source_warp generator reads each pair's warped source: train it on `clipswap pairs` "
                "data made by this version"
            )
        missing = [key for key in self.batch_needs if key not in data]
        if missing:
            term = self.batch_needs[missing[0]]
            raise ValueError(
                f"the {term} term reads each pair's {', '.join(missing)} (its landmarks and landmark "
                "warp): train it on `clipswap pairs` data made by this version"
            )
        optional = {key: ops.cast(data[key], "float32") if key in self.batch_needs else None for key in OPTIONAL_BATCH}
        paired = self.paired_discriminator
        if paired and not ("mate" in data and "has_mate" in data):
            raise ValueError(
                "a paired discriminator takes its real pairs from two photos of one person: train it on "
                "`clipswap pairs` data whose records hold them"
            )
        teacher = ops.cast(data["teacher"], "float32") if "teacher" in data else None
        if teacher is not None and self.shape is not None:
            teacher = self.shaped_teacher(teacher, data)
        kept = None
        if teacher is not None and self.teacher_turn_gap > 0:
            if "target_68" not in data or "source_68" not in data:
                raise ValueError("loss.teacher_turn_gap compares each pair's landmarks: train on `clipswap pairs` "
                                 "data made by this version, with a conditioning that reads them")
            kept = teacher_kept(data["same"], data["target_68"], data["source_68"], self.teacher_turn_gap)
        return SwapBatch(
            target=ops.cast(data["target"], "float32"),
            source=source,
            same=ops.cast(data["same"], "float32"),
            teacher=teacher,
            teacher_kept=kept,
            generator_source=ops.cast(data["warped"] if self.source_warp else data.get("drawn_source", source),
                                      "float32"),
            mate=ops.cast(data["mate"], "float32") if paired else None,
            has_mate=ops.cast(data["has_mate"], "float32") if paired else None,
            **optional,
        )

    def shaped_teacher(self, teacher: Tensor, data: Mapping[str, Tensor]) -> Tensor:
        """The teacher a shape generator is held to: the landmark swap puts the source's face on the target's 68
        points, where the swap's face is meant to sit at those points moved by G's own shape transfer; the teacher's
        face is warped there along the thin-plate spline from the moved points to the target's (each pair's stored
        landmarks), with no gradient. Only the face moves: the spline's affine part would shift the background too,
        so outside the moved face region (teacher_region, warped along the same spline) the teacher stays the
        target's. Reconstruction pairs keep theirs, the target itself.

        Args:
            teacher: [B, S, S, 3] float32, RGB in [-1, 1].
            data: the batch dict, with "target", "same" and the landmarks "target_68" and "source_68" ([B, 68, 2],
                fractions of the crop side).

        Raises:
            ValueError: the batch carries no landmarks.
        """
        if "target_68" not in data or "source_68" not in data:
            raise ValueError(
                "a generator with a shape transfer (model.keypoint_shape) moves its teacher along each pair's "
                "landmarks: train it on `clipswap pairs` data made by this version"
            )
        target_points = ops.cast(data["target_68"], "float32")
        destination = self.shape([target_points, ops.cast(data["source_68"], "float32")])
        flow = self._teacher_spline([destination, target_points])
        moved = self._teacher_warp([teacher, flow])
        face = self._teacher_warp([teacher_region(teacher, data["target"]), flow])
        moved = face * moved + (1.0 - face) * teacher
        keep = ops.reshape(ops.cast(data["same"], "float32"), (-1, 1, 1, 1))
        return ops.stop_gradient(keep * teacher + (1.0 - keep) * moved)

    def clip_embedding(self, images: Tensor) -> Tensor | None:
        """CLIP(x) as [B, Dc] float32 without gradient, or None when CLIP is off."""
        if self.clip_encoder is None:
            return None
        return ops.stop_gradient(ops.cast(self.clip_encoder(images, training=False), "float32"))

    def identity_input(
        self,
        images: Tensor,
        identity_outputs: dict[str, Tensor] | None = None,
        clip_embedding: Tensor | None = None,
    ) -> Tensor:
        """G's identity input for source images: R(x) (then CLIP(x) when on); no gradient flows back.

        `identity_outputs` / `clip_embedding` reuse R(x) / CLIP(x) already computed for these images.
        """
        if identity_outputs is None:
            identity_outputs = self.identity(images)
        parts = [identity_outputs[EMBEDDING]]
        if self.clip_encoder is not None:
            parts.append(self.clip_embedding(images) if clip_embedding is None else clip_embedding)
        return ops.stop_gradient(ops.concatenate(parts, axis=-1))

    def run_generator(self, target: Tensor, identity_in: Tensor, source: Tensor, training: bool = False) -> Tensor:
        """G on (what it reads as its target, identity input, and the source crops when the generator reads them:
        ModelConfig.source_image): [B, S, S, 3] float32."""
        config = getattr(self.generator, "config_", None)
        inputs = generator_inputs(config, target, identity_in, source) if config else [target, identity_in]
        return ops.cast(self.generator(inputs, training=training), "float32")

    def swap(
        self, target: Tensor, source: Tensor, training: bool = False, generator_source: Tensor | None = None
    ) -> Tensor:
        """G(target, identity of source): [B, S, S, 3] float32, linear output read as [-1, 1]. `generator_source`:
        what G reads as its source image when that is not `source` itself (a source_warp generator's warps)."""
        return self.run_generator(
            target,
            self.identity_input(source),
            source if generator_source is None else generator_source,
            training=training,
        )

    def generator_input(self, target: Tensor, teacher: Tensor | None) -> Tensor:
        """What G reads as its target (pre_swap_input)."""
        return pre_swap_input(self.pre_swap, target, teacher)

    def step_seed(self, step: Tensor) -> Tensor:
        """The stateless seed of this global step (integer scalar) and replica ([2] int64 on TensorFlow, a [2]
        uint32 key on JAX)."""
        return self.parts.step_seed(self.seed, step)

    # --- the two passes ------------------------------------------------------------------------------------------

    def generator_pass(self, batch: SwapBatch, step: Tensor) -> LossPass:
        """Run G and every active generator term; call inside G's gradient tape.

        Args:
            batch: the batch (read_batch).
            step: the global step before this update, int64 scalar (the seeds and the identity warm-up read it).

        Returns:
            LossPass(g_total, {active term: raw value, ..., "g_total"}, swap).
        """
        seed = self.step_seed(step)
        src_out = {k: ops.stop_gradient(v) for k, v in self.identity(batch.source).items()}
        tgt_out = {k: ops.stop_gradient(v) for k, v in self.identity(batch.target).items()}
        # CLIP(source) once: it is both part of G's identity input and the contrastive loss's reference.
        source_clip = self.clip_embedding(batch.source)
        identity_in = self.identity_input(batch.source, src_out, source_clip)
        swap = self.run_generator(
            self.generator_input(batch.target, batch.teacher), identity_in, batch.generator_source, training=True
        )
        forward = GeneratorForward(self, batch, seed, swap, self.identity(swap), src_out, tgt_out, source_clip)
        raw = {name: self.term_functions[name](forward) for name in self.generator_terms}
        total, named = generator_loss(raw, self.weights, self.terms)
        total = total + self._id_warmup_extra(raw["id"], step)
        return LossPass(total, {**{name: named[name] for name in self.generator_terms}, TOTALS["G"]: total}, swap)

    def discriminator_input(self, images: Tensor, batch: SwapBatch) -> Tensor:
        """What D reads for swaps (or G's other outputs) of `batch`: the images, or for a paired D each beside its
        source crop (the fake pairs)."""
        return ops.concatenate([images, batch.source], axis=-1) if self.paired_discriminator else images

    def discriminator_pass(self, batch: SwapBatch, swap: Tensor) -> LossPass:
        """Run D on the real inputs (with R1) and on the swap, then every discriminator term; call inside D's
        gradient tape. Real: the source; a paired D: [target, mate] where there is a mate, and [swap, source] fake.

        Returns:
            LossPass(d_total, {"d_adv", "r1", any other D row, "d_total"}).
        """
        d_train = functools.partial(self.discriminator, training=True)
        if self.paired_discriminator:
            real, weights = ops.concatenate([batch.target, batch.mate], axis=-1), batch.has_mate
        else:
            real, weights = batch.source, None
        real_logits, r1 = self.parts.discriminator_logits_with_r1(real, d_train, self.weights.r1_gamma, weights)
        swap = ops.stop_gradient(swap)
        fake_logits = d_train(self.discriminator_input(swap, batch))
        forward = DiscriminatorForward(self, batch, swap, real, weights, real_logits, fake_logits, r1)
        raw = {name: self.term_functions[name](forward) for name in self.discriminator_terms}
        return LossPass(*discriminator_loss(raw, self.terms))

    def _id_warmup_extra(self, id_term: Tensor, step: Tensor) -> Tensor:
        """(warm-up weight - weights.id) * id term while the step is below the warm-up's end, else 0."""
        steps, weight = self.id_warmup
        if steps <= 0:
            return ops.convert_to_tensor(0.0, "float32")
        active = ops.cast(ops.less(step, steps), "float32")
        return active * (weight - self.weights.id) * ops.cast(id_term, "float32")

    # --- a fixed batch (the held-out callback) -------------------------------------------------------------------

    def heldout_inputs(self, source: Tensor) -> tuple[Tensor, Tensor]:
        """(R(source), G's identity input for source) of a fixed batch. R and CLIP are frozen, so a caller that
        scores the same batch again and again (the held-out callback) computes these once."""
        src = self.identity(source)
        return src[EMBEDDING], self.identity_input(source, src)

    def heldout_swap_embedding(
        self,
        target: Tensor,
        identity_in: Tensor,
        shift: int = 0,
        source: Tensor | None = None,
        control_source: Tensor | None = None,
    ) -> Tensor:
        """R(G(target, identity input `shift` places further on)): shift 0 is the swap asked for; shift 1 gives each
        target the NEXT sample's source identity (the wrong-source control). `source`: the batch's source images,
        rolled with the identity input (a source_image generator reads them); `control_source`: what G reads as its
        source image for the control instead of the rolled `source` (a source_warp generator: the next source's face
        warped onto each target)."""
        if shift:
            identity_in = ops.roll(identity_in, shift=-shift, axis=0)
            if control_source is not None:
                source = control_source
            elif source is not None:
                source = ops.roll(source, shift=-shift, axis=0)
        swap = self.run_generator(target, identity_in, source, training=False)
        return self.identity(swap)[EMBEDDING]

    def heldout_identity_loss(self, target: Tensor, source: Tensor) -> Tensor:
        """Identity loss (eq. 6) of G(target, source) against source on a fixed batch; scalar float32."""
        src, identity_in = self.heldout_inputs(source)
        return identity_loss(src, self.heldout_swap_embedding(target, identity_in, source=source))

    def heldout_wrong_source_loss(self, target: Tensor, source: Tensor) -> Tensor:
        """Control for `heldout_identity_loss`: G is given the NEXT sample's source identity, the loss is still
        measured against each sample's own source. A generator that moves every face toward a generic face lowers
        both; only one that transfers the identity it is given puts the matched loss below this one."""
        src, identity_in = self.heldout_inputs(source)
        return identity_loss(src, self.heldout_swap_embedding(target, identity_in, shift=1, source=source))


def _read_options(terms: Sequence[LossTerm], given: Mapping[str, Any]) -> dict[str, Any]:
    """Every option of the rows: `given`'s value cast to the type of the row's default (a bool stays a bool, 4.0
    becomes 4), else the default.

    Raises:
        TypeError: a name no row of the table has (a typo would otherwise be silently ignored).
    """
    defaults = term_options(tuple(terms))
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise TypeError(f"SwapLoss got options no loss term takes: {unknown}; the terms' options: {sorted(defaults)}")
    return {name: type(default)(given[name]) if name in given else default for name, default in defaults.items()}
