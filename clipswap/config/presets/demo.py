"""The shipped demo model's recipe (pretrained_ckpts/demo/, docs/demo_model.md) and the earlier demo it replaced.

demo: 128 px, base width 16, mapping 128 x 4, SFace identity; G reads the target and the source's face warped onto
the target's landmarks (source_warp) and outputs the target plus what it learned to carry over (residual); teacher
10 over the face and the background separately, no attribute term (docs/demo_model.md, runs W1 and W2).

    clipswap train --data PAIRS --run-dir RUN --preset demo

Data: `clipswap pairs` of lfw_train aligned at 128 px (`clipswap align --size 128`, 1 minute; `clipswap pairs
--count 40000 --heldout 100`, 5 minutes).
Time: 18 minutes, 750 steps at about 1.4 s a step, batch 8, bf16, on the 2-core CPU alone (README, 'The demo model').
Should reach, on 100 held-out pairs with the dlib judge at step 750: ID retrieval 56 %, closer to source 70 %, pose
error 6.09 degrees, expression error 4.69 px, SSIM 0.948 (README's demo table, docs/demo_model.md 'Run W2').

demo_refiner: the earlier demo model. G refines the landmark swap of the source onto the target (pre_swap, residual
output), teacher 5 over the whole image, 1,000 steps; its correction stayed under one grey level.

    clipswap train --data PAIRS --run-dir RUN --preset demo_refiner

Time: 25 minutes, 1,000 steps on the 2-core CPU (docs/demo_model.md).
Should reach, on 100 held-out pairs with the dlib judge at step 1,000: ID retrieval 63 %, closer to source 79 %,
pose error 7.52 degrees, expression error 5.25 px, SSIM 0.940 (README's demo table); the untrained pipeline scores
the same within noise.
"""

from __future__ import annotations

import dataclasses

from clipswap.config.presets.preset import Preset
from clipswap.config.schema import (
    AugmentationConfig,
    ComputeConfig,
    DataConfig,
    LossOptions,
    LossWeights,
    ModelConfig,
    OptimiserConfig,
    ScheduleConfig,
)
from clipswap.config.tree import TrainConfig

#: The shipped demo generator (pretrained_ckpts/demo/; the "demo" preset below says why each number).
DEMO_MODEL = ModelConfig(
    image_size=128,
    base_filters=16,
    mapping_depth=4,
    mapping_width=128,
    identity_encoder="sface",
    clip_variant=None,
    residual=True,
    conditioning="target+warp",
)

_DEMO = TrainConfig(
    preset="demo",
    model=DEMO_MODEL,
    weights=LossWeights(id=10.0, rec=5.0, perceptual=0.2, contra=0.0, att=0.0, adv=0.1, teacher=10.0, r1_gamma=10.0),
    optimiser=OptimiserConfig(lr_g=5e-4, lr_d=5e-4, beta1=0.0, beta2=0.999),
    data=DataConfig(batch_size=8),
    augmentation=AugmentationConfig(id_augment=True),
    loss=LossOptions(
        perceptual_network="identity",
        attribute_network="identity",
        teacher_face_only=True,
        teacher_background=True,
        perceptual_to_teacher=True,
    ),
    compute=ComputeConfig(precision="bf16"),
    schedule=ScheduleConfig(
        steps=750,
        checkpoint_every=250,
        keep_checkpoints=3,
        log_every=25,
        image_every=250,
        eval_every=125,
        eval_batch_size=32,
    ),
)

_PAIRS_128 = (
    "`clipswap pairs` of lfw_train aligned at 128 px: clipswap align --input ../shared/data/lfw_train "
    "--output ALIGNED --size 128 --workers 2 (1 minute); clipswap pairs --data ALIGNED --output PAIRS "
    "--count 40000 --heldout 100 --workers 2 (5 minutes)"
)

#: The presets this module defines (clipswap.config.presets.PRESETS gathers them by name).
PRESETS: tuple[Preset, ...] = (
    Preset(
        "demo",
        _DEMO,
        "The shipped demo model (pretrained_ckpts/demo/): 128 px, base width 16, mapping 128 x 4, SFace identity; "
        "G reads the target and the source's face warped onto the target's landmarks (source_warp) and outputs the "
        "target plus what it learned to carry over (residual). docs/demo_model.md, 'Run W1'.",
        command="clipswap train --data PAIRS --run-dir RUN --preset demo",
        data=_PAIRS_128,
        time="18 minutes: 750 steps at about 1.4 s a step, batch 8, bf16, on the 2-core CPU alone (README, 'The "
        "demo model')",
        reaches="on 100 held-out pairs, dlib judge, at step 750: ID retrieval 56 %, closer to source 70 %, pose "
        "error 6.09 degrees, expression error 4.69 px, SSIM 0.948 (README's demo table, docs/demo_model.md "
        "'Run W2'); the identity comes from the warp G reads (--model warp alone: 62 %, pose 8.39), G "
        "blends it",
        notes=(
            "128 px: SFace reads 112 px faces; 64 px upsampled carries little identity (docs/demo_model.md)",
            "base 16: about 1.4 s a batch-8 training step in bf16 on 2 CPU cores (the five SFace passes and the "
            "discriminator dominate)",
            "source_warp: a generator reading the raw source crop learned to copy the source's pose (22.8 "
            "degrees); given the warp it keeps the target's (docs/demo_model.md)",
            "teacher 10 over the face and the background separately (docs/demo_model.md: over the whole "
            "image a target copy is already within 0.07 of the teacher); no attribute term; id 10 with no warm-up: "
            "the warp gives the identity term pixels to pay for from the first step (held-out SFace gap 0.27 at "
            "step 125)",
            "750 steps: the shipped model (the step-750 checkpoint of a 2,000-step run). dlib on the 100 held-out "
            "pairs along that run: step 250 49 % / 62 % closer / pose 6.34, 750 56 % / 70 % / 6.09, 1,000 62 % / "
            "78 % / 7.85; 750 is the one inside every number of the bar with a margin (docs/demo_model.md)",
        ),
    ),
    Preset(
        "demo_refiner",
        dataclasses.replace(
            _DEMO,
            preset="demo_refiner",
            model=DEMO_MODEL.replace(conditioning="refine_landmark_swap"),
            weights=dataclasses.replace(_DEMO.weights, teacher=5.0),
            loss=dataclasses.replace(_DEMO.loss, teacher_face_only=False, teacher_background=False),
            schedule=dataclasses.replace(
                _DEMO.schedule, steps=1_000, checkpoint_every=500, image_every=500, eval_every=250
            ),
        ),
        "The earlier demo model: G refines the landmark swap of the source onto the target "
        "(pre_swap, residual output); its correction stayed under one grey level (docs/demo_model.md).",
        command="clipswap train --data PAIRS --run-dir RUN --preset demo_refiner",
        data=_PAIRS_128,
        time="25 minutes: 1,000 steps on the 2-core CPU (docs/demo_model.md)",
        reaches="on 100 held-out pairs, dlib judge, step 1,000: ID retrieval 63 %, closer to source 79 %, pose "
        "error 7.52 degrees, expression error 5.25 px, SSIM 0.940 (README's demo table); the "
        "untrained pipeline scores the same within noise",
        notes=(
            "teacher 5 over the whole image: with a residual G and the teacher as its input this is an L1 penalty "
            "on the correction, which keeps the background and the landmark swap's pose and expression",
            "1,000 steps: the model shipped then; its correction was shrinking (teacher L1 0.007 -> 0.003); "
            "teacher 1 let it grow to 0.5 grey levels, with no measured gain (docs/demo_model.md)",
        ),
    ),
)
