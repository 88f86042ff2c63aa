"""The one preset registry: every named experiment, one module a family, each module headed by how to run its
presets, on what data, how long they take on this project's 2-core CPU and what they should reach (big_vision's
config headers); every number cites its source (the paper, FaceDancer's code, the README or docs/demo_model.md).

    paper.py       paper, paper-offline (its offline twin), release (the published ClipSwap.h5 layout)
    facedancer.py  facedancer, facedancer-offline (its offline twin)
    tiny.py        tiny (CPU runs and tests)
    demo.py        demo (the shipped demo model), demo_refiner (the earlier demo)
"""

from __future__ import annotations

from clipswap.config.presets import demo, facedancer, paper, tiny
from clipswap.config.presets.preset import Preset
from clipswap.config.schema import ConfigError

#: The family modules: a new family is its module, headed like these, and its entry here (tests/config checks both).
FAMILIES = (paper, facedancer, tiny, demo)

#: Every preset by its `--preset` name.
PRESETS: dict[str, Preset] = {preset.name: preset for family in FAMILIES for preset in family.PRESETS}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}") from None


__all__ = ["FAMILIES", "PRESETS", "Preset", "get_preset"]
