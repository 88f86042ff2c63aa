"""The loss terms, declared once: name (also its LossWeights field), side, equation, whether it is computed whatever
its weight, what the step must hand it, and whether the progress bar shows it.

The composite loss (clipswap.losses.composite) sums the generator terms in this order, the trainer tracks the active
ones (active_generator_terms), the training logs and TensorBoard tags (clipswap.training.callbacks) and the progress
bar take their names from here. Plain Python: importing it starts no TensorFlow (clipswap.config reads it).
"""

from __future__ import annotations

from dataclasses import dataclass

SIDES = ("G", "D")


@dataclass(frozen=True)
class LossTerm:
    """One loss term.

    Attributes:
        name: its name in logs, metrics.jsonl and TensorBoard ("loss_g/NAME", "loss_d/NAME"); for a generator term
            also its LossWeights field.
        side: "G" (the generator's loss) or "D" (the discriminator's).
        equation: what it computes and where that comes from.
        always: computed and logged whatever its weight (id, rec, adv); the others only when weighted.
        needs: what of the step it reads besides the swap ("source", "target", "same", "teacher", "clip").
        shown: the progress bar shows it.
    """

    name: str
    side: str
    equation: str
    always: bool = False
    needs: tuple[str, ...] = ()
    shown: bool = False

    def __post_init__(self):
        if self.side not in SIDES:
            raise ValueError(f"loss term {self.name}: side must be one of {SIDES}, got {self.side!r}")

    @property
    def tag(self) -> str:
        """Its TensorBoard tag."""
        return f"loss_{self.side.lower()}/{self.name}"


TERMS: tuple[LossTerm, ...] = (
    LossTerm("id", "G", "eq. 6: 1 - cos(R(swap), R(source)), R the frozen identity encoder", True, ("source",), True),
    LossTerm("rec", "G", "eq. 7: L1(swap, target) on same-identity pairs", True, ("target", "same"), True),
    LossTerm("perceptual", "G", "eq. 8: L1 of the identity encoder's stage features, same pairs (or towards the "
             "teacher on every pair, perceptual_to_teacher)", needs=("target", "same")),
    LossTerm("contra", "G", "eqs. 2-5: CLIP contrastive loss of the swap's augmentations against the source",
             needs=("source", "clip"), shown=True),
    LossTerm("att", "G", "eq. 9: attribute features of the swap against the target's", needs=("target",)),
    LossTerm("adv", "G", "non-saturating logistic loss of D on the swap (FaceDancer, REFERENCE.md section 7)", True),
    LossTerm("cycle", "G", "FaceDancer's cycle: L1(G(swap, R(target)), target)", needs=("target",)),
    LossTerm("ifsr", "G", "FaceDancer's IFSR: identity-encoder features of the swap within margins of the "
             "target's", needs=("target",)),
    LossTerm("teacher", "G", "ours: L1 to the landmark-swap teacher image (face and background averaged apart with "
             "teacher_background)", needs=("teacher",)),
    LossTerm("d_adv", "D", "logistic loss of D: the source real, the swap fake", True, ("source",)),
    LossTerm("r1", "D", "R1 gradient penalty on the real images, times r1_gamma (LossWeights)", True, ("source",)),
)

#: name -> LossTerm.
BY_NAME: dict[str, LossTerm] = {term.name: term for term in TERMS}
if len(BY_NAME) != len(TERMS):
    raise ValueError("two loss terms share a name")
#: The generator's terms (LossWeights' fields but r1_gamma), in reporting order.
GENERATOR_TERMS: tuple[str, ...] = tuple(term.name for term in TERMS if term.side == "G")
#: The discriminator's terms.
DISCRIMINATOR_TERMS: tuple[str, ...] = tuple(term.name for term in TERMS if term.side == "D")
#: What the progress bar shows, in order.
SHOWN: tuple[str, ...] = ("g_total", *(term.name for term in TERMS if term.shown), "d_total", "images_per_s")


def active_generator_terms(weights) -> tuple[str, ...]:
    """The generator terms a step computes with these LossWeights: every `always` term and every weighted one."""
    return tuple(name for name in GENERATOR_TERMS if BY_NAME[name].always or getattr(weights, name))


def tag(name: str) -> str:
    """TensorBoard tag of any logged scalar: loss terms by side, totals, the optimiser and speed figures."""
    if name in BY_NAME:
        return BY_NAME[name].tag
    if name in ("lr_g", "lr_d"):
        return f"optimizer/{name}"
    if name in ("step_time", "images_per_s"):
        return f"speed/{name}"
    if name == "d_total":
        return "loss_d/d_total"
    return f"loss_g/{name}"


__all__ = ["BY_NAME", "DISCRIMINATOR_TERMS", "GENERATOR_TERMS", "SHOWN", "SIDES", "TERMS", "LossTerm",
           "active_generator_terms", "tag"]
