"""The loss terms, declared once: name, side, equation, the LossWeights field that weights it, the loss function that
computes it, whether it is computed whatever its weight, what of the step it reads, and whether the progress bar
shows it.

The composite loss (clipswap.losses.composite) sums each side's terms in this order with these weights; the training
loss (clipswap.training.loss.SwapLoss) computes the active ones (active_generator_terms) with these functions; the
trainer's metrics, the training logs, the TensorBoard tags (clipswap.training.callbacks) and the progress bar take
their names from here. Plain Python: importing it starts no TensorFlow (clipswap.config reads it).
"""

from __future__ import annotations

from dataclasses import dataclass

SIDES = ("G", "D")
#: What a term may read of the step besides the swap (SwapLoss gathers these; see LossTerm.needs).
INPUTS = ("source", "target", "same", "teacher", "warped", "clip", "discriminator", "generator")


@dataclass(frozen=True)
class LossTerm:
    """One loss term.

    Attributes:
        name: its name in logs, metrics.jsonl and TensorBoard ("loss_g/NAME", "loss_d/NAME").
        side: "G" (the generator's loss) or "D" (the discriminator's).
        equation: what it computes and where that comes from.
        weight: the LossWeights field that weights it in its side's total; None: it enters with weight 1.
        function: the function of clipswap.losses that computes it, as "module.function".
        always: computed and logged whatever its weight (id, rec, adv and the D terms); the others only when weighted.
        needs: what of the step it reads besides the swap (names from INPUTS).
        shown: the progress bar shows it.
    """

    name: str
    side: str
    equation: str
    weight: str | None
    function: str
    always: bool = False
    needs: tuple[str, ...] = ()
    shown: bool = False

    def __post_init__(self):
        if self.side not in SIDES:
            raise ValueError(f"loss term {self.name}: side must be one of {SIDES}, got {self.side!r}")
        unknown = sorted(set(self.needs) - set(INPUTS))
        if unknown:
            raise ValueError(f"loss term {self.name}: unknown inputs {unknown}; expected names from {INPUTS}")
        if self.function.count(".") != 1:
            raise ValueError(f"loss term {self.name}: function must read 'module.function', got {self.function!r}")

    @property
    def tag(self) -> str:
        """Its TensorBoard tag."""
        return f"loss_{self.side.lower()}/{self.name}"


TERMS: tuple[LossTerm, ...] = (
    LossTerm("id", "G", "eq. 6: 1 - cos(R(swap), R(source)), R the frozen identity encoder", "id",
             "identity.identity_loss", always=True, needs=("source",), shown=True),
    LossTerm("rec", "G", "eq. 7: L1(swap, target) on same-identity pairs", "rec",
             "reconstruction.reconstruction_loss", always=True, needs=("target", "same"), shown=True),
    LossTerm("perceptual", "G", "eq. 8: L1 of the identity encoder's stage features, same pairs (or towards the "
             "teacher on every pair, perceptual_to_teacher)", "perceptual", "perceptual.perceptual_loss",
             needs=("target", "same", "teacher")),
    LossTerm("contra", "G", "eqs. 2-5: CLIP contrastive loss of the swap's augmentations against the source",
             "contra", "contrastive.clip_contrastive_loss", needs=("source", "clip"), shown=True),
    LossTerm("att", "G", "eq. 9: attribute features of the swap against the target's", "att",
             "attribute.attribute_loss", needs=("target",)),
    LossTerm("adv", "G", "non-saturating logistic loss of D on the swap (FaceDancer, Rosberg et al., WACV 2023)", "adv",
             "adversarial.generator_adversarial_loss", always=True, needs=("discriminator",)),
    LossTerm("cycle", "G", "FaceDancer's cycle: L1(G(swap, R(target)), target)", "cycle", "facedancer.cycle_loss",
             needs=("target", "generator")),
    LossTerm("ifsr", "G", "FaceDancer's IFSR: identity-encoder features of the swap within margins of the "
             "target's", "ifsr", "facedancer.ifsr_loss", needs=("target",)),
    LossTerm("teacher", "G", "ours: L1 to the landmark-swap teacher image (face and background averaged apart with "
             "teacher_background)", "teacher", "reconstruction.teacher_loss", needs=("teacher", "target")),
    LossTerm("flow", "G", "ours: a source_flow generator's learned flow at the target's landmarks against the "
             "displacement to the source's (flow.landmark_flow_loss), plus its warp against the pair's landmark warp "
             "inside the pasted region, per-channel normalised, at three resolutions", "flow", "flow.flow_loss",
             needs=("source", "target", "warped", "generator")),
    LossTerm("d_adv", "D", "logistic loss of D: the source real, the swap fake", None,
             "adversarial.discriminator_adversarial_loss", always=True, needs=("source", "discriminator")),
    LossTerm("r1", "D", "R1 gradient penalty on the real images; its weight r1_gamma (LossWeights) is applied inside "
             "the penalty, so the logged value carries it", None, "tf_only.discriminator_logits_with_r1",
             always=True, needs=("source", "discriminator")),
)

#: name -> LossTerm.
BY_NAME: dict[str, LossTerm] = {term.name: term for term in TERMS}
if len(BY_NAME) != len(TERMS):
    raise ValueError("two loss terms share a name")
if any(term.weight is not None for term in TERMS if term.side == "D"):
    raise ValueError("the discriminator's terms enter its total unweighted (the composite loss sums them)")
#: The generator's terms (LossWeights' fields but r1_gamma), in reporting order.
GENERATOR_TERMS: tuple[str, ...] = tuple(term.name for term in TERMS if term.side == "G")
#: The discriminator's terms.
DISCRIMINATOR_TERMS: tuple[str, ...] = tuple(term.name for term in TERMS if term.side == "D")
#: Each side's total, logged beside its terms.
TOTALS: dict[str, str] = {"G": "g_total", "D": "d_total"}
#: What the progress bar shows, in order.
SHOWN: tuple[str, ...] = ("g_total", *(term.name for term in TERMS if term.shown), "d_total", "images_per_s")


def weight_of(term: LossTerm, weights) -> float:
    """The term's weight in its side's total under these LossWeights (1 when the table gives no weight field)."""
    return 1.0 if term.weight is None else float(getattr(weights, term.weight))


def active_generator_terms(weights) -> tuple[str, ...]:
    """The generator terms a step computes with these LossWeights: every `always` term and every weighted one."""
    return tuple(name for name in GENERATOR_TERMS if BY_NAME[name].always or weight_of(BY_NAME[name], weights))


def metric_names(weights) -> tuple[str, ...]:
    """Every figure a step reports with these LossWeights, in order: the active G terms, g_total, the D terms,
    d_total (the trainer's metrics)."""
    return (*active_generator_terms(weights), TOTALS["G"], *DISCRIMINATOR_TERMS, TOTALS["D"])


def tag(name: str) -> str:
    """TensorBoard tag of any logged scalar: loss terms by side, totals, the optimiser and speed figures."""
    if name in BY_NAME:
        return BY_NAME[name].tag
    if name in ("lr_g", "lr_d"):
        return f"optimizer/{name}"
    if name in ("step_time", "images_per_s"):
        return f"speed/{name}"
    if name == TOTALS["D"]:
        return f"loss_d/{name}"
    return f"loss_g/{name}"


__all__ = ["BY_NAME", "DISCRIMINATOR_TERMS", "GENERATOR_TERMS", "INPUTS", "SHOWN", "SIDES", "TERMS", "TOTALS",
           "LossTerm", "active_generator_terms", "metric_names", "tag", "weight_of"]
