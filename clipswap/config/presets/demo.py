"""The shipped demo model's recipe (pretrained_ckpts/demo/, docs/demo_model.md) and the earlier demos it replaced.

demo: 128 px, base width 16, mapping 128 x 4, SFace identity; G reads the target and the source's crop, which it
warps onto the target by its own keypoint flow (a heatmap landmark network at 128 px and a thin-plate spline, carrying
0.6 of the source's face shape), and outputs the target plus what it learned to carry over (residual); teacher 10
over the face and the background separately, the flow term at 1, the geometry term (eq. 9 with the landmark network
as A) at 4 (docs/demo_model.md, runs K21-K23). It starts from a pretrained flow with fitted shape directions and
reads the geometry network its recipe trains, so tools/demo_recipe.py runs it from the photos, its train stage being

    clipswap train --data PAIRS --run-dir RUN --preset demo --set attribute_file=GEOMETRY --init-generator FLOW

    python tools/demo_recipe.py --data ../shared/data/lfw_train --runs RUNS --precision fp32 --steps 1125

Time: about 4.5 hours on the 2-core AMD EPYC (AVX2 only, fp32): the geometry network 2.2 hours, the training's
1,125 steps about 3-4 s each (docs/demo_model.md, 'Runs K21 and K22').
Should reach, on 100 held-out pairs with the dlib judge at step 1,125 (--sharpen 1, the source mirrored towards the
target's side): ID retrieval 84 %, closer to source 90 %, pose error 7.09 degrees, expression error 4.71 px,
sharpness 1.09 (README's demo table, docs/demo_model.md 'Run K23').

demo_warp: the demo before it (run W2). G reads the target and the source's face warped onto the target's landmarks
by dlib (source_warp); 750 steps. ID retrieval 56 %, closer to source 70 %, pose error 6.09 degrees, expression error
4.69 px, SSIM 0.948.

    clipswap train --data PAIRS --run-dir RUN --preset demo_warp

demo_refiner: the demo before that. G refines the landmark swap of the source onto the target (pre_swap, residual
output), teacher 5 over the whole image, 1,000 steps; its correction stayed under one grey level.

    clipswap train --data PAIRS --run-dir RUN --preset demo_refiner

Data: `clipswap pairs` of lfw_train aligned at 128 px (`clipswap align --size 128`, 1 minute; `clipswap pairs
--count 40000 --heldout 100`, 5-12 minutes).
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

#: The demo before the shipped one (run W2; preset "demo_warp"): G reads the target and the source's face warped onto
#: the target's landmarks by dlib. `--model warp` (clipswap.inference.pipeline) reads its image size and identity.
WARP_DEMO_MODEL = ModelConfig(
    image_size=128,
    base_filters=16,
    mapping_depth=4,
    mapping_width=128,
    identity_encoder="sface",
    clip_variant=None,
    residual=True,
    conditioning="target+warp",
)

#: The shipped demo generator (pretrained_ckpts/demo/; the "demo" preset below says why each number): the warp
#: demo's network with the source's crop warped by G's own keypoint flow, which needs no landmarker at swap time.
DEMO_MODEL = WARP_DEMO_MODEL.replace(
    conditioning="target+keypoint_flow",
    keypoint_head="heatmap",
    keypoint_size=128,
    keypoint_shape=0.6,
)

_DEMO_WARP = TrainConfig(
    preset="demo_warp",
    model=WARP_DEMO_MODEL,
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

_DEMO = dataclasses.replace(
    _DEMO_WARP,
    preset="demo",
    model=DEMO_MODEL,
    weights=dataclasses.replace(_DEMO_WARP.weights, att=4.0, flow=1.0),
    loss=dataclasses.replace(_DEMO_WARP.loss, attribute_network="landmarks"),
    compute=ComputeConfig(precision="fp32"),
    schedule=dataclasses.replace(_DEMO_WARP.schedule, steps=1_125, checkpoint_every=125),
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
        "G reads the target and the source's crop, warped onto the target by its own keypoint flow (heatmap "
        "landmarks, a thin-plate spline, 0.6 of the source's face shape), and outputs the target plus what it "
        "learned to carry over (residual). docs/demo_model.md, 'Run K23'.",
        command="clipswap train --data PAIRS --run-dir RUN --preset demo --set attribute_file=GEOMETRY "
        "--init-generator FLOW",
        data=_PAIRS_128 + "; GEOMETRY is a heatmap geometry network trained on those pairs and FLOW a pretrained "
        "keypoint flow with fitted shape directions: python tools/demo_recipe.py --data ../shared/data/lfw_train "
        "--runs RUNS --precision fp32 makes both and runs this command",
        time="about 4.5 hours on the 2-core AMD EPYC (AVX2 only, fp32): the geometry network 2.2 hours, 1,125 "
        "training steps at 3-4 s each (docs/demo_model.md, 'Runs K21 and K22')",
        reaches="on 100 held-out pairs, dlib judge, at step 1,125 with --sharpen 1 and the source mirrored towards "
        "the target's side: ID retrieval 84 %, closer to source 90 %, pose error 7.09 degrees, expression error "
        "4.71 px, sharpness 1.09; on a fresh sample of held-out people 92 %, 94 %, 7.59 degrees, 4.30 px "
        "(README's demo table, docs/demo_model.md 'Run K23')",
        notes=(
            "the keypoint flow: G warps the source's crop itself, by one landmark network run on both crops and a "
            "thin-plate spline, so a swap needs no dlib; a generator reading the raw source crop overlays the "
            "source's features (runs A1-B3), one reading a landmark warp adds no identity of its own (W2)",
            "keypoint shape 0.6: the source's face shape carried in the target's pose; the whole shape (1.0) moves "
            "the pose error up, 0.4 costs 5 points of retrieval (runs K13-K20, K23)",
            "the geometry term at 4 (eq. 9, A = the landmark network): at 8 the pose error does not fall in 250 "
            "steps and retrieval drops (K25); at 10 dlib sees the target (K9)",
            "fp32: the run trained on an AVX2-only CPU, where bf16 is emulated and 7x slower",
            "1,125 steps: the checkpoint of run K23 inside the identity half of the bar on both protocols with the "
            "lowest pose error; later checkpoints buy identity with pose (docs/demo_model.md)",
        ),
    ),
    Preset(
        "demo_warp",
        _DEMO_WARP,
        "The demo before the shipped one (run W2): 128 px, base width 16, mapping 128 x 4, SFace identity; "
        "G reads the target and the source's face warped onto the target's landmarks (source_warp) and outputs the "
        "target plus what it learned to carry over (residual). docs/demo_model.md, 'Runs W1 and W2'.",
        command="clipswap train --data PAIRS --run-dir RUN --preset demo_warp",
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
            _DEMO_WARP,
            preset="demo_refiner",
            model=WARP_DEMO_MODEL.replace(conditioning="refine_landmark_swap"),
            weights=dataclasses.replace(_DEMO_WARP.weights, teacher=5.0),
            loss=dataclasses.replace(_DEMO_WARP.loss, teacher_face_only=False, teacher_background=False),
            schedule=dataclasses.replace(
                _DEMO_WARP.schedule, steps=1_000, checkpoint_every=500, image_every=500, eval_every=250
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
