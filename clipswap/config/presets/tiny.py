"""tiny: small widths at 64 px for CPU runs and tests, SFace identity and no CLIP, so it runs offline. Not a recipe of
a paper: a generator small enough to train for minutes on this project's 2-core CPU, with the attribute and
adversarial weights lowered so that they do not bury the other terms (the preset's notes say why each number).

    clipswap train --data ALIGNED --run-dir RUN --preset tiny --steps 400

Data: `clipswap align` shards of any face folder (lfw_train aligned at 64 or 128 px).
Time: about 0.55-0.7 s a step at batch 8 on the 2-core CPU, 300 steps in under 4 minutes (README, 'Not yet done':
0.55 s a step over 4,500 steps).
Should reach: no identity transfer; over 4,500 steps the held-out identity loss goes 0.92 -> 0.88 and its
wrong-source control falls alike (0.889), retrieval stays at chance, 3-6 % (README, 'Not yet done').
"""

from __future__ import annotations

from clipswap.config.presets.preset import Preset
from clipswap.config.schema import (
    AugmentationConfig,
    DataConfig,
    LossOptions,
    LossWeights,
    ModelConfig,
    OptimiserConfig,
    ScheduleConfig,
)
from clipswap.config.tree import TrainConfig

_TINY = TrainConfig(
    preset="tiny",
    model=ModelConfig(
        image_size=64, base_filters=8, mapping_depth=2, mapping_width=32, identity_encoder="sface", clip_variant=None
    ),
    # contra 0: no CLIP in this preset; att 0.5 and adv 0.1: see the preset's notes.
    weights=LossWeights(id=10.0, rec=5.0, perceptual=0.2, contra=0.0, att=0.5, adv=0.1, r1_gamma=10.0),
    optimiser=OptimiserConfig(lr_g=5e-4, lr_d=5e-4, beta1=0.0, beta2=0.999),
    data=DataConfig(batch_size=8, shuffle_buffer=200),
    augmentation=AugmentationConfig(n_aug=2),
    loss=LossOptions(perceptual_network="identity", attribute_network="identity"),
    schedule=ScheduleConfig(
        steps=300,
        checkpoint_every=50,
        keep_checkpoints=3,
        log_every=5,
        image_every=50,
        eval_every=25,
        eval_batch_size=32,
    ),
)

#: The presets this module defines (clipswap.config.presets.PRESETS gathers them by name).
PRESETS: tuple[Preset, ...] = (
    Preset(
        "tiny",
        _TINY,
        "Small widths at 64 px for CPU runs and tests; SFace identity and no CLIP, so it runs offline.",
        command="clipswap train --data ALIGNED --run-dir RUN --preset tiny --steps 400",
        data="`clipswap align` shards of any face folder (lfw_train aligned at 64 or 128 px)",
        time="about 0.55-0.7 s a step at batch 8 on the 2-core CPU: 300 steps in under 4 minutes (README, 'Not yet "
        "done': 0.55 s a step over 4,500 steps)",
        reaches="no identity transfer: over 4,500 steps the held-out identity loss goes 0.92 -> 0.88 and its "
        "wrong-source control falls alike (0.889), retrieval stays at chance, 3-6 % (README, 'Not yet done')",
        notes=(
            "lambda_att 0.5 instead of 10: the squared difference of raw SFace stage activations starts in the "
            "hundreds (measured: 250 at step 5 with the two early stages A reads), so at 10 it buries every other term",
            "adversarial 0.1 and lr 5e-4: in a few hundred steps from scratch the discriminator otherwise wins at "
            "once (measured with adv 1, lr 2e-4: the held-out identity loss did not fall in 225 steps)",
            "eval batch 32: with 8 the held-out loss moved by +-0.03 between evaluations",
            "perceptual and attribute features from SFace's stages (no download needed)",
        ),
    ),
)
