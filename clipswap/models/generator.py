"""The FaceDancer-style U-Net generator with AdaIN and AFFA decoder blocks (the paper's section III builds on it).

Graph, at 256 px with base width 64 (shapes [H, W, C]):

    target [256,256,3] -> x0 3x3 conv 64
    encoder: down 128, 256, 512, 512, 512 (each halves), then down 512 without resampling -> x6 [8,8,512]
    identity [D] -> mapping network -> w [mapping_width]
    decoder: u5 = up(x6, 512, no resample)
             u4, u3, u2, u1, u0 = fuse(skip x5..x1, decoder) -> up (doubles), filters 512, 512, 256, 128, 64
             out = fuse(x0, u0) -> up(3, no resample), the sum named "{name}_final"
    fuse is per level one of: no_skip (decoder feature only), concat, add, affa (learned mask m:
    (1 - m) * skip + m * decoder).

Every conv is stride 1, 'same', with bias; LeakyReLU slope 0.2; the output is linear (no tanh) and read as [-1, 1].
Inference runs the same function on a cheaper graph (inference_generator): each resampling down block's 3x3 conv +
2x2 average pool becomes one stride-2 4x4 conv (fold_pooled_kernel) and its 1x1 shortcut runs after the pool, which
cuts the release generator from 28.85 to 17.66 GMACs a face (0.61x). A change to that graph raises
clipswap.options.INFERENCE_GRAPH_REVISION.
With config.residual (ours) the output is target + out, the output block's convs starting at zero ("{name}_delta").
The inputs are those of config.conditioning's row (clipswap.models.conditioning): "target" (the target crop, or
the landmark swap of the source onto it: prepared outside the graph), "identity", and for a row with a source
preparation a third input "source", stacked with the target before x0 (ours). With config.source_level k > 0 the
source is not stacked: it runs through its own x0 conv and k down blocks ("{name}_source_*") and joins the target's
skip x_k (concatenation, then a 1x1 conv "{name}_source_join" back to x_k's width), so it reaches the decoder only at
S / 2**k. With a learned-flow preparation ("target+flow") the source crop is first warped onto the target by a
learned flow (flow_head), and G reads that warp as a "target+warp" generator reads the landmark warp; with the
"keypoints" flow network ("target+keypoint_flow") that flow runs through a GeometryNet of config.keypoint_head and
config.keypoint_size.
"""

from __future__ import annotations

import keras
import numpy as np

from clipswap.config import ModelConfig
from clipswap.layers import AdaIN, AdaptiveAttention, InstanceNormalization, NormalisedAdaIN
from clipswap.layers.flow_warp import FlowWarp, StopGradient, TemplateColourMatch, ThinPlateFlow
from clipswap.layers.shape_transfer import ShapeTransfer
from clipswap.models.conditioning import named_inputs
from clipswap.models.geometry import GeometryNet

LEAKY_SLOPE = 0.2
#: Filters per level relative to base_filters: x0, down1..down5, down6 (FaceDancer's get_generator).
LEVEL_MULTIPLIERS = (1, 2, 4, 8, 8, 8, 8)


def _conv(x, filters: int, kernel: int, name: str, activation=None):
    return keras.layers.Conv2D(filters, kernel, padding="same", activation=activation, name=name)(x)


def down_block(x, filters: int, resample: bool, name: str, fold_pooling: bool = False):
    """shortcut = 1x1 conv (+ avg-pool); main = IN -> LReLU -> 3x3 conv (+ avg-pool); out = main + shortcut.

    `fold_pooling` (inference form, resample only): the same function with the pool moved before the 1x1 shortcut
    (both are linear and per pixel or per channel, so they commute) and the 3x3 conv + pool as one stride-2 4x4 conv
    "{name}_conv_pooled" (its kernel: fold_pooled_kernel of "{name}_conv"'s).
    """
    if fold_pooling and resample:
        shortcut = keras.layers.AveragePooling2D(2, name=f"{name}_skip_pool")(x)
        shortcut = _conv(shortcut, filters, 1, f"{name}_skip")
    else:
        shortcut = _conv(x, filters, 1, f"{name}_skip")
        if resample:
            shortcut = keras.layers.AveragePooling2D(2, name=f"{name}_skip_pool")(shortcut)
    h = InstanceNormalization(epsilon=1e-3, name=f"{name}_in")(x)
    h = keras.layers.LeakyReLU(LEAKY_SLOPE, name=f"{name}_act")(h)
    if fold_pooling and resample:
        h = keras.layers.Conv2D(filters, 4, strides=2, padding="same", name=f"{name}_conv_pooled")(h)
    else:
        h = _conv(h, filters, 3, f"{name}_conv")
        if resample:
            h = keras.layers.AveragePooling2D(2, name=f"{name}_pool")(h)
    return keras.layers.Add(name=f"{name}_out")([h, shortcut])


def fold_pooled_kernel(kernel: np.ndarray) -> np.ndarray:
    """[4, 4, Cin, Cout] kernel of the stride-2 'same' conv that equals a stride-1 'same' conv with the 3x3 `kernel`
    [3, 3, Cin, Cout] followed by 2x2 average pooling, on an even height and width (the bias stays as it is).

    Output pixel (i, j) of the pair averages the conv at rows 2i, 2i + 1 and columns 2j, 2j + 1, so it reads input
    rows 2i - 1 .. 2i + 2 (the same for columns): tap (u, v) of the 4x4 kernel is the mean of the 3x3 taps
    (u - a, v - b) over a, b in {0, 1}. A stride-2 'same' conv of an even-sized input pads one row and column on
    each side, which is where the 3x3 conv's zero padding was. 16 taps at a quarter of the pixels against 9 at all
    of them: 0.44x the MACs.
    """
    kernel = np.asarray(kernel)
    if kernel.shape[:2] != (3, 3):
        raise ValueError(f"fold_pooled_kernel takes a 3x3 kernel, got {kernel.shape}")
    folded = np.zeros((4, 4, *kernel.shape[2:]), dtype=np.float64)
    for a in (0, 1):
        for b in (0, 1):
            folded[a:a + 3, b:b + 3] += kernel
    return (folded / 4.0).astype(kernel.dtype)


def up_block(x, w, filters: int, resample: bool, name: str, out_name: str | None = None, zero: bool = False,
             fused_norm: bool = False):
    """shortcut = 1x1 conv (+ bilinear x2); main = IN -> AdaIN(w) -> LReLU -> 3x3 conv (+ bilinear x2); sum.

    The convs run before upsampling, at the low resolution. `zero`: both convs start at zero (a residual output).
    """
    init = {"kernel_initializer": "zeros"} if zero else {}
    shortcut = keras.layers.Conv2D(filters, 1, padding="same", name=f"{name}_skip", **init)(x)
    if resample:
        shortcut = keras.layers.UpSampling2D(2, interpolation="bilinear", name=f"{name}_skip_up")(shortcut)
    if fused_norm:
        h = NormalisedAdaIN(epsilon=1e-3, name=f"{name}_in_adain")([x, w])
    else:
        h = InstanceNormalization(epsilon=1e-3, name=f"{name}_in")(x)
        h = AdaIN(name=f"{name}_adain")([h, w])
    h = keras.layers.LeakyReLU(LEAKY_SLOPE, name=f"{name}_act")(h)
    h = keras.layers.Conv2D(filters, 3, padding="same", name=f"{name}_conv", **init)(h)
    if resample:
        h = keras.layers.UpSampling2D(2, interpolation="bilinear", name=f"{name}_up")(h)
    return keras.layers.Add(name=out_name or f"{name}_out")([h, shortcut])


def fuse(kind: str, skip, decoder, name: str):
    """Combine the encoder skip feature with the decoder feature (same shape) before an up block."""
    if kind == "no_skip":
        return decoder
    if kind == "concat":
        return keras.layers.Concatenate(name=f"{name}_concat")([skip, decoder])
    if kind == "add":
        return keras.layers.Add(name=f"{name}_add")([skip, decoder])
    if kind == "affa":
        channels = decoder.shape[-1]
        h = keras.layers.Concatenate(name=f"{name}_affa_concat")([skip, decoder])
        h = _conv(h, max(1, channels // 4), 3, f"{name}_affa_conv")
        h = keras.layers.LeakyReLU(LEAKY_SLOPE, name=f"{name}_affa_act")(h)
        h = InstanceNormalization(epsilon=1e-3, name=f"{name}_affa_in")(h)
        mask = _conv(h, channels, 1, f"{name}_affa_mask", activation="sigmoid")
        return AdaptiveAttention(name=f"{name}_affa_fuse")([mask, skip, decoder])
    raise ValueError(f"unknown decoder block type {kind!r}")


def mapping_network(z, depth: int, width: int, name: str):
    """(depth - 1) x [Dense(width) -> LeakyReLU 0.2], then a linear Dense(width): z [B, D] -> w [B, width]."""
    h = z
    for i in range(depth):
        last = i == depth - 1
        h = keras.layers.Dense(width, name=f"{name}_dense{i}")(h)
        if not last:
            h = keras.layers.LeakyReLU(LEAKY_SLOPE, name=f"{name}_act{i}")(h)
    return h


#: Widths of the flow network's levels at S/2, S/4, S/8 and S/16, relative to base_filters.
FLOW_MULTIPLIERS = (2, 4, 4, 8)
#: The flow network's output unit, as a fraction of the crop side: its last conv (at S/4, starting at zero) says
#: displacements in sixteenths of the crop, so a unit step moves a pixel 8 px at 128 px.
FLOW_UNIT = 1.0 / 16.0


def flow_head(target, source, base_filters: int, make, network: str = "stacked",
              geometry_options: dict | None = None, shape: float = 0.0):
    """The source_flow generator's warp: (the source crop moved onto the target crop by a predicted dense flow and
    colour-matched to the target's face, [B, S, S, 3]; the flow, [B, S, S, 2] in pixels, FlowWarp's convention), the
    gradient flowing into the flow network.

    The "stacked" flow network reads both crops stacked (6 channels): four stride-2 3x3 convs (S/2 .. S/16, widths
    FLOW_MULTIPLIERS x base_filters, LeakyReLU), a 3x3 conv at S/16, then two bilinear x2 steps back to S/4, each
    concatenated with the encoder's feature there and convolved; a zero-initialised 3x3 conv gives 2 channels at
    S/4, upsampled bilinearly to S and scaled to pixels (FLOW_UNIT), so an untrained flow is the identity.

    Args:
        target, source: [B, S, S, 3] crops.
        base_filters: ModelConfig.base_filters.
        make: (name suffix, factory) -> the layer to apply: a builder passes factory(prefix + suffix) through, a
            caller reusing a built model returns the model's layer of that name (Generator.flow_warp).
        network: "stacked" (above) or "keypoints" (keypoint_flow).
        geometry_options: the "keypoints" network's GeometryNet keyword arguments (keypoint_flow; a Generator
            passes keypoint_geometry_options(config)); the stacked network ignores them.
        shape: the "keypoints" network's share of the source's face shape (ModelConfig.keypoint_shape; keypoint_flow).
    """
    if network == "keypoints":
        flow = keypoint_flow(target, source, make, geometry_options, shape)
    elif network == "stacked":
        flow = stacked_flow(target, source, base_filters, make)
    else:
        raise ValueError(f"unknown flow network {network!r}; expected 'stacked' or 'keypoints'")
    warped = make("flow_warp", lambda n: FlowWarp(name=n))([source, flow])
    return make("flow_colour", lambda n: TemplateColourMatch(name=n))([warped, target]), flow


#: The thin-plate spline of the keypoint flow is evaluated on a grid of this many cells a side per crop side
#: (S/4 at every size) and upsampled bilinearly.
KEYPOINT_FLOW_STRIDE = 4


def keypoint_geometry_options(config: ModelConfig) -> dict:
    """keypoint_flow's GeometryNet keyword arguments for `config`: {"head": config.keypoint_head, "input_size":
    config.keypoint_size} (the defaults give GeometryNet()'s graph, the shipped network's dense head at 96 px)."""
    return {"head": config.keypoint_head, "input_size": config.keypoint_size}


def keypoint_flow(target, source, make, geometry_options: dict | None = None, shape: float = 0.0):
    """The "keypoints" flow network: one GeometryNet (clipswap.models.geometry; the same weights for both crops, its
    normalisation statistics frozen, float32) finds dlib's 68 points in the target crop and in the source crop, and
    a thin-plate spline through the displacements (ThinPlateFlow) gives the flow, [B, S, S, 2] in pixels. Locating
    points in each crop on its own is what a landmark network learns quickly; the stacked network has to learn the
    correspondence of two faces at once (docs/demo_model.md). It starts from the geometry network clipswap ships
    (tools/pretrain_flow.py), not from scratch: random points give a random warp.

    `geometry_options`: GeometryNet's keyword arguments (default: none, the shipped network's dense head at 96 px);
    {"head": "heatmap"} builds the heatmap head (each point read off its own map by soft-argmax). A Generator
    passes keypoint_geometry_options(config) (ModelConfig.keypoint_head and keypoint_size).

    `shape` > 0 (ModelConfig.keypoint_shape): the spline's points on the target side carry that share of the
    source's face shape (clipswap.layers.shape_transfer.ShapeTransfer, layer "flow_shape"), so the source's features
    keep their own shape in the target's pose and expression."""
    size = target.shape[1]

    def geometry(name):
        previous = keras.config.dtype_policy()
        keras.config.set_dtype_policy("float32")  # points to a fraction of a pixel; the spline solves in float32
        try:
            return GeometryNet(**(geometry_options or {}), name=name)
        finally:
            keras.config.set_dtype_policy(previous)

    net = make("flow_geometry", geometry)
    target_points = net(target, training=False)["landmarks"]
    source_points = net(source, training=False)["landmarks"]
    if shape:
        target_points = make("flow_shape", lambda n: ShapeTransfer(shape, name=n))([target_points, source_points])
    return make("flow_spline", lambda n: ThinPlateFlow(size, size // KEYPOINT_FLOW_STRIDE, name=n))(
        [target_points, source_points])


def stacked_flow(target, source, base_filters: int, make):
    """The "stacked" flow network of flow_head: [B, S, S, 2] in pixels."""
    size = target.shape[1]
    widths = [m * base_filters for m in FLOW_MULTIPLIERS]

    def conv(x, filters, suffix, strides=1, zero=False):
        init = {"kernel_initializer": "zeros"} if zero else {}
        return make(suffix, lambda n: keras.layers.Conv2D(filters, 3, strides=strides, padding="same", name=n,
                                                          **init))(x)

    def act(x, suffix):
        return make(suffix, lambda n: keras.layers.LeakyReLU(LEAKY_SLOPE, name=n))(x)

    h = make("flow_stack", lambda n: keras.layers.Concatenate(name=n))([target, source])
    features = []
    for level, width in enumerate(widths, start=1):
        h = act(conv(h, width, f"flow_down{level}", strides=2), f"flow_down{level}_act")
        features.append(h)
    h = act(conv(h, widths[-1], "flow_middle"), "flow_middle_act")
    for level in (3, 2):
        h = make(f"flow_up{level}", lambda n: keras.layers.UpSampling2D(2, interpolation="bilinear", name=n))(h)
        h = make(f"flow_up{level}_concat", lambda n: keras.layers.Concatenate(name=n))([h, features[level - 1]])
        h = act(conv(h, widths[level - 1], f"flow_up{level}_conv"), f"flow_up{level}_act")
    flow = conv(h, 2, "flow_field", zero=True)
    flow = make("flow_upsample", lambda n: keras.layers.UpSampling2D(4, interpolation="bilinear", name=n))(flow)
    return make("flow_pixels", lambda n: keras.layers.Rescaling(size * FLOW_UNIT, name=n))(flow)


def generator_inputs(config: ModelConfig, target, identity, source=None) -> list:
    """The input list of a Generator with `config`, in its positional order: [target, identity], and the source
    input [B, S, S, 3] last when config.conditioning reads one (ValueError when it is needed and not given)."""
    return list(named_inputs(config, target, identity, source).values())


class Generator(keras.Model):
    """The swap generator G(target, identity).

    Args:
        config: a `ModelConfig` (image size, widths, decoder block types, identity input width).
        name: prefix of every layer name.
        fold_pooling: the inference form of each resampling down block (down_block): the same function with 0.44x
            the MACs of its 3x3 conv; its weights come from the trained form (inference_generator), not training.
        fused_norm: each up block's InstanceNormalization + AdaIN pair becomes one NormalisedAdaIN layer (named
            "{block}_in_adain"), which mixed-precision inference on TensorFlow runs as one fused kernel; the maths
            and the weights are the same (inference_generator builds it for bf16 and copies them in).
        dtype: the Keras dtype policy of every layer ("float32", "mixed_bfloat16", ...); None: the global policy.
            The layers are built under it and the global policy is left as it was.

    Inputs:
        target: [B, S, S, 3] float RGB in [-1, 1], the aligned target crop (S = config.image_size), or for a
            "refine_landmark_swap" conditioning its landmark swap.
        identity: [B, config.id_input_dim] float: the raw identity vector (ArcFace 512 or SFace 128), followed by
            the CLIP image embedding of the source when config.clip_variant is set.
        source (only for a conditioning with a source preparation): [B, S, S, 3] float RGB in [-1, 1], the
            source's aligned crop, or for "target+warp" the source's face warped onto the target's landmarks and
            pasted into the target crop (clipswap.face.landmark_swap.warp_paste; generator_inputs builds the list).

    Output:
        [B, S, S, 3] float RGB, linear, read as [-1, 1] (clip before display).

    Example:
        >>> g = Generator(ModelConfig())            # 22,473,254 parameters
        >>> y = g([target, identity])
    """

    def __init__(self, config: ModelConfig, name: str = "generator", fused_norm: bool = False,
                 dtype: str | None = None, fold_pooling: bool = False, **kwargs):
        previous = keras.config.dtype_policy()
        if dtype is not None:
            keras.config.set_dtype_policy(dtype)
        try:
            self._build_graph(config, name, fused_norm, fold_pooling, **kwargs)
        finally:
            keras.config.set_dtype_policy(previous)
        self.policy_name = dtype

    def _build_graph(self, config: ModelConfig, name: str, fused_norm: bool, fold_pooling: bool, **kwargs) -> None:
        size, base = config.image_size, config.base_filters
        filters = [m * base for m in LEVEL_MULTIPLIERS]
        target = keras.Input((size, size, 3), name="target")
        identity = keras.Input((config.id_input_dim,), name="identity")
        inputs = [target, identity]
        image = target
        source_features = None
        preparation = config.conditioning_row.source_preparation
        if preparation is not None:
            source = keras.Input((size, size, 3), name="source")
            inputs.append(source)
            if config.source_level:
                source_features = _conv(source, filters[0], 3, f"{name}_source_x0")
                for level in range(1, config.source_level + 1):
                    source_features = down_block(source_features, filters[level], True, f"{name}_source_down{level}",
                                                 fold_pooling)
            elif preparation.learned_flow:
                warped, _ = flow_head(target, source, base, lambda suffix, factory: factory(f"{name}_{suffix}"),
                                      preparation.flow_network, keypoint_geometry_options(config),
                                      config.keypoint_shape)
                # The flow is trained by its own term only (weights.flow): G's losses stop here.
                warped = StopGradient(name=f"{name}_flow_stop")(warped)
                image = keras.layers.Concatenate(name=f"{name}_stack")([target, warped])
            else:
                image = keras.layers.Concatenate(name=f"{name}_stack")([target, source])

        w = mapping_network(identity, config.mapping_depth, config.mapping_width, f"{name}_mapping")

        skips = [_conv(image, filters[0], 3, f"{name}_x0")]
        for level in range(1, 6):
            skips.append(down_block(skips[-1], filters[level], True, f"{name}_down{level}", fold_pooling))
            if level == config.source_level and source_features is not None:
                joined = keras.layers.Concatenate(name=f"{name}_source_concat")([skips[-1], source_features])
                skips[-1] = _conv(joined, filters[level], 1, f"{name}_source_join")
        bottleneck = down_block(skips[-1], filters[6], False, f"{name}_down6")

        fused = {"fused_norm": fused_norm}
        h = up_block(bottleneck, w, filters[5], False, f"{name}_up5", **fused)
        # u4 .. u0: fuse with skip x5 .. x1 at the current resolution, then upsample.
        for position, level in enumerate(range(4, -1, -1)):
            h = fuse(config.up_types[position], skips[level + 1], h, f"{name}_up{level}")
            h = up_block(h, w, filters[level], True, f"{name}_up{level}", **fused)
        h = fuse(config.up_types[5], skips[0], h, f"{name}_out")
        if config.residual:
            delta = up_block(h, w, 3, False, f"{name}_out", out_name=f"{name}_delta", zero=True, **fused)
            output = keras.layers.Add(name=f"{name}_final")([target, delta])
        else:
            output = up_block(h, w, 3, False, f"{name}_out", out_name=f"{name}_final", **fused)

        super().__init__(inputs=inputs, outputs=output, name=name, **kwargs)
        self.config_ = config
        self.fused_norm = bool(fused_norm)
        self.fold_pooling = bool(fold_pooling)

    @property
    def learned_flow(self) -> bool:
        """G warps its source input by its own flow network (a conditioning whose source preparation is "flow")."""
        preparation = self.config_.conditioning_row.source_preparation
        return bool(preparation and preparation.learned_flow)

    @property
    def separately_trained_variables(self) -> list:
        """The trainable variables G's output does not reach (the learned-flow warp, trained by the flow term)."""
        if not self.learned_flow:
            return []
        return [v for layer in self.layers if layer.name.startswith(f"{self.name}_flow_")
                for v in layer.trainable_variables]

    def flow_warp(self, target, source):
        """(warp, flow) of a learned-flow generator for `source` onto `target` ([B, S, S, 3] each; flow_head),
        through this model's own flow layers, with the gradient into them (what the flow term trains; G's own graph
        stops it). The keypoint flow's shape transfer is left out: the term compares the flow with each pair's
        landmark warp, which puts the source on the target's own points."""
        if not self.learned_flow:
            raise ValueError("flow_warp needs a source_flow generator (a conditioning with a learned flow)")
        return flow_head(target, source, self.config_.base_filters,
                         lambda suffix, factory: self.get_layer(f"{self.name}_{suffix}"),
                         self.config_.conditioning_row.source_preparation.flow_network,
                         keypoint_geometry_options(self.config_))

    def get_config(self):
        config = {"config": self.config_.to_dict(), "name": self.name, "fused_norm": self.fused_norm,
                  "fold_pooling": self.fold_pooling}
        if self.policy_name is not None:
            config["policy"] = self.policy_name
        return config

    @classmethod
    def from_config(cls, config):
        return cls(ModelConfig.from_dict(config["config"]), name=config.get("name", "generator"),
                   fused_norm=bool(config.get("fused_norm", False)), dtype=config.get("policy"),
                   fold_pooling=bool(config.get("fold_pooling", False)))


def inference_generator(model: Generator, bf16: bool = False) -> Generator:
    """The Generator `model` rebuilt in its inference form, which computes the same function faster: each
    resampling down block folded (fold_pooling), and with `bf16` under Keras' mixed_bfloat16 policy (bfloat16
    compute, float32 variables) with each up block's instance norm + AdaIN as one fused layer (fused_norm, kept too
    when `model` is fused). The weights are converted from `model` (copy_into_inference_form), which may itself be
    an inference form; training keeps the trained form."""
    twin = Generator(model.config_, name=model.name, fused_norm=bf16 or model.fused_norm, fold_pooling=True,
                     dtype="mixed_bfloat16" if bf16 else None)
    copy_into_inference_form(model, twin)
    return twin


def copy_into_inference_form(model: Generator, twin: Generator) -> None:
    """Copy a Generator's weights into its fused_norm and/or fold_pooling twin: layers of the same name one to one;
    each NormalisedAdaIN "{block}_in_adain" from the pair "{block}_in" (gamma, beta) + "{block}_adain" it replaces;
    each "{block}_conv_pooled" from "{block}_conv" (fold_pooled_kernel; the same bias). A `model` that is itself
    fused or folded gives those layers as they are."""
    names = {layer.name for layer in model.layers}
    for layer in twin.layers:
        if layer.name in names:
            if layer.weights:
                layer.set_weights(model.get_layer(layer.name).get_weights())
        elif isinstance(layer, NormalisedAdaIN):
            block = layer.name.removesuffix("_in_adain")
            layer.set_weights(model.get_layer(f"{block}_in").get_weights()
                              + model.get_layer(f"{block}_adain").get_weights())
        elif layer.name.endswith("_conv_pooled"):
            kernel, bias = model.get_layer(layer.name.removesuffix("_pooled")).get_weights()
            layer.set_weights([fold_pooled_kernel(kernel), bias])
        elif layer.weights:
            raise ValueError(f"{model.name} has no layer {layer.name!r} to copy into its inference form")
