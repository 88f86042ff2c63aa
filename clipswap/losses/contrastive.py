"""CLIP contrastive loss (ClipSwap paper eqs. 2-5) and the running mean CLIP embedding X_mean it needs.

Decisions the paper leaves open (issue 4): X_ref is the source image; every CLIP embedding and every direction is
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
"""

from __future__ import annotations

import tensorflow as tf

from clipswap.losses.identity import l2_normalize

CONTRASTIVE_TAU = 0.1
CLIP_MEAN_MOMENTUM = 0.99


def _info_nce(query: tf.Tensor, positive: tf.Tensor, negatives: tf.Tensor, tau: float) -> tf.Tensor:
    """-log softmax of the positive among [positive, negatives]: [B, K] for query [B, K, D], positive [B, D],
    negatives [N, D] shared by every query. logsumexp keeps it finite for any tau."""
    positive_logit = tf.einsum("bkd,bd->bk", query, positive) / tau
    negative_logits = tf.einsum("bkd,nd->bkn", query, negatives) / tau
    all_logits = tf.concat([positive_logit[..., None], negative_logits], axis=-1)
    return tf.reduce_logsumexp(all_logits, axis=-1) - positive_logit


def clip_contrastive_loss(
    e_ref: tf.Tensor, e_swap: tf.Tensor, e_aug: tf.Tensor, e_mean: tf.Tensor, tau: float = CONTRASTIVE_TAU
) -> tf.Tensor:
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
    e_ref = tf.convert_to_tensor(e_ref)
    e_swap = tf.convert_to_tensor(e_swap)
    e_aug = tf.convert_to_tensor(e_aug)
    e_mean = tf.convert_to_tensor(e_mean)
    if e_ref.shape.rank != 2 or e_swap.shape.rank != 2 or e_aug.shape.rank != 3 or e_mean.shape.rank != 1:
        raise ValueError(
            "clip_contrastive_loss expects e_ref [B, D], e_swap [B, D], e_aug [B, n_aug, D], e_mean [D]; got "
            f"{e_ref.shape}, {e_swap.shape}, {e_aug.shape}, {e_mean.shape}"
        )
    ref = tf.stop_gradient(l2_normalize(e_ref))
    mean = tf.stop_gradient(l2_normalize(e_mean))
    swap = l2_normalize(e_swap)
    aug = l2_normalize(e_aug)

    query = l2_normalize(aug - swap[:, None, :])  # [B, K, D]
    positive_swap = l2_normalize(ref - swap)  # S1+ [B, D]
    positive_mean = l2_normalize(ref - mean[None, :])  # S2+ [B, D]
    negatives = l2_normalize(swap - mean[None, :])  # S- [B, D], shared by every sample
    loss = _info_nce(query, positive_swap, negatives, tau) + _info_nce(query, positive_mean, negatives, tau)
    return tf.reduce_mean(loss)


class ClipMeanTracker(tf.Module):
    """CLIP(X_mean): EMA of the batch mean of L2-normalised CLIP embeddings of generated swaps.

    State lives in tf.Variables (`mean` [D] float32, `count` int64 updates so far) so tf.train.Checkpoint saves and
    restores it, also when it is an attribute of a Keras model in the checkpoint. It is not among `model.weights`,
    so Keras' own save_weights/.keras files do not hold it. The first update sets the mean to that batch's mean;
    later ones do mean <- momentum * mean + (1 - momentum) * batch_mean. The stored mean is not renormalised
    (the loss normalises it). Create it under the distribution strategy's scope: `mean` aggregates by MEAN, so an
    update in replica context averages the replicas' batch means.

    Typical step: `e_mean = tracker.update(e_swap)` then `clip_contrastive_loss(e_ref, e_swap, e_aug, e_mean)`.
    """

    def __init__(self, dim: int, momentum: float = CLIP_MEAN_MOMENTUM, name: str = "clip_mean_tracker"):
        super().__init__(name=name)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        self.momentum = float(momentum)
        self.mean = tf.Variable(
            tf.zeros([dim], tf.float32), trainable=False, name="mean", aggregation=tf.VariableAggregation.MEAN
        )
        self.count = tf.Variable(
            tf.constant(0, tf.int64), trainable=False, name="count",
            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
        )

    @property
    def value(self) -> tf.Tensor:
        """[D] current mean embedding (not normalised); zeros before the first update."""
        return self.mean.read_value()

    def update(self, e_swap: tf.Tensor) -> tf.Tensor:
        """Fold swap embeddings [B, D] (raw or normalised; no gradient) into the mean; returns the new [D] mean."""
        batch_mean = tf.reduce_mean(l2_normalize(tf.stop_gradient(e_swap)), axis=0)
        blended = self.momentum * self.mean + (1.0 - self.momentum) * batch_mean
        self.mean.assign(tf.where(self.count > 0, blended, batch_mean))
        self.count.assign_add(1)
        return self.mean.read_value()
