"""The frozen networks the training loss reads: the identity encoder R with its tapped stages (IdentityNetwork), and
where the perceptual and attribute terms take their features (FeatureSource).

Neither holds a trainable weight nor takes a gradient step; clipswap.training.loss.SwapLoss calls them in its G pass.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import keras
from keras import ops

from clipswap.face.templates import ARCFACE_SIZE
from clipswap.losses.identity import EMBEDDING

#: How many leading stages the default attribute network A (attribute_network="identity") reads: the stride-4 and
#: stride-8 maps (ArcFace conv2/conv3, SFace conv_4/conv_6), which hold pose, expression, lighting and layout. The
#: deeper stages carry the identity itself: matching them to the TARGET on every swap pulls directly against the
#: identity loss (FaceDancer's IFSR lets even conv4 drift by a margin for this reason; Rosberg et al., WACV 2023).
#: The perceptual loss, which only compares same-identity pairs, still reads every stage.
ATTRIBUTE_STAGE_COUNT = 2
#: The backend's tensors (tf.Tensor, jax.Array).
Tensor = object


class IdentityNetwork:
    """The frozen identity encoder R read at once for its embedding and any intermediate layers.

    Feeds R the way FaceDancer's code feeds ArcFace: images [B, S, S, 3] RGB in [-1, 1] ->
    (x + 1) / 2 -> bilinear resize to 112 -> R. The S-px crops are ArcFace-template crops, so the resized crop is
    the 112 ArcFace crop both ArcFace-R50 and SFace expect.

    Args:
        model: functional keras.Model, [B, 112, 112, 3] RGB in [0, 1] -> [B, D] raw embedding.
        layer_names: intermediate layers to return too (perceptual/attribute/IFSR features).
        input_size: side fed to the model.

    Calling returns {layer name: [B, h, w, c], ..., "embedding": [B, D]} (float32).
    """

    def __init__(self, model: keras.Model, layer_names: Sequence[str] = (), input_size: int = ARCFACE_SIZE):
        known = {layer.name for layer in model.layers}
        missing = [name for name in layer_names if name not in known]
        if missing:
            raise ValueError(f"the identity encoder {model.name!r} has no layers {missing}")
        self.model = model
        self.layer_names = tuple(dict.fromkeys(layer_names))
        outputs = {name: model.get_layer(name).output for name in self.layer_names}
        outputs[EMBEDDING] = model.output
        self.tapped = keras.Model(model.input, outputs, name=f"{model.name}_tapped")
        self.input_size = int(input_size)

    def __call__(self, images: Tensor) -> dict[str, Tensor]:
        x = (ops.cast(images, "float32") + 1.0) * 0.5
        # No antialiasing (TensorFlow's tf.image.resize default), so both backends resample alike.
        x = ops.image.resize(x, (self.input_size, self.input_size), interpolation="bilinear", antialias=False)
        outputs = self.tapped(x, training=False)
        return {name: ops.cast(value, "float32") for name, value in outputs.items()}


@dataclass(frozen=True)
class FeatureSource:
    """Where a feature loss reads its features: layers of the identity pass (shared, no extra forward pass) or
    its own extractor (images [B, S, S, 3] in [-1, 1] -> list of [B, ...] tensors, e.g. perceptual.vgg16_features).

    `layer_weights` are per-layer weights for the perceptual loss (None = all 1); `compare` replaces the attribute
    term's comparison (None = attribute_loss).
    """

    identity_layers: tuple[str, ...] = ()
    extractor: Callable[[Tensor], list[Tensor]] | None = None
    layer_weights: tuple[float, ...] | None = None
    #: How the attribute term compares (target features, swap features) when it is not eq. 9's plain squared
    #: difference (the geometry network's aligned landmarks: clipswap.losses.geometry.geometry_attribute_loss).
    compare: Callable[[list[Tensor], list[Tensor]], Tensor] | None = None
    #: The first feature is 68 landmarks (the geometry rows): a generator whose keypoint flow carries the source's
    #: shape (ModelConfig.keypoint_shape) is compared with the target's points moved by that same shape transfer
    #: (clipswap.losses.attribute.attribute_term), not with the target's own shape.
    landmarks_first: bool = False

    def __post_init__(self) -> None:
        if bool(self.identity_layers) == (self.extractor is not None):
            raise ValueError("a FeatureSource takes either identity_layers or an extractor, exactly one")

    def features(self, images: Tensor, identity_outputs: dict[str, Tensor]) -> list[Tensor]:
        if self.identity_layers:
            return [identity_outputs[name] for name in self.identity_layers]
        return [ops.cast(f, "float32") for f in self.extractor(images)]
