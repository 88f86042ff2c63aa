"""The loss terms, declared once: each row names a term, its side, its equation, the weight that scales it (the key
`weights.<name>` and its default), the function that computes it with that function's options, whether it is
computed whatever its weight, what of the step it reads, and whether the progress bar shows it.

The table drives the loss: LossWeights (clipswap.config) has one field per weighted row, defaulting to the row's
weight; the training loss (clipswap.training.loss.SwapLoss) calls each active generator row's function and every
discriminator row's, and checks the networks the rows need; the composite loss (clipswap.losses.composite) sums each
side's terms in this order; the trainer's metrics, the training logs, the TensorBoard tags
(clipswap.training.callbacks) and the progress bar take their names from here. Adding a term, of either side, is one
function in a module of clipswap.losses and one row here.

A generator row's function is called as `function(step, **options)` and returns a scalar float32 tensor:
`step` is what the G pass computed once (clipswap.training.loss.GeneratorForward: the batch, the step's seed, the
swap, the identity encoder's outputs of swap, source and target, CLIP(source)) with `step.loss`, the SwapLoss, for
the networks (`identity`, `generator`, `discriminator`, `clip_encoder`, `perceptual`, `attribute`, `ifsr_layers`,
the backend's `parts`) and its helpers (`run_generator`, `identity_input`, `discriminator_input`). `options` are the
row's, with the run's values where the configuration sets them (clipswap.training.assembly.build_loss).

A discriminator row's function is called the same way with what the D pass computed once
(clipswap.training.loss.DiscriminatorForward: the batch, the swap, D's real input and its weights, D's real and fake
logits, and the R1 penalty of the real call, which differentiates that call and so comes with it) and enters D's total
unweighted.

Plain Python: importing it starts no TensorFlow (clipswap.config reads it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from clipswap.registry import load_object

SIDES = ("G", "D")
#: What a term may read of the step besides the swap (see LossTerm.needs): the batch's images and landmarks, and the
#: networks the loss holds. The loss refuses an active term whose network it lacks (NETWORKS).
INPUTS = (
    "source",
    "target",
    "same",
    "teacher",
    "warped",
    "target_68",
    "source_68",
    "clip",
    "discriminator",
    "generator",
    "perceptual",
    "attribute",
    "ifsr_layers",
)
#: The inputs that are networks the loss may be built without, with what the refusal says is missing.
NETWORKS: dict[str, str] = {
    "perceptual": "a perceptual FeatureSource",
    "attribute": "an attribute FeatureSource",
    "ifsr_layers": "the ArcFace IFSR layers (ifsr_layers); IFSR needs ArcFace-R50",
    "clip": "a CLIP encoder",
}
#: The batch entries only some terms read: the loss reads them from the batch (and refuses a batch without them)
#: only while a term that needs them is active.
OPTIONAL_BATCH = ("warped", "target_68", "source_68")
#: R1's gamma, the one weight that belongs to no row (it is applied inside the R1 penalty): the paper's 10.
R1_GAMMA_DEFAULT = 10.0


@dataclass(frozen=True)
class LossTerm:
    """One loss term.

    Attributes:
        name: its name in logs, metrics.jsonl and TensorBoard ("loss_g/NAME", "loss_d/NAME").
        side: "G" (the generator's loss) or "D" (the discriminator's).
        equation: what it computes and where that comes from.
        weight: the LossWeights field (`weights.<weight>`) that weights it in its side's total; None: it enters with
            weight 1 (the D terms).
        function: what computes it, "module.function" of clipswap.losses (or the function itself, for a term
            defined outside the package); the loss calls it as `function(step, **options)` with its side's pass
            (see the module docstring).
        always: computed and logged whatever its weight (id, rec, adv and the D terms); the others only when weighted.
        needs: what of the step it reads besides the swap (names from INPUTS).
        shown: the progress bar shows it.
        default: the weight's default (LossWeights' default for the field).
        options: the keyword options of `function` with their defaults; a run's configuration sets those it has a
            key for (a `loss` or `augmentation` key of the same name).
    """

    name: str
    side: str
    equation: str
    weight: str | None
    function: str | Callable[..., Any]
    always: bool = False
    needs: tuple[str, ...] = ()
    shown: bool = False
    default: float = 0.0
    options: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self):
        if self.side not in SIDES:
            raise ValueError(f"loss term {self.name}: side must be one of {SIDES}, got {self.side!r}")
        unknown = sorted(set(self.needs) - set(INPUTS))
        if unknown:
            raise ValueError(f"loss term {self.name}: unknown inputs {unknown}; expected names from {INPUTS}")
        if isinstance(self.function, str) and self.function.count(".") != 1:
            raise ValueError(f"loss term {self.name}: function must read 'module.function', got {self.function!r}")
        if self.side == "D" and self.weight is not None:
            raise ValueError(f"loss term {self.name}: the discriminator's terms enter its total unweighted")

    @property
    def tag(self) -> str:
        """Its TensorBoard tag."""
        return f"loss_{self.side.lower()}/{self.name}"

    def resolve(self) -> Callable[..., Any]:
        """The function the row names, imported from clipswap.losses (the family modules import Keras, so this
        happens when a loss is built, not when the table is read)."""
        if not isinstance(self.function, str):
            return self.function
        module, name = self.function.split(".")
        return load_object(f"clipswap.losses.{module}:{name}")


TERMS: tuple[LossTerm, ...] = (
    LossTerm(
        "id",
        "G",
        "eq. 6: 1 - cos(R(swap), R(source)), R the frozen identity encoder",
        "id",
        "identity.identity_term",
        always=True,
        needs=("source",),
        shown=True,
        default=10.0,
        options={"id_augment": False, "id_augment_grey": 0.0},
    ),
    LossTerm(
        "rec",
        "G",
        "eq. 7: L1(swap, target) on same-identity pairs",
        "rec",
        "reconstruction.reconstruction_term",
        always=True,
        needs=("target", "same"),
        shown=True,
        default=5.0,
        options={"facedancer_rec_clip": False},
    ),
    LossTerm(
        "perceptual",
        "G",
        "eq. 8: L1 of the identity encoder's stage features, same pairs (or towards the "
        "teacher on every pair, perceptual_to_teacher)",
        "perceptual",
        "perceptual.perceptual_term",
        needs=("target", "same", "teacher", "perceptual"),
        default=0.2,
        options={"perceptual_to_teacher": False},
    ),
    LossTerm(
        "contra",
        "G",
        "eqs. 2-5: CLIP contrastive loss of the swap's augmentations against the source",
        "contra",
        "contrastive.contrastive_term",
        needs=("source", "clip"),
        shown=True,
        default=0.3,
        options={"n_aug": 4, "aug_distortion": 0.5, "aug_crop_fraction": 0.75},
    ),
    LossTerm(
        "att",
        "G",
        "eq. 9: attribute features of the swap against the target's",
        "att",
        "attribute.attribute_term",
        needs=("target", "attribute"),
        default=10.0,
    ),
    LossTerm(
        "adv",
        "G",
        "non-saturating logistic loss of D on the swap (FaceDancer, Rosberg et al., WACV 2023)",
        "adv",
        "adversarial.generator_adversarial_term",
        always=True,
        needs=("discriminator",),
        default=1.0,
    ),
    LossTerm(
        "cycle",
        "G",
        "FaceDancer's cycle: L1(G(swap, R(target)), target)",
        "cycle",
        "facedancer.cycle_term",
        needs=("target", "generator"),
    ),
    LossTerm(
        "ifsr",
        "G",
        "FaceDancer's IFSR: identity-encoder features of the swap within margins of the target's",
        "ifsr",
        "facedancer.ifsr_term",
        needs=("target", "ifsr_layers"),
    ),
    LossTerm(
        "teacher",
        "G",
        "ours: L1 to the landmark-swap teacher image (face and background averaged apart with teacher_background)",
        "teacher",
        "reconstruction.teacher_term",
        needs=("teacher", "target"),
        options={"teacher_face_only": False, "teacher_background": False},
    ),
    LossTerm(
        "flow",
        "G",
        "ours: a source_flow generator's learned flow at the target's landmarks against the "
        "displacement to the source's (flow.landmark_flow_loss), plus its warp against the pair's landmark warp "
        "inside the pasted region, per-channel normalised, at three resolutions",
        "flow",
        "flow.generator_flow_term",
        needs=("source", "target", "warped", "target_68", "source_68", "generator"),
    ),
    LossTerm(
        "mirror",
        "G",
        "ours: L1 between the swap and G's swap of the source crop mirrored left to right (mirror.mirror_term): "
        "the source's turn, not its identity, is what the mirror changes",
        "mirror",
        "mirror.mirror_term",
        needs=("source", "target", "generator"),
    ),
    LossTerm(
        "d_adv",
        "D",
        "logistic loss of D: the source real, the swap fake",
        None,
        "adversarial.discriminator_adversarial_term",
        always=True,
        needs=("source", "discriminator"),
    ),
    LossTerm(
        "r1",
        "D",
        "R1 gradient penalty on the real images; its weight r1_gamma (LossWeights) is applied inside "
        "the penalty, so the logged value carries it",
        None,
        "adversarial.r1_term",
        always=True,
        needs=("source", "discriminator"),
    ),
)


def check_table(terms: tuple[LossTerm, ...]) -> tuple[LossTerm, ...]:
    """The table itself if its rows fit together: unique names, one weight field per generator row, no option
    of two rows by one name with two defaults (the configuration sets an option by its name). Raises ValueError."""
    names = [term.name for term in terms]
    if len(set(names)) != len(names):
        raise ValueError(f"two loss terms share a name: {names}")
    weights = [term.weight for term in terms if term.weight is not None]
    if len(set(weights)) != len(weights) or "r1_gamma" in weights:
        raise ValueError(f"two loss terms share a weight field, or one takes R1's: {weights}")
    seen: dict[str, Any] = {}
    for term in terms:
        for option, default in term.options.items():
            if seen.setdefault(option, default) != default:
                raise ValueError(f"loss term {term.name}: option {option} has another default in another row")
    return terms


check_table(TERMS)
#: name -> LossTerm.
BY_NAME: dict[str, LossTerm] = {term.name: term for term in TERMS}
#: The generator's terms (LossWeights' fields but r1_gamma), in reporting order.
GENERATOR_TERMS: tuple[str, ...] = tuple(term.name for term in TERMS if term.side == "G")
#: The discriminator's terms.
DISCRIMINATOR_TERMS: tuple[str, ...] = tuple(term.name for term in TERMS if term.side == "D")
#: Each side's total, logged beside its terms.
TOTALS: dict[str, str] = {"G": "g_total", "D": "d_total"}
#: What the progress bar shows, in order.
SHOWN: tuple[str, ...] = ("g_total", *(term.name for term in TERMS if term.shown), "d_total", "images_per_s")


def weight_fields(terms: tuple[LossTerm, ...] = TERMS) -> list[tuple[str, float]]:
    """(field, default) of every weight the table declares, in order: each weighted row's, then r1_gamma (the
    fields of clipswap.config.LossWeights)."""
    return [
        *((term.weight, float(term.default)) for term in terms if term.weight is not None),
        ("r1_gamma", R1_GAMMA_DEFAULT),
    ]


def term_options(terms: tuple[LossTerm, ...] = TERMS) -> dict[str, Any]:
    """Every row's options with their defaults (check_table keeps one default per name)."""
    return {option: default for term in terms for option, default in term.options.items()}


def weight_of(term: LossTerm, weights) -> float:
    """The term's weight in its side's total under these LossWeights (1 when the table gives no weight field)."""
    return 1.0 if term.weight is None else float(getattr(weights, term.weight))


def active_generator_terms(weights, terms: tuple[LossTerm, ...] = TERMS) -> tuple[str, ...]:
    """The generator terms a step computes with these LossWeights: every `always` term and every weighted one."""
    return tuple(term.name for term in terms if term.side == "G" and (term.always or weight_of(term, weights)))


def metric_names(weights, terms: tuple[LossTerm, ...] = TERMS) -> tuple[str, ...]:
    """Every figure a step reports with these LossWeights, in order: the active G terms, g_total, the D terms,
    d_total (the trainer's metrics)."""
    d_terms = tuple(term.name for term in terms if term.side == "D")
    return (*active_generator_terms(weights, terms), TOTALS["G"], *d_terms, TOTALS["D"])


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


__all__ = [
    "BY_NAME",
    "DISCRIMINATOR_TERMS",
    "GENERATOR_TERMS",
    "INPUTS",
    "NETWORKS",
    "OPTIONAL_BATCH",
    "R1_GAMMA_DEFAULT",
    "SHOWN",
    "SIDES",
    "TERMS",
    "TOTALS",
    "LossTerm",
    "active_generator_terms",
    "check_table",
    "metric_names",
    "tag",
    "term_options",
    "weight_fields",
    "weight_of",
]
