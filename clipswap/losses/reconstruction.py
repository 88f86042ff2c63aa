"""Reconstruction loss (ClipSwap paper eq. 7): L1 between target and swap on same-identity pairs only.

When source = target the swap should reproduce the target, so the pixel distance is a direct supervision signal;
for different identities it is meaningless and those samples contribute nothing.
"""

from __future__ import annotations

from keras import ops

# Keeps the average finite when the batch holds no same-identity pair (the loss is then exactly 0). FaceDancer's value.
# It biases the average down by eps / (n_same + eps): 0.1 % with one same pair, less with more.
SAME_PAIR_EPS = 1e-3


def same_pair_average(per_sample, same_mask, eps: float = SAME_PAIR_EPS):
    """sum_i(flag_i * x_i) / (sum_i flag_i + eps): the mean of a per-sample loss over same-identity samples.

    Args:
        per_sample: [B] float loss per sample.
        same_mask: [B] bool or {0, 1} numbers; 1 where source and target are the same image/identity.
        eps: see SAME_PAIR_EPS.

    Returns:
        Scalar float32; 0 when no flag is set.
    """
    per_sample = ops.cast(per_sample, "float32")
    flags = ops.reshape(ops.cast(same_mask, "float32"), (-1,))
    return ops.sum(flags * per_sample) / (ops.sum(flags) + eps)


def reconstruction_loss(target, swap, same_mask, eps: float = SAME_PAIR_EPS, facedancer_clip: bool = False):
    """Paper eq. 7: per-sample mean |X_tgt - X_swap|, averaged over same-identity samples.

    The paper leaves the norm open; we use L1 (mean absolute difference over H, W, C) as FaceDancer does.

    Args:
        target: [B, H, W, 3] target images, RGB in [-1, 1].
        swap: [B, H, W, 3] generated swaps, RGB in [-1, 1] (gradient flows here).
        same_mask: [B] bool/{0, 1}: which samples are same-identity pairs.
        eps: denominator guard, see SAME_PAIR_EPS.
        facedancer_clip: apply FaceDancer's post-processing: clip to [0, 100], halve, clip to [0, 5]
            (FaceDancer's training code). With [-1, 1] images the mean L1 is at most 2, so this only halves the value.

    Returns:
        Scalar float32 in [0, 2] (in [0, 1] with facedancer_clip); 0 when no sample is a same pair.
    """
    target = ops.cast(target, "float32")
    swap = ops.cast(swap, "float32")
    if ops.ndim(target) != 4 or ops.ndim(swap) != 4:
        raise ValueError(f"reconstruction_loss expects [B, H, W, C] images, got {target.shape} and {swap.shape}")
    per_sample = ops.mean(ops.abs(target - swap), axis=(1, 2, 3))
    loss = same_pair_average(per_sample, same_mask, eps)
    if facedancer_clip:
        loss = ops.clip(0.5 * ops.clip(loss, 0.0, 100.0), 0.0, 5.0)
    return loss


def head_turn_68(points):
    """[B] float32 signed left-right head turn of faces from their 68 landmarks [B, 68, 2] (any one unit): the nose
    tip's (point 30) offset from the midpoint of the two eye centres (means of points 36-41 and 42-47) along the
    line through them, in eye distances. About 0 for a frontal face; the same measure as
    clipswap.face.align.head_turn on five points."""
    points = ops.cast(points, "float32")
    left = ops.mean(points[:, 36:42], axis=1)
    right = ops.mean(points[:, 42:48], axis=1)
    eyes = right - left
    offset = points[:, 30] - 0.5 * (left + right)
    return ops.sum(offset * eyes, axis=-1) / ops.maximum(ops.sum(ops.square(eyes), axis=-1), 1e-12)


def teacher_kept(same, target_68, source_68, gap: float):
    """[B] float32: 0 for each cross-identity pair whose source's head_turn_68 differs from its target's by more
    than `gap` (LossOptions.teacher_turn_gap), else 1. The teacher terms leave the face of a 0 pair out: the
    landmark swap of a face turned far from its target is ghosted and carries the source's pose. Same-identity
    pairs are always kept (their teacher is the target)."""
    gap_of = ops.abs(head_turn_68(source_68) - head_turn_68(target_68))
    far = ops.logical_and(gap_of > gap, ops.cast(same, "float32") < 0.5)
    return 1.0 - ops.cast(far, "float32")


def teacher_region(teacher, target):
    """[B, H, W, 1] float32: 1 where the teacher [B, H, W, 3] differs from its target (the landmark swap's face), 0
    where it is the target's own pixel. 1/255 in [-1, 1] units is 2/255: below that a pixel is the target's (both
    went through the same jitter)."""
    difference = ops.abs(ops.cast(teacher, "float32") - ops.cast(target, "float32"))
    return ops.cast(ops.max(difference, axis=-1, keepdims=True) > 1.0 / 255.0, "float32")


def teacher_loss(teacher, swap, target=None, background: bool = False, kept=None):
    """Mean |X_teacher - X_swap| (ours; the demo recipe): over the whole batch, or, with `target`, over the face
    region only (the pixels where the teacher differs from the target).

    The teacher of a cross-identity pair is the classical landmark swap of its source onto its target
    (clipswap.face.landmark_swap); of a same-identity pair it is the target itself, where this equals eq. 7. It gives
    the identity path a dense, per-pixel target instead of only the gradient through the identity encoder.

    Over the whole image the target's own pixels dominate (measured: a copy of the target already scores 0.07 of a
    possible 2 while the face is untouched), so a generator that copies the target is barely penalised; over the
    face region alone the copy pays in full. Same-identity samples (teacher = target) have no face region and are
    left out of that average (eq. 7 covers them).

    Args:
        teacher: [B, H, W, 3] RGB in [-1, 1].
        swap: [B, H, W, 3] RGB in [-1, 1] (gradient flows here).
        target: [B, H, W, 3] the targets the teachers were made on, or None (whole-image average).
        background: with `target`, add the mean over the pixels outside each sample's face region (every sample,
            same-identity ones included), each region averaged on its own: the face pays in full and the rest of
            the crop (background, hair) stays the target's.
        kept: with `target`, [B] 1 for the samples whose face region counts, 0 for those left out (teacher_kept);
            None: all. The part outside the face region counts for every sample.

    Returns:
        Scalar float32 in [0, 2] ([0, 4] with `background`); the face part is 0 when no sample has a face region.
    """
    teacher = ops.cast(teacher, "float32")
    swap = ops.cast(swap, "float32")
    if ops.ndim(teacher) != 4 or ops.ndim(swap) != 4:
        raise ValueError(f"teacher_loss expects [B, H, W, C] images, got {teacher.shape} and {swap.shape}")
    if target is None:
        return ops.mean(ops.abs(teacher - swap))
    region = teacher_region(teacher, target)
    area = ops.sum(region, axis=(1, 2, 3))
    per_sample = ops.sum(region * ops.abs(teacher - swap), axis=(1, 2, 3)) / ops.maximum(3.0 * area, 1.0)
    has_face = ops.cast(area > 0, "float32")
    if kept is not None:
        has_face = has_face * ops.cast(kept, "float32")
    face = ops.sum(per_sample * has_face) / ops.maximum(ops.sum(has_face), 1.0)
    if not background:
        return face
    outside = 1.0 - region
    rest = ops.sum(outside * ops.abs(teacher - swap), axis=(1, 2, 3)) / ops.maximum(
        3.0 * ops.sum(outside, axis=(1, 2, 3)), 1.0)
    return face + ops.mean(rest)


def reconstruction_term(step, facedancer_rec_clip: bool = False):
    """The rec row: eq. 7 between the swap and the target on the batch's same-identity pairs."""
    return reconstruction_loss(step.batch.target, step.swap, step.batch.same, facedancer_clip=facedancer_rec_clip)


def teacher_term(step, teacher_face_only: bool = False, teacher_background: bool = False):
    """The teacher row: teacher_loss of the swap against the batch's landmark-swap teacher images, over the face
    region only with `teacher_face_only`, face and background averaged apart with `teacher_background`.

    Raises:
        ValueError: the batch carries no teacher images.
    """
    batch = step.batch
    if batch.teacher is None:
        raise ValueError("weights.teacher > 0 needs batches with teacher images (data made by clipswap pairs)")
    if batch.teacher_kept is not None and not teacher_face_only:
        raise ValueError("loss.teacher_turn_gap leaves faces out of the teacher term's face region: it needs "
                         "loss.teacher_face_only")
    return teacher_loss(batch.teacher, step.swap, batch.target if teacher_face_only else None,
                        background=teacher_background, kept=batch.teacher_kept)
