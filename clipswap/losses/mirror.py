"""Mirror consistency (ours): a swap must not depend on which way the source's face is turned.

A generator that reads the source's crop can carry the source's head turn and expression into the swap, drawn as
pixels where its warp puts them (the ghosted features of a source turned away from its target). The mirror image of
a source shows the same person turned the other way, so the swap of the mirror image should be the same picture:
L1 between G(target, identity of source, source crop) and G(target, the same identity, the crop mirrored left to
right). What differs between the two runs is the source's pose and its left-right asymmetry, never its identity, so
the term asks G to take from the crop what both sides share.
"""

from __future__ import annotations

from keras import ops

from clipswap.losses.facedancer import cycle_loss


def mirror_consistency_loss(swap, mirrored_swap):
    """mean |swap - mirrored_swap| over every element: [B, H, W, 3] images in [-1, 1] (gradient flows into both).
    Scalar float32 in [0, 2]. The same mean absolute difference as FaceDancer's cycle term, so it is that one."""
    return cycle_loss(swap, mirrored_swap)


def mirror_term(step):
    """The mirror row: G run again with the source crop it read mirrored left to right (the same identity input,
    target and pre-swap), against the step's swap."""
    loss, batch = step.loss, step.batch
    identity_in = loss.identity_input(batch.source, step.src_out, step.source_clip)
    mirrored = loss.run_generator(loss.generator_input(batch.target, batch.teacher), identity_in,
                                  ops.flip(batch.generator_source, axis=2), training=True)
    return mirror_consistency_loss(step.swap, mirrored)
