"""FaceDancer's training recipe (its train.py) and its offline twin.

facedancer: ArcFace-only identity input, mapping 512; Adam(0, 0.99), lr 1e-4 decayed x0.97 per 100k steps, batch 10,
cycle 1, IFSR 1, VGG pools x0.85, reconstruction clipped and halved, no CLIP and no attribute term (FaceDancer
train.py); 500,000 steps, one of FaceDancer's 'epochs'. Needs the ArcFace file (IFSR reads its layers).

    clipswap train --data ALIGNED_256 --run-dir RUN --preset facedancer --arcface ArcFace-Res50.h5

Data: as paper (`clipswap align --size 256` shards).
Time: not measured (500,000 steps need a GPU).
Should reach: FaceDancer's own paper reports its figures; not reproduced here.

facedancer-offline: every number as facedancer, but SFace identity and the IFSR term off (it reads ArcFace-R50's
layers), so it needs no file; time and result not measured.

    clipswap train --data ALIGNED_256 --run-dir RUN --preset facedancer-offline
"""

from __future__ import annotations

import dataclasses

from clipswap.config.presets.preset import Preset
from clipswap.config.schema import DataConfig, LossOptions, LossWeights, ModelConfig, OptimiserConfig, ScheduleConfig
from clipswap.config.tree import TrainConfig

_FACEDANCER = TrainConfig(
    preset="facedancer",
    model=ModelConfig(mapping_width=512, identity_encoder="arcface", clip_variant=None),
    weights=LossWeights.facedancer(),
    optimiser=OptimiserConfig(lr_g=1e-4, lr_d=1e-4, beta1=0.0, beta2=0.99, lr_decay_rate=0.97, lr_decay_steps=100_000),
    data=DataConfig(batch_size=10),
    schedule=ScheduleConfig(steps=500_000),
    loss=LossOptions(facedancer_perceptual=True, facedancer_rec_clip=True),
)


#: The presets this module defines (clipswap.config.presets.PRESETS gathers them by name).
PRESETS: tuple[Preset, ...] = (
    Preset(
        "facedancer",
        _FACEDANCER,
        "FaceDancer's training recipe (its train.py): ArcFace-only input, mapping 512. Needs the ArcFace "
        "file (IFSR reads its layers); its offline twin is facedancer-offline.",
        command="clipswap train --data ALIGNED_256 --run-dir RUN --preset facedancer --arcface ArcFace-Res50.h5",
        data="as paper",
        time="not measured (500,000 steps need a GPU)",
        reaches="not measured here (FaceDancer's own paper reports its figures; not reproduced)",
        notes=(
            "Adam(0, 0.99), lr 1e-4 decayed x0.97 per 100k steps, batch 10, cycle 1, IFSR 1, VGG pools x0.85, "
            "reconstruction clipped and halved; no CLIP, no attribute term: FaceDancer train.py",
            "500k steps = one of FaceDancer's 'epochs'",
        ),
    ),
    Preset(
        "facedancer-offline",
        dataclasses.replace(
            _FACEDANCER,
            preset="facedancer-offline",
            model=_FACEDANCER.model.replace(identity_encoder="sface"),
            weights=dataclasses.replace(_FACEDANCER.weights, ifsr=0.0),
        ),
        "FaceDancer's recipe offline: SFace identity (embedded), no CLIP; the IFSR term is off (it reads "
        "ArcFace-R50's layers).",
        command="clipswap train --data ALIGNED_256 --run-dir RUN --preset facedancer-offline",
        data="as paper",
        time="not measured",
        reaches="not measured",
        notes=("every number as facedancer but ifsr 0 and SFace identity",),
    ),
)
