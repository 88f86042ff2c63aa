"""FaceDancer's extra generator losses, for the `facedancer` preset: cycle reconstruction and the IFSR margin loss.

From FaceDancer (Rosberg et al., WACV 2023) and its training code. IFSR (identity-feature similarity regularisation)
lets the swap's ArcFace backbone features drift from the target's only up to a per-layer margin, so pose, expression
and lighting carried there are kept.
"""

from __future__ import annotations

from collections.abc import Mapping

from keras import ops

from clipswap.losses.identity import cosine_similarity

# Layer (Keras ResNet50 name in the ArcFace backbone) -> margin: FaceDancer's measured mean (1 - cos) of each layer
# between faces of the same identity. The loss only acts beyond IFSR_MARGIN_SCALE times the margin.
IFSR_MARGINS: Mapping[str, float] = {
    "conv4_block6_out": 0.121357,
    "conv4_block5_out": 0.128827,
    "conv4_block4_out": 0.117972,
    "conv4_block3_out": 0.109391,
    "conv4_block2_out": 0.097296,
    "conv4_block1_out": 0.089046,
    "conv3_block4_out": 0.044928,
    "conv3_block3_out": 0.048719,
    "conv3_block2_out": 0.047487,
    "conv3_block1_out": 0.047970,
    "conv2_block3_out": 0.035144,
}
IFSR_LAYERS: tuple[str, ...] = tuple(IFSR_MARGINS)
IFSR_MARGIN_SCALE = 1.2


def cycle_loss(cycled, target):
    """mean |G(G(tgt, z_src), z_tgt) - tgt| over every element; images [B, H, W, 3] RGB in [-1, 1]. Scalar in [0, 2]."""
    return ops.mean(ops.abs(ops.cast(cycled, "float32") - ops.cast(target, "float32")))


def ifsr_loss(
    feats_target: Mapping,
    feats_swap: Mapping,
    margins: Mapping[str, float] = IFSR_MARGINS,
    margin_scale: float = IFSR_MARGIN_SCALE,
):
    """sum over layers of max(0, d_l - margin_scale * margin_l), d_l = batch mean of (1 - cos) of flattened maps.

    Args:
        feats_target: layer name -> [B, h, w, c] ArcFace backbone features of the targets ((x + 1) / 2 at 112,
            as SwapTrainer.identity reads them at IFSR_LAYERS).
        feats_swap: the same for the swaps (gradient flows here).
        margins: layer name -> margin; the loss runs over these layers (every one must be in both feature dicts).
        margin_scale: 1.2 in FaceDancer.

    Returns:
        Scalar float32 >= 0 (each layer contributes at most 2).
    """
    missing = sorted(set(margins) - set(feats_target) | set(margins) - set(feats_swap))
    if missing:
        raise KeyError(f"ifsr_loss: no features for layers {missing}; extract them with these layer names")
    loss = ops.zeros((), "float32")
    for layer, margin in margins.items():
        target = feats_target[layer]
        swap = feats_swap[layer]
        flat_target = ops.reshape(ops.cast(target, "float32"), (ops.shape(target)[0], -1))
        flat_swap = ops.reshape(ops.cast(swap, "float32"), (ops.shape(swap)[0], -1))
        distance = ops.mean(1.0 - cosine_similarity(flat_target, flat_swap))
        loss += ops.relu(distance - margin_scale * margin)
    return loss


def cycle_term(step):
    """The cycle row: G run again on the swap with the target's identity, against the target."""
    loss, target = step.loss, step.batch.target
    cycled = loss.run_generator(step.swap, loss.identity_input(target, step.tgt_out), target, training=True)
    return cycle_loss(cycled, target)


def ifsr_term(step):
    """The ifsr row: ifsr_loss over the loss's IFSR layers, the swap's features against the target's."""
    layers = step.loss.ifsr_layers
    reference = {name: ops.stop_gradient(step.tgt_out[name]) for name in layers}
    swapped = {name: step.swap_out[name] for name in layers}
    return ifsr_loss(reference, swapped, {name: IFSR_MARGINS[name] for name in layers})
