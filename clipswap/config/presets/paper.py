r"""The ClipSwap paper's recipe, its offline twin and the layout of the published ClipSwap.h5.

paper: ClipSwap as the paper describes it. The identity input concatenates ArcFace-R50 (512) and the CLIP ViT-B/32
image embedding (512) (section III); lambda id 10, rec 5, p 0.2, contra 0.3, att 10, Adam(0, 0.999), lr 1e-4,
batch 10, 300,000 steps at 256 px (section 'Implementation details'); mapping 512 is FaceDancer's train.py default
and the best fit of the paper's 174.23 M parameters (Table I); adversarial 1, R1 10 and the VGG16 perceptual network
are FaceDancer's (the paper gives none). Needs the ArcFace file and a CLIP preset.

    clipswap train --data ALIGNED_256 --run-dir RUN --preset paper --arcface ArcFace-Res50.h5 \
        --clip-preset clip_vit_base_patch32 --precision bf16

Data: `clipswap align --size 256` shards of a face data set (the README's example: VGGFace2).
Time: not measured for a run (300,000 steps need a GPU); one step at batch 2 takes 10.1 s fp32, 4.4 s bf16 on this
2-core CPU (benchmarks/results/train_step.json).
Should reach: the paper's FF++ figures, ID retrieval 98.91 %, pose error 1.73, expression error 5.76, SSIM 0.98 (as
quoted in the README's demo table; CosFace/Hopenet judges); not reproduced here.

paper-offline: every number as paper, but SFace identity (128-d, embedded) replaces ArcFace-R50 and the CLIP input
and contrastive term are off, so it needs no file (VGG16's ImageNet weights are still read). Not the paper's model;
time and result not measured.

    clipswap train --data ALIGNED_256 --run-dir RUN --preset paper-offline --precision bf16

release: the published ClipSwap.h5 / FaceDancer get_generator layout, ArcFace-only 512-d input and mapping 256
(22,473,254 parameters; README, Presets). How the release was trained is not published: training uses the paper's
numbers with contra 0. Needs the ArcFace file (no offline twin: the layout is ArcFace's); time and result not measured.

    clipswap train --data ALIGNED_256 --run-dir RUN --preset release --arcface ArcFace-Res50.h5
"""

from __future__ import annotations

import dataclasses

from clipswap.config.presets.preset import Preset
from clipswap.config.schema import DataConfig, LossWeights, ModelConfig, OptimiserConfig, ScheduleConfig
from clipswap.config.tree import TrainConfig

PAPER_MODEL = ModelConfig(mapping_width=512, identity_encoder="arcface", clip_variant="clip_vit_base_patch32")
PAPER_WEIGHTS = LossWeights(id=10.0, rec=5.0, perceptual=0.2, contra=0.3, att=10.0, adv=1.0, r1_gamma=10.0)
PAPER_OPTIMISER = OptimiserConfig(lr_g=1e-4, lr_d=1e-4, beta1=0.0, beta2=0.999)
#: The paper's step at batch 2 on this CPU (benchmarks/results/train_step.json: random-weight encoders).
PAPER_TIME = (
    "not measured for a run (300,000 steps need a GPU); one step at batch 2 takes 10.1 s fp32, 4.4 s bf16 "
    "here (benchmarks/results/train_step.json)"
)

_PAPER = TrainConfig(
    preset="paper",
    model=PAPER_MODEL,
    weights=PAPER_WEIGHTS,
    optimiser=PAPER_OPTIMISER,
    data=DataConfig(batch_size=10),
    schedule=ScheduleConfig(steps=300_000),
)


#: The presets this module defines (clipswap.config.presets.PRESETS gathers them by name).
PRESETS: tuple[Preset, ...] = (
    Preset(
        "paper",
        _PAPER,
        "ClipSwap as the paper describes it: z_id = ArcFace (512) + CLIP ViT-B/32 image embedding (512). Needs the "
        "ArcFace file and a CLIP preset; without them it is refused (its offline twin is paper-offline).",
        command="clipswap train --data ALIGNED_256 --run-dir RUN --preset paper --arcface ArcFace-Res50.h5 "
        "--clip-preset clip_vit_base_patch32 --precision bf16",
        data="`clipswap align --size 256` shards of a face data set (the README's example: VGGFace2)",
        time=PAPER_TIME,
        reaches="the paper's FF++ figures: ID retrieval 98.91 %, pose error 1.73, expression error 5.76, SSIM 0.98 "
        "(the paper, as quoted in the README's demo table; CosFace/Hopenet judges); not reproduced here",
        notes=(
            "identity input 1024: paper section III ('concatenation of the ArcFace and CLIP image vectors')",
            "mapping 512: FaceDancer train.py default; best fit of the paper's 174.23 M parameters (Table I)",
            "CLIP ViT-B/32: CLIPStyler's and Hugging Face's default",
            "lambda id 10, rec 5, p 0.2, contra 0.3, att 10; Adam(0, 0.999), lr 1e-4, batch 10, 300k steps, 256 px: "
            "paper section 'Implementation details'",
            "adversarial 1, R1 10: FaceDancer's (the paper has a discriminator but gives no adversarial weight); VGG16 "
            "perceptual net: FaceDancer's train.py, the paper names none",
        ),
    ),
    Preset(
        "paper-offline",
        dataclasses.replace(
            _PAPER,
            preset="paper-offline",
            model=PAPER_MODEL.replace(identity_encoder="sface", clip_variant=None),
            weights=dataclasses.replace(PAPER_WEIGHTS, contra=0.0),
        ),
        "The paper's recipe offline: SFace identity (embedded), no CLIP: identity input SFace 128, contrastive "
        "term off (contra 0). VGG16's ImageNet weights are still read (Keras downloads them once, or --vgg-weights "
        "FILE).",
        command="clipswap train --data ALIGNED_256 --run-dir RUN --preset paper-offline --precision bf16",
        data="as paper",
        time="not measured (the paper's 300,000 steps need a GPU)",
        reaches="not measured: no run of it has been made; it is not the paper's model (no ArcFace, no CLIP)",
        notes=(
            "every number as paper; SFace (128-d, embedded) replaces ArcFace-R50 and the CLIP input and "
            "contrastive term are off",
        ),
    ),
    Preset(
        "release",
        TrainConfig(
            preset="release",
            model=ModelConfig(mapping_width=256, identity_encoder="arcface", clip_variant=None),
            weights=dataclasses.replace(PAPER_WEIGHTS, contra=0.0),
            optimiser=PAPER_OPTIMISER,
            data=DataConfig(batch_size=10),
            schedule=ScheduleConfig(steps=300_000),
        ),
        "The published ClipSwap.h5 / FaceDancer get_generator layout: ArcFace-only 512-d input, mapping 256. How the "
        "release was trained is not published: training uses the paper's numbers with contra 0 (no CLIP input). "
        "Needs the ArcFace file; there is no offline twin (the layout is ArcFace's).",
        command="clipswap train --data ALIGNED_256 --run-dir RUN --preset release --arcface ArcFace-Res50.h5",
        data="as paper",
        time="not measured",
        reaches="not measured (the published ClipSwap.h5 is the model of this layout; its training is unpublished)",
        notes=(
            "the release's inference.py feeds only the raw ArcFace vector",
            "22,473,254 parameters (README, Presets)",
        ),
    ),
)
