"""The configuration package: the preset registry has one module a family, each headed by the command line of every
preset it defines (big_vision's config headers), `get_preset` reaches every preset of every family module, and
importing the package starts no TensorFlow."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import pytest

from clipswap.config import OFFLINE_TWINS, PRESETS, get_preset, presets
from clipswap.config.presets import FAMILIES
from clipswap.config.presets.preset import Preset

#: Modules of clipswap.config.presets that define no preset.
NOT_FAMILIES = {"preset"}


def _family_modules() -> list:
    names = sorted(info.name for info in pkgutil.iter_modules(presets.__path__) if info.name not in NOT_FAMILIES)
    return [importlib.import_module(f"clipswap.config.presets.{name}") for name in names]


def _one_line(text: str) -> str:
    """`text` with shell line continuations joined and every run of white space one space."""
    return " ".join(text.replace("\\\n", " ").split())


def test_every_family_module_is_a_family_of_the_registry():
    modules = _family_modules()
    assert modules and set(modules) == set(FAMILIES)
    for module in modules:
        assert module.PRESETS and all(isinstance(preset, Preset) for preset in module.PRESETS), module.__name__


def test_get_preset_covers_every_preset_of_every_family_and_nothing_else():
    defined = [preset for module in _family_modules() for preset in module.PRESETS]
    assert len({preset.name for preset in defined}) == len(defined), "a preset name defined twice"
    assert {preset.name for preset in defined} == set(PRESETS)
    for preset in defined:
        assert get_preset(preset.name) is preset


@pytest.mark.parametrize("module", _family_modules(), ids=lambda module: module.__name__.rsplit(".", 1)[-1])
def test_every_family_module_header_gives_the_command_of_each_of_its_presets(module):
    header = _one_line(module.__doc__ or "")
    for preset in module.PRESETS:
        assert preset.command.startswith("clipswap train ") and f"--preset {preset.name}" in preset.command
        assert _one_line(preset.command) in header, f"{module.__name__}'s header lacks: {preset.command}"


def test_every_offline_twin_is_a_preset_of_its_presets_family():
    family_of = {preset.name: module for module in _family_modules() for preset in module.PRESETS}
    for name, twin in OFFLINE_TWINS.items():
        assert family_of[name] is family_of[twin]


def test_importing_the_configuration_starts_no_tensorflow():
    code = "import sys, clipswap.config; assert 'tensorflow' not in sys.modules, 'tensorflow imported'"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
