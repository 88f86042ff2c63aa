"""The occlusion mask of the swap: what covers each target face (clipswap.models.occluder) stays the target's.

FaceSwapper multiplies each face's paste-back mask by 1 - occlusion, so a target's sunglasses, hand or microphone
are pasted back over the generated face instead of being replaced by it (the swap pipeline's --occlusion-mask).
"""

from __future__ import annotations

import cv2
import keras
import numpy as np

from clipswap.models.compile import compile_predict

#: Blur of the occlusion map in pixels of a 128 px crop (scaled with the crop; our choice): the map is predicted at
#: the network's side and resized, so its edge is softened by about a pixel, as the paste-back mask's is.
OCCLUSION_FEATHER = 1.0
#: Probabilities at or below this count as uncovered and those at or above 1 - OCCLUSION_FLOOR as covered, linear
#: between (0.5 stays 0.5): the network's doubts on a clean face (up to about 0.3 over the made-up eyes of sharp
#: photos, docs/demo_model.md) would otherwise mix part of the target's face into the swap, and a swap's measured
#: landmarks move with changes far below one grey level.
OCCLUSION_FLOOR = 0.25


class OcclusionMasker:
    """Occlusion maps of aligned target crops.

    Args:
        network: an OccluderNet (clipswap.checkpoints.occluder.load_occluder).

    Calling it: crops [N, S, S, 3] uint8 RGB -> [N, S, S] float32 in [0, 1], how much each crop pixel is covered by
    an occluder: the network's probability resized to S, its faint values cut (OCCLUSION_FLOOR) and its edge
    softened (OCCLUSION_FEATHER); exactly 0 wherever the network is sure enough that nothing covers the face.
    """

    def __init__(self, network: keras.Model):
        self.network = network
        self._predict = compile_predict(network, input_signature=[((None, None, None, 3), "float32")])

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        crops = np.asarray(crops)
        if crops.ndim != 4 or crops.shape[-1] != 3 or crops.shape[1] != crops.shape[2]:
            raise ValueError(f"OcclusionMasker takes square RGB crops [N, S, S, 3], got {crops.shape}")
        if not len(crops):
            return np.zeros(crops.shape[:3], np.float32)
        side = crops.shape[1]
        maps = np.asarray(keras.ops.convert_to_numpy(self._predict(crops.astype(np.float32) / 127.5 - 1.0)))
        sigma = OCCLUSION_FEATHER * side / 128
        resized = np.stack([cv2.resize(m[..., 0], (side, side), interpolation=cv2.INTER_LINEAR) for m in maps])
        covered = np.clip((resized - OCCLUSION_FLOOR) / (1.0 - 2.0 * OCCLUSION_FLOOR), 0.0, 1.0)
        return np.stack([cv2.GaussianBlur(m, (0, 0), sigma) if m.any() else m for m in covered]).astype(np.float32)


__all__ = ["OCCLUSION_FEATHER", "OCCLUSION_FLOOR", "OcclusionMasker"]
