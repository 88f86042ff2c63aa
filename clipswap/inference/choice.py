"""Which models a swap run uses: `--model` resolved to a ModelChoice, and the one line the command lines print
about the run's generator, identity encoder and detector.

`--model` (`--model_path` in inference.py) takes a generator file (.h5, .keras or .json) or a name:

    auto       (the default) the published ClipSwap.h5 when the checkpoint folders hold it, flat or in the release's
               layout (clipswap.checkpoints.pretrained), else the shipped demo generator
    demo       the demo generator shipped in pretrained_ckpts/demo/ (our format, SFace identity, trained on a CPU)
    landmarks  the classical 68-point landmark swap (clipswap.face.landmark_swap): no network, an evaluation baseline
    warp       the demo generator's third input alone: the source's face warped onto the target crop's 68 landmarks
               and pasted with a hard edge (clipswap.face.landmark_swap.warp_paste), pasted back as the demo's output
               is; no network. The control that shows what the demo network adds over the warp it reads

A name wins over a file of the same name in the current folder (generator files always have a suffix).
Resolving loads nothing; it only finds files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from clipswap.checkpoints.pretrained import default_generator, find_published, require_demo, require_published
from clipswap.options import AUTO_MODEL, DEMO_MODEL, LANDMARKS_MODEL, WARP_MODEL
from clipswap.registry.detectors import DETECTORS
from clipswap.registry.encoders import ENCODERS

#: What the line says of the landmark model, which has no generator, identity encoder or weights.
LANDMARKS_LABEL = "landmarks (classical 68-point warp, no network)"
#: What the line says of the warp control (`--model warp`).
WARP_LABEL = "warp (the source warped onto the target's 68 landmarks, no network)"
#: The --model names that run no network.
NETWORK_FREE = (LANDMARKS_MODEL, WARP_MODEL)


@dataclass(frozen=True)
class ModelChoice:
    """What `--model` resolved to.

    Attributes:
        kind: "published" (a ClipSwap.h5 found in the checkpoint folders), "demo", "file" (a path the user gave),
            "landmarks" or "warp".
        path: the generator file; None for "landmarks" and "warp".
    """

    kind: str
    path: Path | None

    @property
    def is_generator(self) -> bool:
        return self.kind not in NETWORK_FREE

    @property
    def name(self) -> str:
        """A short name for reports: "demo", "landmarks", "warp" or the generator file's name."""
        return self.kind if self.kind in ("demo", *NETWORK_FREE) else Path(self.path).name


def resolve_model(model: str | Path | None) -> ModelChoice:
    """The model `--model` names (module docstring); None means "auto".

    Raises:
        MissingCheckpointError: a named file, the demo generator, or (for auto) both the published generator and
            the demo are absent; one sentence saying what is missing and where to get it.
    """
    name = AUTO_MODEL if model is None else str(model)
    if name in NETWORK_FREE:
        return ModelChoice(name, None)
    if name == DEMO_MODEL:
        return ModelChoice("demo", require_demo())
    if name == AUTO_MODEL:
        published = find_published("generator")
        return ModelChoice("published", published) if published else ModelChoice("demo", default_generator())
    return ModelChoice("file", require_published("generator", model))


def shown(path: str | Path) -> str:
    """`path` as the line shows it: relative to the current folder when inside it, else as given."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def identity_label(encoder: str, path: Path | None = None, clip_variant: str | None = None,
                   clip_preset: str | Path | None = None) -> str:
    """E.g. "SFace identity", "ArcFace-R50 identity from pretrained_ckpts/arcface/ArcFace-Res50.h5 + CLIP
    clip_vit_base_patch32 from presets/clip" (the encoder's label from its registry row; `path`: its user file)."""
    label = f"{ENCODERS.get(encoder).label if encoder in ENCODERS else encoder} identity"
    if path is not None:
        label += f" from {shown(path)}"
    if clip_variant is not None:
        label += f" + CLIP {clip_variant}" + (f" from {shown(clip_preset)}" if clip_preset is not None else "")
    return label


def generator_label(choice: ModelChoice, identity: str) -> str:
    """The line's generator part: "demo (pretrained_ckpts/demo/generator.keras, SFace identity)",
    "pretrained_ckpts/ClipSwap.h5 (published, ArcFace-R50 identity from ...)", "runs/g.keras (SFace identity)", or
    LANDMARKS_LABEL / WARP_LABEL for the models without a network (`identity` is then ignored)."""
    if not choice.is_generator:
        return WARP_LABEL if choice.kind == WARP_MODEL else LANDMARKS_LABEL
    if choice.kind == "demo":
        return f"demo ({shown(choice.path)}, {identity})"
    if choice.kind == "published":
        return f"{shown(choice.path)} (published, {identity})"
    return f"{shown(choice.path)} ({identity})"


def detector_label(kind: str, path: Path | None) -> str:
    """"YuNet" or "RetinaFace-R50 (pretrained_ckpts/retinaface/RetinaFace-Res50.h5)": the detector's label from its
    registry row, and its user file when it has one."""
    label = DETECTORS.get(kind).label
    return f"{label} ({shown(path)})" if path is not None else label


def models_line(generator: str, detector: str, runtime: str | None = None) -> str:
    """The one line every swap run prints: "generator: ..., detector: ...[, runtime: tf fp32]"."""
    line = f"generator: {generator}, detector: {detector}"
    return f"{line}, runtime: {runtime}" if runtime else line

