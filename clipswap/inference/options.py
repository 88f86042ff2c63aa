"""The swap pipeline's choice lists, in a module that imports nothing, so the command lines can offer them without
loading TensorFlow, OpenCV or the models (`clipswap --help` stays fast)."""

from __future__ import annotations

#: Face detectors (clipswap.inference.detectors.build_detector); "auto": RetinaFace when its file is found, else YuNet.
DETECTORS = ("auto", "retinaface", "yunet")
#: Blend masks (clipswap.inference.blend): the release's feathered rectangle, or a soft face-outline mask.
BLEND_KINDS = ("published", "landmarks")
#: Generator arithmetic (clipswap.inference.swapper.generator_in_precision).
PRECISIONS = ("fp32", "bf16")
