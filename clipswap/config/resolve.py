"""What `clipswap train` resolves: a preset by name, then a YAML file, then the explicit overrides (later wins), into
the experiment (TrainConfig) and the files of the run (RunFiles)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from clipswap.config.overrides import apply_overrides, flatten_overrides, load_yaml_overrides, split_overrides
from clipswap.config.presets import get_preset
from clipswap.config.schema import RUN_FILE_FLAGS, ConfigError, RunFiles
from clipswap.config.tree import TrainConfig


def resolve_run(
    preset: str,
    yaml_path: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    files: RunFiles | None = None,
) -> tuple[TrainConfig, RunFiles]:
    """(experiment, run files): the preset's tree, then the YAML file, then the explicit overrides (later wins);
    file keys among them (`--set attribute_file=...`, a `vgg_weights` path) join `files`."""
    merged: dict[str, Any] = {}
    if yaml_path is not None:
        merged.update(load_yaml_overrides(yaml_path))
    merged.update(flatten_overrides(overrides or {}))
    sections, file_values = split_overrides(merged)
    experiment = {
        f"{section}.{key}" if section else key: value
        for section, values in sections.items()
        for key, value in values.items()
    }
    config = apply_overrides(get_preset(preset).config, experiment)
    return config, dataclasses.replace(files or RunFiles(), **file_values)


def resolve_config(
    preset: str, yaml_path: str | Path | None = None, overrides: Mapping[str, Any] | None = None
) -> TrainConfig:
    """The experiment alone: preset, then the YAML file, then the explicit overrides (later wins)."""
    config, files = resolve_run(preset, yaml_path, overrides)
    if files != RunFiles():
        key = next(k for k, v in files.to_dict().items() if v is not None)
        raise ConfigError(f"{key} is a file of the run, not part of the experiment: give it with {RUN_FILE_FLAGS[key]}")
    return config
