"""The FaceDancer discriminator: a residual conv net down to a single logit, or (ours) a patch variant that scores
each cell of an intermediate map."""

from __future__ import annotations

import keras

from clipswap.layers import InstanceNormalization

LEAKY_SLOPE = 0.2
#: Output widths of the resampling residual blocks relative to base_filters (64 at full size, six blocks at 256).
BLOCK_MULTIPLIERS = (2, 4, 8, 8, 8, 8, 8)
#: Side of the last feature map; the head's conv covers it (4x4 valid at every image size).
HEAD_SIDE = 4


def residual_down_block(x, filters: int, name: str):
    """shortcut = 1x1 conv -> avg-pool; main = IN -> LReLU -> 3x3 conv -> avg-pool -> IN -> LReLU -> 3x3 conv."""
    shortcut = keras.layers.Conv2D(filters, 1, padding="same", name=f"{name}_skip")(x)
    shortcut = keras.layers.AveragePooling2D(2, name=f"{name}_skip_pool")(shortcut)
    h = InstanceNormalization(epsilon=1e-3, name=f"{name}_in1")(x)
    h = keras.layers.LeakyReLU(LEAKY_SLOPE, name=f"{name}_act1")(h)
    h = keras.layers.Conv2D(filters, 3, padding="same", name=f"{name}_conv1")(h)
    h = keras.layers.AveragePooling2D(2, name=f"{name}_pool")(h)
    h = InstanceNormalization(epsilon=1e-3, name=f"{name}_in2")(h)
    h = keras.layers.LeakyReLU(LEAKY_SLOPE, name=f"{name}_act2")(h)
    h = keras.layers.Conv2D(filters, 3, padding="same", name=f"{name}_conv2")(h)
    return keras.layers.Add(name=f"{name}_out")([h, shortcut])


class Discriminator(keras.Model):
    """D(image) -> realness logit.

    Args:
        image_size: input side S, a power of two >= 32. There are log2(S) - 2 residual blocks so the last map is
            always 4x4 (six at 256, as published). A fixed six blocks would leave 1x1 maps at 64 px, where instance
            norm outputs zeros and the last block would get no gradient.
        base_filters: width of the first conv (64 at full size: 23,972,353 parameters at 256).
        patch_blocks: 0 (published): the residual blocks run down to 4x4 and a 4x4 conv gives one logit per image.
            k > 0 (ours): only the first k blocks run and a 1x1 conv after a LeakyReLU scores each cell of their
            (S / 2**k)^2 map, a patch discriminator in the manner of pix2pix: every cell's logit is judged on its own
            receptive field (plus the instance norms' per-image statistics), so a local fault (a ghosted mouth,
            tinted eyes) is scored where it is instead of being averaged with a whole face that is otherwise real.
        paired: False (published): D reads one image. True (ours): D reads an image and a reference image stacked
            on the channel axis ([B, S, S, 6]): real pairs are two photos of one person, fake pairs a swap and the
            source crop G read, so a swap that copies the source's pixels where the template puts them (a pairing
            two real photos never show: their poses and expressions differ) is evidence of a fake.

    Input: [B, S, S, 3] RGB in [-1, 1] ([B, S, S, 6], image then reference, when paired). Output: [B, 1] logit (no
    sigmoid), or [B, (S / 2**k)^2] with patch_blocks k.
    The residual block outputs are named f"{name}_block{i}_out" (i = 1..log2(S) - 2) so they can serve as feature taps
    (for example as the attribute extractor).
    """

    def __init__(self, image_size: int = 256, base_filters: int = 64, name: str = "discriminator",
                 patch_blocks: int = 0, paired: bool = False, **kwargs):
        n_blocks = int(image_size).bit_length() - 1 - 2
        if image_size < 32 or image_size != 2 ** (n_blocks + 2) or n_blocks > len(BLOCK_MULTIPLIERS):
            raise ValueError(f"discriminator image_size must be a power of two from 32 to 512, got {image_size}")
        if isinstance(patch_blocks, bool) or not isinstance(patch_blocks, int) or not 0 <= patch_blocks <= n_blocks:
            raise ValueError(f"patch_blocks must be an integer from 0 to {n_blocks} at {image_size} px, got "
                             f"{patch_blocks!r}")
        if not isinstance(paired, bool):
            raise ValueError(f"paired must be True or False, got {paired!r}")
        image = keras.Input((image_size, image_size, 6 if paired else 3), name="image")
        h = keras.layers.Conv2D(base_filters, 3, padding="same", name=f"{name}_stem")(image)
        for i, multiplier in enumerate(BLOCK_MULTIPLIERS[:patch_blocks or n_blocks], start=1):
            h = residual_down_block(h, multiplier * base_filters, f"{name}_block{i}")
        if patch_blocks:
            h = keras.layers.LeakyReLU(LEAKY_SLOPE, name=f"{name}_head_act")(h)
            h = keras.layers.Conv2D(1, 1, name=f"{name}_logit_conv")(h)
            cells = (image_size // 2 ** patch_blocks) ** 2
            logit = keras.layers.Reshape((cells,), name=f"{name}_logit")(h)
        else:
            h = keras.layers.Conv2D(8 * base_filters, HEAD_SIDE, padding="valid", name=f"{name}_head_conv")(h)
            h = keras.layers.LeakyReLU(LEAKY_SLOPE, name=f"{name}_head_act")(h)
            h = keras.layers.Conv2D(1, 1, name=f"{name}_logit_conv")(h)
            logit = keras.layers.Reshape((1,), name=f"{name}_logit")(h)
        super().__init__(inputs=image, outputs=logit, name=name, **kwargs)
        self.image_size = image_size
        self.base_filters = base_filters
        self.patch_blocks = patch_blocks
        self.paired = paired

    def get_config(self):
        config = {"image_size": self.image_size, "base_filters": self.base_filters, "name": self.name}
        if self.patch_blocks:
            config["patch_blocks"] = self.patch_blocks
        if self.paired:
            config["paired"] = True
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)
