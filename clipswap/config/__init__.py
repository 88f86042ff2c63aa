"""The configuration: the tree of the experiment, how keys and overrides reach it, and the one preset registry.

    schema.py     the sections (ModelConfig, LossWeights, LossOptions, OptimiserConfig, DataConfig,
                  AugmentationConfig, ScheduleConfig, ComputeConfig), RunFiles, the constants they are checked
                  against, where each key lives (SECTIONS, FLAT_KEYS, RUN_FILE_FLAGS) and ConfigError
    overrides.py  key resolution (`resolve_key`), value checks, overrides in any spelling, YAML files, old flat
                  config.json files (`migrate_flat_config`)
    tree.py       TrainConfig, `validate` (every tree, when built) and `check_runnable` (this tree with these files)
    presets/      one module a preset family, each headed by how to run its presets and what they reach
                  (big_vision's config headers); `PRESETS`, `get_preset`
    resolve.py    preset, then YAML file, then overrides -> (TrainConfig, RunFiles): what `clipswap train` runs

Each module imports only those above it in this list (tests/test_layering.py refuses an import circle), and none
imports TensorFlow. Every name is re-exported here: code reads `from clipswap.config import ...`.
"""

from __future__ import annotations

from clipswap.config.overrides import (
    apply_overrides,
    flatten_overrides,
    load_yaml_overrides,
    migrate_flat_config,
    parse_set_options,
    resolve_key,
    split_overrides,
)
from clipswap.config.presets import PRESETS, Preset, get_preset
from clipswap.config.presets.demo import DEMO_MODEL
from clipswap.config.presets.paper import PAPER_MODEL, PAPER_OPTIMISER, PAPER_TIME, PAPER_WEIGHTS
from clipswap.config.resolve import resolve_config, resolve_run
from clipswap.config.schema import (
    ATTRIBUTE_NETWORKS,
    CLIP_SPECS,
    CLIP_VARIANTS,
    FLAT_KEYS,
    FLAT_SECTIONS,
    IDENTITY_ENCODERS,
    LOSS_WEIGHTS_DOC,
    MODEL_FILE_FIELDS,
    OFFLINE_TWINS,
    PERCEPTUAL_NETWORKS,
    PRECISIONS,
    RUN_FILE_FLAGS,
    SECTIONS,
    SIZE_LIMITS,
    TOP_KEYS,
    UP_TYPES,
    VGG_WEIGHTS,
    AugmentationConfig,
    ComputeConfig,
    ConfigError,
    DataConfig,
    LossOptions,
    LossWeights,
    ModelConfig,
    OptimiserConfig,
    RunFiles,
    ScheduleConfig,
    loss_weights_class,
    translate_legacy_keys,
)
from clipswap.config.tree import TrainConfig, check_runnable, validate

__all__ = [
    "ATTRIBUTE_NETWORKS",
    "CLIP_SPECS",
    "CLIP_VARIANTS",
    "DEMO_MODEL",
    "FLAT_KEYS",
    "FLAT_SECTIONS",
    "IDENTITY_ENCODERS",
    "LOSS_WEIGHTS_DOC",
    "MODEL_FILE_FIELDS",
    "OFFLINE_TWINS",
    "PAPER_MODEL",
    "PAPER_OPTIMISER",
    "PAPER_TIME",
    "PAPER_WEIGHTS",
    "PERCEPTUAL_NETWORKS",
    "PRECISIONS",
    "PRESETS",
    "RUN_FILE_FLAGS",
    "SECTIONS",
    "SIZE_LIMITS",
    "TOP_KEYS",
    "UP_TYPES",
    "VGG_WEIGHTS",
    "AugmentationConfig",
    "ComputeConfig",
    "ConfigError",
    "DataConfig",
    "LossOptions",
    "LossWeights",
    "ModelConfig",
    "OptimiserConfig",
    "Preset",
    "RunFiles",
    "ScheduleConfig",
    "TrainConfig",
    "apply_overrides",
    "check_runnable",
    "flatten_overrides",
    "get_preset",
    "load_yaml_overrides",
    "loss_weights_class",
    "migrate_flat_config",
    "parse_set_options",
    "resolve_config",
    "resolve_key",
    "resolve_run",
    "split_overrides",
    "translate_legacy_keys",
    "validate",
]
