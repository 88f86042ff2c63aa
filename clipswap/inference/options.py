"""The swap pipeline's choice lists, in a module that imports nothing, so the command lines can offer them without
loading TensorFlow, OpenCV or the models (`clipswap --help` stays fast)."""

from __future__ import annotations

#: Face detectors (clipswap.inference.detectors.build_detector); "auto": RetinaFace when its file is found, else YuNet.
DETECTORS = ("auto", "retinaface", "yunet")
#: Blends (clipswap.inference.blend): the release's feathered rectangle, a soft face-outline mask, or Poisson
#: blending (OpenCV seamlessClone) inside the face-outline mask.
BLEND_KINDS = ("published", "landmarks", "poisson")
#: Colour correction of the generated face before blending: none, or Reinhard (L*a*b* mean and spread of the
#: generated crop matched to the target crop's, inside the blend mask).
COLOR_CORRECTIONS = ("none", "reinhard")
#: Generator arithmetic (clipswap.inference.swapper.generator_in_precision).
PRECISIONS = ("fp32", "bf16")
#: --model names that are not files (clipswap.inference.choice.resolve_model): the default lookup (the published
#: ClipSwap.h5, else the demo generator), the shipped demo generator, and the classical landmark swap.
AUTO_MODEL = "auto"
DEMO_MODEL = "demo"
LANDMARKS_MODEL = "landmarks"
MODEL_NAMES = (AUTO_MODEL, DEMO_MODEL, LANDMARKS_MODEL)
