"""A `--model` of `clipswap evaluate` as the swap pipeline runs it: the SwapModel of clipswap.evaluation.job.

Image pairs go through one swapper of the resolved model (largest face only) and are timed per face; video pairs
are swapped as `clipswap swap` swaps them (tracking and smoothing on, the same --detail and --sharpen), but without
the watermark, since they are scored as generated, as the image swaps are.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clipswap.evaluation.swapping import FaceSwapperPairs, PairSwapper
from clipswap.inference.choice import LANDMARKS_LABEL, WARP_LABEL, ModelChoice, resolve_model


@dataclass(frozen=True)
class EvaluatedModel:
    """A resolved `--model` with its loaded generator and the swap options evaluate passes on; `load` builds one.

    Attributes:
        model: `--model` as given (video swaps resolve it again, as `clipswap swap` does).
        choice: what it resolved to.
        checkpoint: the loaded GeneratorCheckpoint; None for the landmark and warp baselines.
        files: {file key: path} of the user's model files (`--arcface` fills "arcface").
        clip_preset, detector, runtime, detail, sharpen, mirror_source, occlusion_mask, occluder: as `clipswap
            evaluate`'s options of those names.
    """

    model: str
    choice: ModelChoice
    checkpoint: Any
    files: Mapping[str, Path] = field(default_factory=dict)
    clip_preset: str | None = None
    detector: str = "auto"
    runtime: str = "auto"
    detail: float | None = None
    sharpen: float | None = None
    mirror_source: bool = True
    occlusion_mask: bool = False
    occluder: Path | None = None

    @classmethod
    def load(cls, model: str, **options) -> EvaluatedModel:
        """Resolve `model` (clipswap.inference.choice) and load its generator; `options` are the swap options above.
        Raises MissingCheckpointError or CheckpointError with one sentence."""
        from clipswap.checkpoints.native import load_any_generator

        choice = resolve_model(model)
        checkpoint = load_any_generator(choice.path) if choice.is_generator else None
        return cls(model, choice, checkpoint, **options)

    @property
    def name(self) -> str:
        return self.choice.name

    @property
    def training_encoder(self) -> str | None:
        return None if self.checkpoint is None else self.checkpoint.config.identity_encoder

    @property
    def untrained(self) -> str:
        return "warp baseline" if self.choice.kind == "warp" else "landmark baseline"

    def pair_swapper(self) -> tuple[PairSwapper, Any, str]:
        """(the swapper of the image pairs, its cost, the line naming the models)."""
        from clipswap.inference.pipeline import swapper_for
        from clipswap.inference.selection import FaceSelection
        from clipswap.models.conditioning import input_list, input_specs
        from clipswap.models.cost import model_cost

        swapper, line = swapper_for(self.choice, self.checkpoint, detector=self.detector, files=self.files,
                                    clip_preset=self.clip_preset, selection=FaceSelection.parse("largest"),
                                    runtime=self.runtime, detail=self.detail, sharpen=self.sharpen,
                                    mirror_source=self.mirror_source, occlusion_mask=self.occlusion_mask,
                                    occluder=self.occluder)
        if self.choice.kind == "warp":
            timing = ("one FaceSwapper.swap_frame call with the network replaced by its warped input: target "
                      "detection, alignment, 68 landmarks, warp and paste-back")
            return FaceSwapperPairs(swapper, timing), {"params": 0, "macs": None, "name": WARP_LABEL}, line
        if self.checkpoint is None:
            timing = "one LandmarkSwapper.swap_frame call: target detection, 68 landmarks, warp and Poisson blending"
            return FaceSwapperPairs(swapper, timing), {"params": 0, "macs": None, "name": LANDMARKS_LABEL}, line
        config, generator = self.checkpoint.config, self.checkpoint.model
        cost = model_cost("generator", generator, input_list(generator, input_specs(config)),
                          f"{config.image_size}px")
        return FaceSwapperPairs(swapper), cost, line

    def swap_video(self, source: Path, target: Path, output: Path, progress: bool) -> None:
        from clipswap.inference.pipeline import SwapRequest, run_swap

        run_swap(SwapRequest(source=source, target=target, output=output, model=self.model, files=self.files,
                             clip_preset=self.clip_preset, detector=self.detector, faces="largest",
                             runtime=self.runtime, detail=self.detail, sharpen=self.sharpen,
                             mirror_source=self.mirror_source, occlusion_mask=self.occlusion_mask,
                             occluder=self.occluder, progress=progress,
                             watermark=False))
