"""Generator conditioning: what the generator reads besides the identity vector, as one named choice.

Each row of CONDITIONINGS is one choice of ModelConfig.conditioning. A row names how the "target" input is
prepared (TARGET_PREPARATIONS) and whether and how a "source" input is (SOURCE_PREPARATIONS); everything else, the
generator's inputs, what a training batch must carry, whether a swap needs the face's 68 landmarks and whether
ModelConfig.source_level applies, follows from those two names. Adding a conditioning that combines known
preparations is one row here (tests/models/test_conditioning_rows.py adds one); a new preparation is one entry in a
preparation table plus the code that computes it: at swap time FaceSwapper (clipswap.inference.swapper), in training
the pairs data (clipswap.facedata.pairs) and SwapTrainer.read_batch, or the generator graph for a learned one
(flow_head).

The generator's inputs by name (those of the Generator's keras.Input layers, clipswap.models.generator):

    target    [B, S, S, 3] RGB in [-1, 1]: the aligned target crop, or the landmark swap of the source onto it
    identity  [B, D]: the identity vector (D = config.id_input_dim: the identity encoder's width, plus CLIP's)
    source    [B, S, S, 3] RGB in [-1, 1], for a row with a source preparation: the source's aligned crop, or its
              face warped onto the target's landmarks (clipswap.face.landmark_swap.warp_paste)

Plain Python: importing it starts no TensorFlow (clipswap.config reads the rows to validate a configuration).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

TARGET = "target"
IDENTITY = "identity"
SOURCE = "source"

@dataclass(frozen=True)
class Preparation:
    """How one generator input is prepared from a swap's source and target.

    Attributes:
        holds: what the input holds, in a phrase.
        note: what a swap with it does, for the command line's model line ("warping the source onto the target").
        batch_keys: what each training batch must carry for it besides "target" and "source".
        warped_input: (source) G reads the pair's warp ("warped") in place of the source crop when training.
        landmarks_at_swap: computing it at swap time needs the target face's 68 landmarks, and G's output is pasted
            back over the region the landmarks drive.
        levels: (source) ModelConfig.source_level (the source joining the encoder at S / 2**k) applies to it.
        learned_flow: (source) G warps the source itself by a learned flow (flow_head), trained by the flow term.
        flow_network: (learned_flow) the network that predicts the flow (flow_head's `network`): "stacked" reads
            both crops stacked, "keypoints" finds 68 points in each crop and bends a thin-plate spline through them.
    """

    holds: str
    note: str = ""
    batch_keys: tuple[str, ...] = ()
    warped_input: bool = False
    landmarks_at_swap: bool = False
    levels: bool = True
    learned_flow: bool = False
    flow_network: str = ""


#: How the "target" input is prepared.
TARGET_PREPARATIONS: dict[str, Preparation] = {
    "crop": Preparation("the aligned target crop, as every published model"),
    "landmark_swap": Preparation(
        "the classical landmark swap of the source onto the target crop (clipswap.face.landmark_swap; the teacher "
        "image of `clipswap pairs` data)", note="refining the landmarks swap", batch_keys=("teacher",),
        landmarks_at_swap=True),
}

#: How the "source" input is prepared.
SOURCE_PREPARATIONS: dict[str, Preparation] = {
    "source_crop": Preparation("the source's aligned crop (the target's template)",
                               note="reading the source's aligned face"),
    "warp": Preparation(
        "the source's face warped onto the target's 68 landmarks, colour-matched and pasted into the target crop "
        "(clipswap.face.landmark_swap.warp_paste)", note="warping the source onto the target",
        batch_keys=("warped",), warped_input=True, landmarks_at_swap=True),
    "flow": Preparation(
        "the source's aligned crop, which G warps onto the target by its own learned flow (no landmarks at swap "
        "time)", note="reading the source's aligned face", batch_keys=("warped", "landmarks"), levels=False,
        learned_flow=True, flow_network="stacked"),
    "keypoint_flow": Preparation(
        "the source's aligned crop, which G warps onto the target along a thin-plate spline between 68 points its own "
        "keypoint network finds in each crop (no landmark model at swap time)",
        note="warping the source onto the target by its own keypoints", batch_keys=("warped", "landmarks"),
        levels=False, learned_flow=True, flow_network="keypoints"),
}


@dataclass(frozen=True)
class Conditioning:
    """One named conditioning: the preparation of the target input and, or None, of the source input."""

    name: str
    target: str
    source: str | None
    summary: str

    def __post_init__(self) -> None:
        if self.target not in TARGET_PREPARATIONS:
            raise ValueError(f"conditioning {self.name!r}: target must be one of {sorted(TARGET_PREPARATIONS)}, "
                             f"got {self.target!r}")
        if self.source is not None and self.source not in SOURCE_PREPARATIONS:
            raise ValueError(f"conditioning {self.name!r}: source must be None or one of "
                             f"{sorted(SOURCE_PREPARATIONS)}, got {self.source!r}")
        if self.source is not None and TARGET_PREPARATIONS[self.target].landmarks_at_swap and \
                SOURCE_PREPARATIONS[self.source].landmarks_at_swap:
            # The swapper computes one landmark-driven image a face (a landmark swap or a warp), not two.
            raise ValueError(f"conditioning {self.name!r}: at most one of its preparations may use the landmarks")

    @property
    def inputs(self) -> tuple[str, ...]:
        """The generator's input names in its positional order."""
        return (TARGET, IDENTITY, SOURCE) if self.source else (TARGET, IDENTITY)

    @property
    def target_preparation(self) -> Preparation:
        return TARGET_PREPARATIONS[self.target]

    @property
    def source_preparation(self) -> Preparation | None:
        return SOURCE_PREPARATIONS[self.source] if self.source else None

    @property
    def preparations(self) -> tuple[Preparation, ...]:
        return (self.target_preparation,) + ((self.source_preparation,) if self.source else ())

    @property
    def refines_landmark_swap(self) -> bool:
        """G reads the landmark swap as its target (a swap needs the landmarks; training needs the teacher)."""
        return self.target == "landmark_swap"

    @property
    def warped_source(self) -> bool:
        """G's source input is the landmark warp of the source (training reads each pair's "warped")."""
        return bool(self.source and self.source_preparation.warped_input)

    @property
    def learned_flow(self) -> bool:
        """G warps its source input by its own flow network, trained by the flow term (weights.flow)."""
        return bool(self.source and self.source_preparation.learned_flow)

    @property
    def landmarks_at_swap(self) -> bool:
        """A swap needs the target face's 68 landmarks, and G's output is pasted back over the region they drive."""
        return any(prep.landmarks_at_swap for prep in self.preparations)

    @property
    def batch_keys(self) -> tuple[str, ...]:
        """What a training batch must carry for this conditioning besides "target" and "source"."""
        return tuple(dict.fromkeys(key for prep in self.preparations for key in prep.batch_keys))

    @property
    def notes(self) -> str:
        """What a swap with it does, for the command line (", refining the landmarks swap, ..."), or ""."""
        return "".join(f", {prep.note}" for prep in self.preparations if prep.note)

    def named(self, target: Any, identity: Any, source: Any = None) -> dict[str, Any]:
        """{input name: value} of the inputs this row's generator reads, in its order: the source only when the
        row has a source preparation (whatever that preparation made of it: the crop, or the warp).

        Raises:
            ValueError: the row reads a source and `source` is None.
        """
        if self.source and source is None:
            raise ValueError(f"this generator ({self.name}) reads the source's aligned crop (source_image) or its "
                             "warp as its source input; pass the source images")
        values = {TARGET: target, IDENTITY: identity, SOURCE: source}
        return {name: values[name] for name in self.inputs}

    @property
    def legacy_flags(self) -> dict[str, Any]:
        """The older spelling of this row (pre_swap, source_image, source_warp, source_flow)."""
        return {"pre_swap": "landmarks" if self.refines_landmark_swap else None, "source_image": bool(self.source),
                "source_warp": self.source == "warp", "source_flow": self.learned_flow}


CONDITIONINGS: dict[str, Conditioning] = {row.name: row for row in (
    Conditioning("target", "crop", None, "G reads the aligned target crop and the identity vector (the paper)"),
    Conditioning("refine_landmark_swap", "landmark_swap", None,
                 "G reads the landmark swap of the source onto the target and corrects it (the earlier demo)"),
    Conditioning("target+source_crop", "crop", "source_crop",
                 "G also reads the source's aligned crop, stacked with the target or joined at source_level"),
    Conditioning("refine_landmark_swap+source_crop", "landmark_swap", "source_crop",
                 "G reads the landmark swap and the source's aligned crop"),
    Conditioning("target+warp", "crop", "warp",
                 "G also reads the source's face warped onto the target's landmarks (the shipped demo)"),
    Conditioning("target+flow", "crop", "flow",
                 "G also reads the source crop and warps it onto the target by its own learned flow"),
    Conditioning("target+keypoint_flow", "crop", "keypoint_flow",
                 "G also reads the source crop and warps it onto the target along its own keypoints in both crops"),
)}


class LegacyFlags:
    """The older boolean spelling of a conditioning, read-only, for a class with a `conditioning_row` (ModelConfig,
    the swapper): code and files written before the named choice read these."""

    conditioning_row: Conditioning

    @property
    def pre_swap(self) -> str | None:
        return self.conditioning_row.legacy_flags["pre_swap"]

    @property
    def source_image(self) -> bool:
        return self.conditioning_row.legacy_flags["source_image"]

    @property
    def source_warp(self) -> bool:
        return self.conditioning_row.legacy_flags["source_warp"]

    @property
    def source_flow(self) -> bool:
        return self.conditioning_row.legacy_flags["source_flow"]


def get_conditioning(name: str) -> Conditioning:
    """The row of `name`. Raises ValueError (one sentence with the known names) on an unknown one."""
    if name not in CONDITIONINGS:
        raise ValueError(f"conditioning must be one of {sorted(CONDITIONINGS)}, got {name!r}")
    return CONDITIONINGS[name]


#: The older ModelConfig keys (pre_swap, source_image, source_warp, source_flow) and their defaults.
LEGACY_FLAGS: dict[str, Any] = {"pre_swap": None, "source_image": False, "source_warp": False, "source_flow": False}


def conditioning_from_flags(pre_swap: str | None = None, source_image: bool = False, source_warp: bool = False,
                            source_flow: bool = False, source_level: int = 0) -> str:
    """The conditioning name of the older boolean spelling (generator.json, config.json and `--set` keys written
    before the named choice), with the rules that spelling had, so an old file loads as what it was trained as.

    Raises:
        ValueError: one sentence, a combination the older spelling refused too.
    """
    if pre_swap not in (None, "landmarks"):
        raise ValueError(f"pre_swap must be one of (None, 'landmarks'), got {pre_swap!r}")
    flags = {"source_image": source_image, "source_warp": source_warp, "source_flow": source_flow}
    for flag, value in flags.items():
        if not isinstance(value, bool):
            raise ValueError(f"{flag} must be true or false, got {value!r}")
    if source_warp and (not source_image or pre_swap is not None):
        raise ValueError("source_warp replaces the source crop G reads: it needs source_image true and pre_swap null")
    if source_flow and (not source_image or source_warp or pre_swap is not None or source_level):
        raise ValueError("source_flow warps the source crop G reads: it needs source_image true, source_warp false, "
                         "pre_swap null and source_level 0")
    target = "landmark_swap" if pre_swap else "crop"
    source = ("flow" if source_flow else "warp" if source_warp else "source_crop") if source_image else None
    return next(row.name for row in _LEGACY_ROWS if (row.target, row.source) == (target, source))


#: The rows the older spelling can name (every combination it accepted), in the order they were added.
_LEGACY_ROWS = tuple(CONDITIONINGS[name] for name in (
    "target", "refine_landmark_swap", "target+source_crop", "refine_landmark_swap+source_crop", "target+warp",
    "target+flow"))


def input_specs(config: Any) -> dict[str, tuple[int, ...]]:
    """Name -> per-sample shape (no batch axis) of every input a Generator built from `config` (a ModelConfig)
    reads, in the generator's order."""
    size = config.image_size
    shapes = {TARGET: (size, size, 3), IDENTITY: (config.id_input_dim,), SOURCE: (size, size, 3)}
    return {name: shapes[name] for name in get_conditioning(config.conditioning).inputs}


def describe_inputs(config: Any) -> str:
    """The inputs in a few words for tables such as `clipswap info`'s, e.g. "256px + 512-d" or "128px + 128-d +
    source"."""
    described = f"{config.image_size}px + {config.id_input_dim}-d"
    return described + " + source" if get_conditioning(config.conditioning).source else described


def named_inputs(config: Any, target: Any, identity: Any, source: Any = None) -> dict[str, Any]:
    """{input name: value} of the inputs a Generator built from `config` (a ModelConfig) reads (Conditioning.named).
    """
    return get_conditioning(config.conditioning).named(target, identity, source)


def input_list(model: Any, named: Mapping[str, Any]) -> list:
    """The values of `named` ({input name: value}) in the order `model` (a Keras functional model) takes its
    inputs; a Keras call is positional, so this is where a name becomes a position.

    Raises:
        ValueError: `named` lacks an input of the model or holds a name the model does not read.
    """
    order = [tensor.name for tensor in model.inputs]
    missing = [name for name in order if name not in named]
    unexpected = sorted(set(named) - set(order))
    if missing or unexpected:
        raise ValueError(f"{model.name} reads the inputs {order}; missing {missing}, unexpected {unexpected}")
    return [named[name] for name in order]
