"""Weighted sum of the generator's loss terms and of the discriminator's, returned with every term by name
(keras.ops: any backend's scalars).

Paper total (its implementation details): 10 L_id + 5 L_rec + 0.2 L_p + 0.3 L_contra + 10 L_att; we add FaceDancer's
adversarial term (weight 1) and, for the `facedancer` preset, its cycle and IFSR terms (FaceDancer, Rosberg et al.,
WACV 2023).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from keras import ops

# LossWeights is plain Python in clipswap.config (importing it must not start TensorFlow); importable here too.
from clipswap.config import LossWeights

# Term names, in reporting order, and their weight fields: the table of clipswap.losses.terms.
from clipswap.losses.terms import DISCRIMINATOR_TERMS, GENERATOR_TERMS, TERMS, TOTALS, LossTerm, weight_of


def _scalar(name: str, value):
    value = ops.cast(ops.convert_to_tensor(value), "float32")
    shape = value.shape  # a TensorFlow graph tensor may have an unknown rank (None): accepted, as a scalar
    rank = shape.rank if hasattr(shape, "rank") else len(shape)
    if rank not in (None, 0):
        raise ValueError(f"loss term {name!r} must be a scalar, got shape {tuple(shape)}")
    return value


def generator_loss(terms: Mapping, weights: LossWeights, table: Sequence[LossTerm] = TERMS) -> tuple:
    """Total generator loss sum_k weight_k * term_k and every term by name.

    Args:
        terms: raw scalar losses keyed by the table's generator rows ("id", "rec", "perceptual", "contra", "att",
            "adv", "cycle", "ifsr", "teacher", "flow"); leave out what is not computed. Unknown names are an error
            (typos would vanish).
        weights: LossWeights (any object with the table's weight fields).
        table: the loss-term table (clipswap.losses.terms.TERMS, or one with rows added).

    Returns:
        (total scalar float32, named) where named holds, for every generator row, `name` (the raw value,
        0 when absent) and `name + "_weighted"` (0 when absent or weighted 0, and then not in the total), plus
        "total". A term given with weight 0 is reported raw but contributes nothing.
    """
    rows = [row for row in table if row.side == "G"]
    names = tuple(row.name for row in rows)
    unknown = sorted(set(terms) - set(names))
    if unknown:
        raise ValueError(f"unknown generator loss terms {unknown}; expected names from {names}")
    zero = ops.convert_to_tensor(0.0, "float32")
    total = zero
    named: dict = {}
    for row in rows:
        name = row.name
        raw = _scalar(name, terms[name]) if name in terms else zero
        weight = weight_of(row, weights)
        weighted = weight * raw if name in terms and weight != 0 else zero
        total = total + weighted
        named[name] = raw
        named[f"{name}_weighted"] = weighted
    named["total"] = total
    return total, named


def discriminator_loss(terms: Mapping, table: Sequence[LossTerm] = TERMS) -> tuple:
    """D total = the sum of the table's D terms in its order, d_adv + r1 (they enter with weight 1: r1 already
    carries gamma); returns (total, {"d_adv", "r1", any other D row, "d_total"}), absent -> 0. Unknown names are an
    error."""
    names = tuple(row.name for row in table if row.side == "D")
    unknown = sorted(set(terms) - set(names))
    if unknown:
        raise ValueError(f"unknown discriminator loss terms {unknown}; expected names from {names}")
    named = {
        name: _scalar(name, terms[name]) if name in terms else ops.convert_to_tensor(0.0, "float32") for name in names
    }
    first, *rest = names
    total = named[first]
    for name in rest:
        total = total + named[name]
    named[TOTALS["D"]] = total
    return total, named


__all__ = ["DISCRIMINATOR_TERMS", "GENERATOR_TERMS", "LossWeights", "discriminator_loss", "generator_loss"]
