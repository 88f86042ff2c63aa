"""CLIP contrastive loss (ClipSwap paper eqs. 2-5) and the running mean CLIP embedding X_mean it needs.

Decisions the paper leaves open, ours: X_ref is the source image; every CLIP embedding and every direction is
L2-normalised; CLIP(X_mean) is an exponential moving average of the (normalised) CLIP embeddings of generated swaps;
the negatives of sample i are the directions CLIP(X_swap_j) - CLIP(X_mean) of every swap j in the (per-replica)
batch, i included; tau = 0.1; gradients reach the generator through X_swap and X_aug only.

With n(v) = v / |v|, for sample i and augmentation k:
    Q_ik  = n(e_aug_ik - e_swap_i)                          (eq. 2, augmented swap relative to the swap)
    S1+_i = n(e_ref_i - e_swap_i)                           (eq. 3)
    S2+_i = n(e_ref_i - e_mean)                             (eq. 3)
    S-_j  = n(e_swap_j - e_mean)                            (eq. 4)
    l_ik(S+) = -log( e^{Q.S+/t} / (e^{Q.S+/t} + sum_j e^{Q.S-_j/t}) )
    L_contra = mean_{i,k} [ l_ik(S1+_i) + l_ik(S2+_i) ]     (eq. 5)

The running mean's state (ClipMeanTracker: tf.Variables that tf.distribute aggregates and tf.train.Checkpoint saves)
is part of the TensorFlow training step and lives in clipswap.losses.tf_only, which imports this module, never the
other way round.
"""

from __future__ import annotations

from keras import ops

from clipswap.losses.identity import l2_normalize

CONTRASTIVE_TAU = 0.1
CLIP_MEAN_MOMENTUM = 0.99


def _info_nce(query, positive, negatives, tau: float):
    """-log softmax of the positive among [positive, negatives]: [B, K] for query [B, K, D], positive [B, D],
    negatives [N, D] shared by every query. logsumexp keeps it finite for any tau."""
    positive_logit = ops.einsum("bkd,bd->bk", query, positive) / tau
    negative_logits = ops.einsum("bkd,nd->bkn", query, negatives) / tau
    all_logits = ops.concatenate([positive_logit[..., None], negative_logits], axis=-1)
    return ops.logsumexp(all_logits, axis=-1) - positive_logit


def clip_contrastive_loss(e_ref, e_swap, e_aug, e_mean, tau: float = CONTRASTIVE_TAU):
    """Paper eqs. 2-5 with the module's decisions.

    Args:
        e_ref: [B, D] CLIP image embeddings of the reference (source) images; raw or normalised. No gradient.
        e_swap: [B, D] CLIP embeddings of the swaps; gradient flows (through Q, S1+ and S-).
        e_aug: [B, n_aug, D] CLIP embeddings of the augmented swaps (`clip_augment`); gradient flows (through Q).
        e_mean: [D] the running mean CLIP embedding (`ClipMeanTracker.value`). No gradient.
        tau: temperature, 0.1 in the paper.

    Returns:
        Scalar float32 >= 0, the mean over samples and augmentations of the two InfoNCE terms. With B negatives per
        term each term is at least about log(1 + B e^{-2/tau}) and at most about 2/tau + log(1 + B).
    """
    e_ref, e_swap, e_aug, e_mean = (ops.convert_to_tensor(e) for e in (e_ref, e_swap, e_aug, e_mean))
    if ops.ndim(e_ref) != 2 or ops.ndim(e_swap) != 2 or ops.ndim(e_aug) != 3 or ops.ndim(e_mean) != 1:
        raise ValueError(
            "clip_contrastive_loss expects e_ref [B, D], e_swap [B, D], e_aug [B, n_aug, D], e_mean [D]; got "
            f"{e_ref.shape}, {e_swap.shape}, {e_aug.shape}, {e_mean.shape}"
        )
    ref = ops.stop_gradient(l2_normalize(e_ref))
    mean = ops.stop_gradient(l2_normalize(e_mean))
    swap = l2_normalize(e_swap)
    aug = l2_normalize(e_aug)

    query = l2_normalize(aug - swap[:, None, :])  # [B, K, D]
    positive_swap = l2_normalize(ref - swap)  # S1+ [B, D]
    positive_mean = l2_normalize(ref - mean[None, :])  # S2+ [B, D]
    negatives = l2_normalize(swap - mean[None, :])  # S- [B, D], shared by every sample
    loss = _info_nce(query, positive_swap, negatives, tau) + _info_nce(query, positive_mean, negatives, tau)
    return ops.mean(loss)


def contrastive_term(step, n_aug: int = 4, aug_distortion: float = 0.5, aug_crop_fraction: float = 0.75):
    """The contra row, eqs. 2-5: e_ref = CLIP(X_ref = source) [B, Dc], X_aug = `n_aug` seeded augmentations of the
    swap (distortion and crop as given); updates the loss's CLIP mean EMA."""
    loss = step.loss
    e_swap = ops.cast(loss.clip_encoder(step.swap, training=False), "float32")
    augmented = loss.parts.clip_augment(step.swap, n_aug=n_aug, distortion=aug_distortion,
                                        crop_fraction=aug_crop_fraction, seed=step.seed)
    flat = ops.reshape(augmented, (-1, *augmented.shape[2:]))
    e_aug = ops.cast(loss.clip_encoder(flat, training=False), "float32")
    e_aug = ops.reshape(e_aug, (-1, n_aug, e_aug.shape[-1]))
    e_mean = loss.clip_mean.update(e_swap)
    return clip_contrastive_loss(step.source_clip, e_swap, e_aug, e_mean)
