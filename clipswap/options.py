"""The swap pipeline's choice lists, in a module that imports nothing heavy (the component lists come from the
TensorFlow-free registries), so the command lines can offer them without loading TensorFlow, OpenCV or the models
(`clipswap --help` stays fast)."""

from __future__ import annotations

from clipswap.registry.detectors import DETECTOR_CHOICES
from clipswap.registry.runtimes import FORMAT_CHOICES, RUNTIME_CHOICES

#: Face detectors (clipswap.registry.detectors); "auto": RetinaFace when its file is found, else YuNet. Live: a
#: detector registered later is in it.
DETECTORS = DETECTOR_CHOICES
#: Blends (clipswap.inference.blend): the release's feathered rectangle, a soft face-outline mask, or Poisson
#: blending (OpenCV seamlessClone) inside the face-outline mask.
BLEND_KINDS = ("published", "landmarks", "poisson")
#: Colour correction of the generated face before blending: none, or Reinhard (L*a*b* mean and spread of the
#: generated crop matched to the target crop's, inside the blend mask).
COLOR_CORRECTIONS = ("none", "reinhard")
#: Generator arithmetic (clipswap.inference.swapper.generator_in_precision).
PRECISIONS = ("fp32", "bf16")
#: Revision of the graph clipswap.models.generator.inference_generator builds: raise it when that graph changes, so no
#: cached export of an older one is run (clipswap.inference.runtime names its cache files with it; export.json
#: records it). 2: the folded down blocks (1, no suffix in the cache names: the trained graph as it is).
INFERENCE_GRAPH_REVISION = 2
#: --model names that are not files (clipswap.inference.choice.resolve_model): the default lookup (the published
#: ClipSwap.h5, else the demo generator), the shipped demo generator, the classical landmark swap, and the source
#: warped onto the target's 68 landmarks and pasted (the input the warp demo read: the baseline a network that warps
#: the source itself has to beat).
AUTO_MODEL = "auto"
DEMO_MODEL = "demo"
LANDMARKS_MODEL = "landmarks"
WARP_MODEL = "warp"
MODEL_NAMES = (AUTO_MODEL, DEMO_MODEL, LANDMARKS_MODEL, WARP_MODEL)
#: One Euro smoothing of tracked video faces (clipswap.face.tracking): the cutoff of a still face's landmarks, Hz.
SMOOTH_MIN_CUTOFF = 1.0
#: Cutoff rise per (face sizes per second) of speed. 4, not 1 (clipswap.evaluation.flicker, demo model): in a fast
#: camera pan (1 s of multi_face_1080p) beta 1 left the swapped face 29 % of its size off the face (raw detections
#: 11 %, beta 4 14 %, beta 10 13 %); on a talking head (4 s of talking_head_1) the landmark jitter the swap adds is
#: raw 0.45, beta 1 0.08, beta 4 0.04, beta 10 0.03 % of the face, and the face flicker it adds -0.02, 0.05 and 0.11
#: grey levels for beta 1, 4, 10 (raw 0.76).
SMOOTH_BETA = 4.0
#: Deployment formats of `clipswap export` (clipswap.registry.runtimes.FORMATS), live.
EXPORT_FORMATS = FORMAT_CHOICES
#: Largest absolute difference allowed between an exported float32 network and the Keras model on the check batch
#: (generator outputs in [-1, 1]; measured on a tiny generator: 1.5e-5 ONNX, 1.2e-5 LiteRT, 1e-5 OpenVINO f32,
#: 0 SavedModel).
EXPORT_TOLERANCE = 1e-3
#: Engines that run the generator in a swap (clipswap.registry.runtimes.RUNTIMES), live: auto picks TensorFlow on a
#: GPU, else OpenVINO when it is installed, else TensorFlow.
RUNTIMES = RUNTIME_CHOICES
