"""The occluder network: where something covers the face of an aligned crop (sunglasses, a hand, a microphone).

A face swap should replace the face, not what lies in front of it: pasted over a target's sunglasses, a generated
face shows the source's eyes through them, and the swap's landmarks (and every pose fit read from them) follow the
eyes instead of the glasses (docs/demo_model.md). The swap pipeline multiplies its paste-back mask by
1 - occlusion so the target's own pixels stay wherever this network sees an occluder (FaceSwapper's
`occluder`). clipswap trains it itself (`clipswap train-occluder`) on aligned crops with synthetic occluders drawn
over them (clipswap.training.occluder): no labelled occlusion data exists offline.

Graph (a small U-Net of MobileNet-v1 blocks, clipswap.models.geometry.separable_block; 48,673 parameters at the
default widths):

    images [B, S, S, 3] RGB in [-1, 1], any S -> bilinear resize to input_size (96)
    stem        3x3 conv stride 2, BN, ReLU                                    48 x 48 x 16
    encoder     separable blocks of widths (32, 64, 128, 128), each stride 2    24, 12, 6, 3
    decoder     x2 bilinear upsampling added to a 1x1 projection of the encoder map at that stride, then a separable
                block (width 32), back to stride 2                            48 x 48 x 32
    logits      1x1 conv -> 1 map, bilinear x2 to input_size, sigmoid

Output: [B, input_size, input_size, 1] float32 in [0, 1], the probability that each pixel is covered by an occluder
(the caller resizes it to its crop).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers

from clipswap.models.geometry import separable_block

#: Side the network reads (any crop is resized to it) and the encoder's widths (each block halves the side).
INPUT_SIZE = 96
WIDTHS = (32, 64, 128, 128)
DECODER_WIDTH = 32


class OccluderNet(keras.Model):
    """Per-pixel occlusion probability of aligned faces (module docstring).

    Args:
        input_size: side the network reads, a multiple of 2 ** (len(widths) + 1).
        widths: the encoder blocks' widths, each block at stride 2.
        stem_width: the stem convolution's width.
        decoder_width: the decoder blocks' width.

    Example:
        >>> net = OccluderNet()
        >>> net(images).shape            # images [B, 128, 128, 3] in [-1, 1]
        (B, 96, 96, 1)
    """

    def __init__(self, input_size: int = INPUT_SIZE, widths: Sequence[int] = WIDTHS, stem_width: int = 16,
                 decoder_width: int = DECODER_WIDTH, **kwargs):
        stride = 2 ** (len(widths) + 1)
        if not widths or input_size < stride or input_size % stride:
            raise ValueError(f"input_size must be a positive multiple of {stride} (the encoder's stride) and "
                             f"widths non-empty, got {input_size} and {tuple(widths)}")
        images = keras.Input((None, None, 3), name="images")
        x = layers.Resizing(input_size, input_size, interpolation="bilinear", name="resize")(images)
        x = layers.Conv2D(stem_width, 3, strides=2, padding="same", use_bias=False, name="stem")(x)
        x = layers.BatchNormalization(name="stem_bn")(x)
        x = layers.ReLU(name="stem_relu")(x)
        levels = [x]
        for k, width in enumerate(widths):
            x = separable_block(x, width, 2, f"block{k + 1}")
            levels.append(x)
        h = layers.Conv2D(decoder_width, 1, name=f"lateral{len(widths)}")(levels[-1])
        for k in range(len(widths) - 1, -1, -1):
            h = layers.UpSampling2D(2, interpolation="bilinear", name=f"up{k}")(h)
            skip = layers.Conv2D(decoder_width, 1, name=f"lateral{k}")(levels[k])
            h = layers.Add(name=f"merge{k}")([h, skip])
            h = separable_block(h, decoder_width, 1, f"decoder{k}")
        logits = layers.Conv2D(1, 1, name="logits")(h)
        logits = layers.UpSampling2D(2, interpolation="bilinear", name="up_out")(logits)
        occlusion = layers.Activation("sigmoid", dtype="float32", name="occlusion")(logits)
        super().__init__(inputs=images, outputs=occlusion, **kwargs)
        self.input_size = int(input_size)
        self.widths = tuple(int(w) for w in widths)
        self.stem_width = int(stem_width)
        self.decoder_width = int(decoder_width)

    def get_config(self) -> dict:
        return {"input_size": self.input_size, "widths": list(self.widths), "stem_width": self.stem_width,
                "decoder_width": self.decoder_width, "name": self.name, "trainable": self.trainable}

    @classmethod
    def from_config(cls, config: dict) -> OccluderNet:
        return cls(**config)


__all__ = ["DECODER_WIDTH", "INPUT_SIZE", "WIDTHS", "OccluderNet"]
