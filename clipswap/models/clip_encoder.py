"""The CLIP image encoder: keras-hub's CLIPVisionEncoder + class-token pooling + projection, fed from [-1, 1] RGB.

Used two ways: its embedding of the source image is concatenated to the identity vector (the paper's z_id), and it
scores swaps in the CLIP contrastive loss (paper eqs. 2-5). Pretrained weights come from a keras-hub CLIP preset
(a local directory or a handle such as "clip_vit_base_patch32" when online); without one the encoder is randomly
initialised, which is only useful for tests and cost counting.
"""

from __future__ import annotations

import logging

import keras
from keras import ops

from clipswap.config import CLIP_SPECS

log = logging.getLogger(__name__)

#: OpenAI CLIP's image normalisation (Radford et al., ICML 2021), which CLIPStyler feeds CLIP with too.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

@keras.saving.register_keras_serializable(package="clipswap")
class ClipPreprocess(keras.layers.Layer):
    """[-1, 1] RGB [B, H, W, 3] -> bicubic resize to `image_size` -> [0, 1] -> (x - CLIP mean) / CLIP std.

    Differentiable, so the contrastive loss can back-propagate into the generator's output.
    """

    def __init__(self, image_size: int = 224, **kwargs):
        super().__init__(**kwargs)
        self.image_size = int(image_size)

    def call(self, images):
        x = ops.cast(images, "float32")
        x = ops.image.resize(x, (self.image_size, self.image_size), interpolation="bicubic", antialias=False)
        x = (x + 1.0) * 0.5
        x = (x - ops.convert_to_tensor(CLIP_MEAN)) / ops.convert_to_tensor(CLIP_STD)
        return ops.cast(x, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.image_size, self.image_size, 3)

    def get_config(self):
        return {**super().get_config(), "image_size": self.image_size}


@keras.saving.register_keras_serializable(package="clipswap")
class ClassTokenPool(keras.layers.Layer):
    """[B, T, D] -> [B, D]: the class token, as CLIP's vision pooler does."""

    def call(self, sequence):
        return sequence[:, 0, :]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])


def build_clip_image_encoder(
    variant: str = "clip_vit_base_patch32", input_size: int = 256, name: str = "clip"
) -> keras.Model:
    """A randomly initialised CLIP image encoder.

    Args:
        variant: a key of CLIP_SPECS.
        input_size: side of the [-1, 1] RGB images it is fed (the aligned crop size).

    Returns:
        keras.Model: [B, input_size, input_size, 3] RGB in [-1, 1] -> [B, projection_dim] image embedding
        (not normalised; the losses normalise).
    """
    import keras_hub  # keras-hub is slow to import and only needed here

    if variant not in CLIP_SPECS:
        raise ValueError(f"unknown CLIP variant {variant!r}; choose one of {sorted(CLIP_SPECS)}")
    spec = CLIP_SPECS[variant]
    size = spec["image_size"]
    images = keras.Input((input_size, input_size, 3), name="images")
    x = ClipPreprocess(size, name=f"{name}_preprocess")(images)
    tower = keras_hub.models.CLIPVisionEncoder(
        patch_size=spec["patch_size"],
        hidden_dim=spec["hidden_dim"],
        num_layers=spec["num_layers"],
        num_heads=spec["num_heads"],
        intermediate_dim=spec["intermediate_dim"],
        image_shape=(size, size, 3),
        name=f"{name}_vision_encoder",
    )
    x = tower({"images": x})
    x = ClassTokenPool(name=f"{name}_pool")(x)
    embedding = keras.layers.Dense(spec["projection_dim"], use_bias=False, name=f"{name}_projection")(x)
    return keras.Model(images, embedding, name=name)
