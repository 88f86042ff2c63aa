"""The flow term (ours): a source_flow generator's learned warp of the source against each training pair's landmarks
(the flow at each target landmark must point at the source's same landmark) and its landmark warp (the `warped` image
of `clipswap pairs` records), which teaches the warp a dense correspondence between two faces without landmarks at
swap time."""

from __future__ import annotations

from keras import ops

from clipswap.layers.flow_warp import bilinear_sample
from clipswap.models.generator import FLOW_UNIT

#: Resolutions compared: full, 1/2 and 1/4 (average pooling). The coarse ones see displacements of several pixels,
#: which a bilinear warp's gradient at full resolution (one pixel wide) does not.
FLOW_SCALES = 3
#: Below this difference (in [-1, 1] units, about one grey level) a pixel of the landmark warp is the target's own:
#: warp_paste pastes the warped face into the target with a hard edge.
REGION_THRESHOLD = 1.0 / 255.0


def _pool(x):
    return ops.average_pool(x, 2, strides=2, padding="valid")


def _normalised(x, region, area):
    """x with each channel's mean and standard deviation over `region` removed, per sample."""
    mean = ops.sum(region * x, axis=(1, 2), keepdims=True) / area
    variance = ops.sum(region * ops.square(x - mean), axis=(1, 2), keepdims=True) / area
    return (x - mean) / ops.sqrt(variance + 1e-4)


def flow_loss(predicted, warped, target, scales: int = FLOW_SCALES):
    """Mean over `scales` resolutions of the L1 distance between the learned warp and the landmark warp inside the
    pasted region, each side normalised per channel over that region (both are colour-matched to the target, by
    different rules, so only their structure is compared).

    Args:
        predicted: [B, S, S, 3] the generator's warp of the source (Generator.flow_warp; gradient flows here).
        warped: [B, S, S, 3] the pair's landmark warp of the same source pasted into the target (RGB in [-1, 1]).
        target: [B, S, S, 3] the target it was pasted into; where `warped` equals it is outside the region.
        scales: resolutions, each half the last.

    Returns:
        Scalar float32 >= 0, averaged over the samples that have a region (0 when none has: same-identity pairs
        of one photo, whose warp is the target itself).
    """
    predicted = ops.cast(predicted, "float32")
    warped = ops.cast(warped, "float32")
    target = ops.cast(target, "float32")
    if ops.ndim(predicted) != 4 or ops.ndim(warped) != 4 or ops.ndim(target) != 4:
        raise ValueError(f"flow_loss expects [B, H, W, C] images, got {predicted.shape}, {warped.shape} and "
                         f"{target.shape}")
    region = ops.cast(ops.max(ops.abs(warped - target), axis=-1, keepdims=True) > REGION_THRESHOLD, "float32")
    has_region = ops.cast(ops.sum(region, axis=(1, 2, 3)) > 0, "float32")
    total = ops.convert_to_tensor(0.0, "float32")
    for scale in range(scales):
        if scale:
            covered = _pool(region)
            predicted = _pool(region * predicted) / ops.maximum(covered, 1e-6)
            warped = _pool(region * warped) / ops.maximum(covered, 1e-6)
            region = ops.cast(covered > 0.5, "float32")
        area = ops.maximum(ops.sum(region, axis=(1, 2), keepdims=True), 1.0)
        difference = ops.abs(_normalised(predicted, region, area) - _normalised(warped, region, area))
        per_sample = ops.sum(region * difference, axis=(1, 2, 3)) / ops.reshape(3.0 * area, (-1,))
        total = total + ops.sum(per_sample * has_region) / ops.maximum(ops.sum(has_region), 1.0)
    return total / scales


def sample_points(field, points):
    """Bilinear samples of `field` [B, H, W, C] at `points` [B, N, 2] (x, y in pixels, clamped to the field):
    [B, N, C] float32; the gradient reaches the field."""
    return bilinear_sample(field, points[..., 0], points[..., 1])


def landmark_flow_loss(flow, target_points, source_points, unit: float):
    """Mean L1 distance, in `unit` pixels, between the flow at each target landmark and the displacement to the
    same landmark of the source (FlowWarp reads source[p + flow(p)], so flow(p_target) should be p_source -
    p_target).

    Args:
        flow: [B, S, S, 2] in pixels (gradient flows here).
        target_points, source_points: [B, 68, 2] the landmarks as fractions of the crop side (pairs records).
        unit: the pixels one unit of the result stands for (the flow network's output unit).

    Returns:
        Scalar float32 >= 0.
    """
    size = flow.shape[1]
    target_pixels = ops.cast(target_points, "float32") * size
    wanted = (ops.cast(source_points, "float32") - ops.cast(target_points, "float32")) * size
    return ops.mean(ops.abs(sample_points(flow, target_pixels) - wanted)) / unit


def flow_term(predicted, flow, warped, target, target_points, source_points, unit: float):
    """The flow term as training adds it: landmark_flow_loss of the flow plus flow_loss of its warp (one place for
    the training loss and tools/pretrain_flow.py)."""
    return landmark_flow_loss(flow, target_points, source_points, unit) + flow_loss(predicted, warped, target)


def generator_flow_term(step):
    """The flow row: flow_term of a source_flow generator's own warp of the source onto the target, against the
    batch's landmarks and landmark warp.

    Raises:
        ValueError: the generator has no learned flow (its conditioning's source is not "flow").
    """
    generator, batch = step.loss.generator, step.batch
    if not (step.loss.conditioning and step.loss.conditioning.learned_flow):
        raise ValueError("weights.flow > 0 trains a source_flow generator's warp: this generator has none")
    predicted, flow = generator.flow_warp(batch.target, batch.source)
    unit = generator.config_.image_size * FLOW_UNIT
    return flow_term(predicted, flow, batch.warped, batch.target, batch.target_68, batch.source_68, unit)
