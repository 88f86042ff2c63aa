"""Key resolution and overrides: where a key lives, how a value given as text or YAML is checked against its field,
and how overrides in any spelling are applied to a tree.

Keys are spelled `section.key` (`--set schedule.steps=5`, `--set model.base_filters=16`, `--set weights.id=5`); a
key of loss/optimiser/data/augmentation/schedule/compute may also be given alone (`--set steps=5`), and the file
keys (`--set attribute_file=A.keras`) go to RunFiles: `resolve_key` is the one place that says where a key lives.
A YAML file holds the same keys, nested or dotted. The older ModelConfig booleans (pre_swap, source_image, ...) are
accepted and translated to `model.conditioning` (schema.translate_legacy_keys), and a flat config.json written
before the tree is read through `migrate_flat_config`.

Hand-written rather than ml_collections or OmegaConf: both were tried on this tree and neither keeps its checks.
OmegaConf reads `1` and `yes` as true, refuses `5.0` for an integer, takes `inf`, expands `${...}` in values and
reports a bad key in a four-line message without the keys allowed, and neither it nor ml_collections (which adds
an unknown dotted key to an unlocked ConfigDict and parses strings only through absl flags) knows a flat key
without its section or the older ModelConfig booleans.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from clipswap.config.schema import (
    FLAT_KEYS,
    OFFLINE_TWINS,
    RUN_FILE_FLAGS,
    SECTIONS,
    TOP_KEYS,
    VGG_WEIGHTS,
    ConfigError,
    ModelConfig,
)

#: A TrainConfig (clipswap.config.tree), which builds itself through this module and so is not imported here.
Tree = TypeVar("Tree")

#: Types of the older ModelConfig keys, which overrides and old files may still give (schema.translate_legacy_keys).
_LEGACY_MODEL_TYPES: dict[str, Any] = {
    "pre_swap": str | None,
    "source_image": bool,
    "source_warp": bool,
    "source_flow": bool,
}


def field_types(cls: type) -> dict[str, Any]:
    """Field -> type hint; ModelConfig's include the older boolean keys, accepted and translated when read."""
    hints = typing.get_type_hints(cls)
    types_ = {f.name: hints[f.name] for f in dataclasses.fields(cls)}
    return {**types_, **_LEGACY_MODEL_TYPES} if cls is ModelConfig else types_


def coerce(key: str, value: Any, hint: Any, parse: bool = True) -> Any:
    """Check `value` against the field's type hint; with `parse`, a string (the command line) is read as a YAML
    scalar first (`1e-4`, `true`, `null`, `[a, b]`)."""
    if parse and isinstance(value, str) and hint is not str:
        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError as error:
            raise ConfigError(f"cannot parse the value of {key}: {error}") from None
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        hint = next(a for a in args if a is not type(None))
        origin = typing.get_origin(hint)
        args = typing.get_args(hint)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, str):
            # YAML 1.1 reads "1e-3" (no dot in the mantissa) as a string; Python's float() is what users expect.
            try:
                value = float(value)
            except ValueError:
                raise ConfigError(f"{key} must be a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{key} must be a finite number, got {value!r}")
        return float(value)
    if hint is str:
        if value is None:
            raise ConfigError(f"{key} must be a string, got null")
        return str(value)
    if origin is tuple:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",")]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} must be a list, got {value!r}")
        return tuple(value)
    return value


def build_section(name: str, section_cls: type, values: Mapping[str, Any], base: Any = None) -> Any:
    """`base` (or the section's defaults) with `values` type-checked and applied."""
    hints = field_types(section_cls)
    unknown = sorted(set(values) - set(hints))
    if unknown:
        raise ConfigError(f"unknown key '{name}.{unknown[0]}'; {name} keys: {sorted(hints)}")
    checked = {key: coerce(f"{name}.{key}", value, hints[key]) for key, value in values.items()}
    try:
        if section_cls is ModelConfig:
            return base.replace(**checked) if base is not None else ModelConfig.from_dict(checked)
        return dataclasses.replace(base, **checked) if base is not None else section_cls(**checked)
    except ConfigError:
        raise
    except (TypeError, ValueError) as error:
        raise ConfigError(str(error)) from None


def resolve_key(key: str) -> tuple[str, str]:
    """Where a key lives: ("model", "base_filters") for "model.base_filters", ("schedule", "steps") for the flat
    alias "steps", ("", "seed") for a key of the tree, ("files", "arcface_path") for a file of the run. The one
    place the spellings are resolved; raises ConfigError on an unknown key (the known ones listed)."""
    section, dot, name = key.partition(".")
    if dot:
        if section not in SECTIONS:
            raise ConfigError(f"unknown configuration section {section!r} in {key!r}; sections: {sorted(SECTIONS)}")
        known = field_types(SECTIONS[section])
        if name not in known:
            raise ConfigError(f"unknown key {key!r}; {section} keys: {sorted(known)}")
        return section, name
    if key in FLAT_KEYS:
        return FLAT_KEYS[key], key
    if key in TOP_KEYS:
        return "", key
    if key in RUN_FILE_FLAGS:
        return "files", key
    raise ConfigError(
        f"unknown key {key!r}; keys: section.key for the sections {sorted(SECTIONS)}, or "
        f"{sorted([*FLAT_KEYS, *TOP_KEYS])}"
    )


def flatten_overrides(data: Mapping[str, Any]) -> dict[str, Any]:
    """{"model": {"base_filters": 16}, "steps": 5} -> {"model.base_filters": 16, "steps": 5}."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if key in SECTIONS and isinstance(value, Mapping):
            flat.update({f"{key}.{name}": item for name, item in value.items()})
        else:
            flat[key] = value
    return flat


def split_overrides(overrides: Mapping[str, Any]) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """({section or "": {key: value}}, {RunFiles field: value}) of overrides in any spelling. `vgg_weights` is the
    experiment's when "imagenet" or null, a file of the run otherwise; a whole section object passes as itself."""
    sections: dict[str, dict[str, Any]] = {}
    files: dict[str, Any] = {}
    for key, value in overrides.items():
        if key in SECTIONS and isinstance(value, SECTIONS[key]):
            sections.setdefault(key, {})["__whole__"] = value
            continue
        for flat_key, item in flatten_overrides({key: value}).items():
            section, name = resolve_key(flat_key)
            if name == "vgg_weights":
                parsed = yaml.safe_load(item) if isinstance(item, str) else item
                if parsed not in VGG_WEIGHTS:
                    files["vgg_weights"] = str(item)
                    continue
                section = "loss"
            if section == "files":
                files[name] = None if item in (None, "null", "") else str(item)
            else:
                sections.setdefault(section, {})[name] = item
    return sections, files


def apply_overrides(config: Tree, overrides: Mapping[str, Any]) -> Tree:
    """`config` with overrides in any spelling (dotted `schedule.steps`, flat `steps`, nested sections, or whole
    section objects) applied, every value type-checked and the tree validated once at the end.

    Raises:
        ConfigError: an unknown key (with the known ones listed), a value of the wrong type, a file of the run (which
            belongs to RunFiles: see clipswap.config.resolve), or a tree `validate` refuses.
    """
    sections, files = split_overrides(overrides)
    if files:
        raise ConfigError(
            f"{sorted(files)[0]} is a file of the run, not part of the experiment: give it with "
            f"{RUN_FILE_FLAGS[sorted(files)[0]]}"
        )
    changes: dict[str, Any] = {}
    for section, values in sections.items():
        if section == "":
            changes.update({key: coerce(key, value, field_types(type(config))[key]) for key, value in values.items()})
            continue
        base = values.pop("__whole__", getattr(config, section))
        changes[section] = build_section(section, SECTIONS[section], values, base) if values else base
    return dataclasses.replace(config, **changes)


def migrate_flat_config(data: Mapping[str, Any]) -> dict[str, Any]:
    """A config.json written before the tree (flat keys beside `model` and `weights`) as the tree's nested mapping;
    a nested one is returned as it is. The flat keys go to their sections (FLAT_KEYS); the files the old format kept
    (arcface_path, clip_preset, attribute_file, a vgg_weights path) are dropped: they belong to the run, not to the
    experiment. The old code rewrote `paper` and `facedancer` to SFace without saying so in `preset`: such a file is
    given the name of the offline twin it really was."""
    data = dict(data)
    flat = [key for key in data if key not in SECTIONS and key not in TOP_KEYS]
    if not flat:
        return data
    nested: dict[str, Any] = {key: data[key] for key in data if key in TOP_KEYS}
    for section in SECTIONS:
        if isinstance(data.get(section), Mapping):
            nested[section] = dict(data[section])
    for key in flat:
        if key in RUN_FILE_FLAGS and not (key == "vgg_weights" and data[key] in VGG_WEIGHTS):
            continue
        if key not in FLAT_KEYS:
            raise ConfigError(f"unknown training configuration keys: [{key!r}]")
        nested.setdefault(FLAT_KEYS[key], {})[key] = data[key]
    model = nested.get("model", {})
    twin = OFFLINE_TWINS.get(nested.get("preset"))
    if twin and model.get("identity_encoder") == "sface" and model.get("clip_variant") is None:
        nested["preset"] = twin
    return nested


def load_yaml_overrides(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping of overrides (nested sections, dotted or flat keys)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"cannot read the configuration file {path}: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not a text (UTF-8) YAML file; give a YAML file of configuration keys") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {error}") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path} must hold a mapping of configuration keys, got {type(data).__name__}")
    return flatten_overrides(data)


def parse_set_options(pairs: Iterable[str]) -> dict[str, str]:
    """["a=1", "model.b=x"] -> {"a": "1", "model.b": "x"}; raises ValueError on an item without '='."""
    parsed: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set takes key=value, got {pair!r}")
        parsed[key.strip()] = value.strip()
    return parsed
