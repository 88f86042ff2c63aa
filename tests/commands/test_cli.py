"""The clipswap command line: version, help, info, init and their errors."""

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from clipswap import __version__
from clipswap.cli import main


def run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_version_and_help():
    result = run("--version")
    assert result.exit_code == 0 and __version__ in result.output
    result = run("--help")
    assert result.exit_code == 0
    for verb in ("info", "init"):
        assert verb in result.output


def test_info_needs_exactly_one_source():
    result = run("info")
    assert result.exit_code == 2 and "exactly one of --preset" in result.output


def test_info_tiny_preset_writes_json(tmp_path):
    out = tmp_path / "info.json"
    result = run("info", "--preset", "tiny", "--no-detector", "--json", str(out))
    assert result.exit_code == 0, result.output
    assert "Generator" in result.output and "174,230,000" in result.output
    data = json.loads(out.read_text())
    assert data["components"]["generator"]["params"] == 354_506
    assert data["components"]["generator"]["macs"] > 0


@pytest.mark.slow
def test_info_paper_preset_matches_reference():
    result = run("info", "--preset", "paper")
    assert result.exit_code == 0, result.output
    assert "24,768,038" in result.output  # G, mapping 512, 1024-d identity
    assert "40,375,680" in result.output  # ArcFace-R50
    assert "27,378,144" in result.output  # RetinaFace-R50
    assert "174.38 M" in result.output  # the best-fitting sum for the paper's Table I (README)


def test_init_then_info_on_checkpoint(tmp_path):
    path = tmp_path / "g.keras"
    result = run("init", "--preset", "tiny", "--output", str(path))
    assert result.exit_code == 0, result.output
    assert path.is_file() and path.with_suffix(".json").is_file()
    result = run("info", "--checkpoint", str(path), "--no-detector")
    assert result.exit_code == 0 and "354,506" in result.output


def test_init_rejects_bad_output(tmp_path):
    result = run("init", "--preset", "tiny", "--output", str(tmp_path / "g.h5"))
    assert result.exit_code == 2 and ".keras" in result.output
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the output folder should be")
    result = run("init", "--preset", "tiny", "--output", str(blocker / "g.keras"))
    assert result.exit_code == 1 and "cannot create the output folder" in result.output


def test_info_on_tampered_checkpoint_is_clear(tmp_path):
    path = tmp_path / "g.keras"
    run("init", "--preset", "tiny", "--output", str(path))
    manifest = path.with_suffix(".json")
    manifest.write_text("{not json")
    result = run("info", "--checkpoint", str(path), "--no-detector")
    assert result.exit_code == 1 and "cannot read the manifest" in result.output


def test_cli_import_does_not_load_tensorflow():
    """`clipswap --help` must stay fast: importing the CLI (all verbs registered) may not import TensorFlow."""
    code = "import sys, clipswap.cli; assert 'tensorflow' not in sys.modules, 'tensorflow imported'; print('ok')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr[-2000:]


def test_info_counts_the_demo_generator_with_its_source_input():
    """The demo generator reads a third input (the source crop, which it warps itself): info counts it instead of
    failing, its keypoint network included."""
    from conftest import REPO_ROOT

    for args in (["--checkpoint", str(REPO_ROOT / "pretrained_ckpts" / "demo" / "generator.keras")],
                 ["--preset", "demo"]):
        result = run("info", *args, "--no-detector")
        assert result.exit_code == 0, result.output
        assert "128px + 128-d + source" in result.output and "1,771,277" in result.output


def _every_preset():
    """Every preset of the configuration's table; those at 256 px (seconds each to build and count) are slow."""
    from clipswap.config import PRESETS, get_preset

    return [pytest.param(name, marks=pytest.mark.slow) if get_preset(name).model.image_size >= 256 else name
            for name in sorted(PRESETS)]


@pytest.mark.parametrize("preset", _every_preset())
def test_info_and_init_run_for_every_preset(tmp_path, preset):
    """info counts each preset's generator with every input its conditioning adds, and init writes a checkpoint of
    that same generator."""
    from clipswap.checkpoints.native import load_generator
    from clipswap.config import get_preset
    from clipswap.models.conditioning import describe_inputs

    config = get_preset(preset).model
    table = tmp_path / "info.json"
    result = run("info", "--preset", preset, "--no-detector", "--json", str(table))
    assert result.exit_code == 0, result.output
    data = json.loads(table.read_text())
    assert data["config"] == json.loads(json.dumps(config.to_dict()))
    counted = data["components"]["generator"]
    assert counted["macs"] > 0 and counted["input_desc"] == describe_inputs(config)
    path = tmp_path / "g.keras"
    result = run("init", "--preset", preset, "--output", str(path))
    assert result.exit_code == 0, result.output
    written = load_generator(path)
    assert written.config == config
    assert written.model.count_params() == counted["params"]


@pytest.mark.parametrize("how", ["a file in the way", "a read-only folder"])
def test_info_json_into_an_unwritable_place_is_one_sentence_before_any_work(tmp_path, monkeypatch, how):
    import os

    import clipswap.models.inventory as inventory

    monkeypatch.setattr(inventory, "build_inventory", lambda *a, **k: pytest.fail("the networks were built first"))
    if how == "a file in the way":
        (tmp_path / "blocker").write_text("not a folder")
        destination, fragment = tmp_path / "blocker" / "info.json", "is not a folder"
    else:
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(tmp_path) else real_access(p, mode))
        destination, fragment = tmp_path / "info.json", "is not writable"
    result = CliRunner().invoke(main, ["info", "--preset", "tiny", "--json", str(destination)])
    assert result.exit_code == 1 and fragment in result.output and "unexpected" not in result.output, result.output
    assert [line for line in result.output.splitlines() if line.strip()] == [result.output.strip()]


def _float_options():
    """(verb, option name) of every float option of every verb, found by click's introspection."""
    import click

    found = []
    for verb, command in sorted(main.commands.items()):
        for param in command.params:
            if isinstance(param, click.Option) and isinstance(param.type, click.types.FloatParamType):
                found.append((verb, param.opts[0]))
    return found


def test_the_float_option_walk_finds_them_all():
    """The walk sees the float options of every verb that has one (a walk that found none would test nothing), and
    no verb is a group whose own verbs it would miss."""
    import click

    known = {("align", "--det-threshold"), ("evaluate", "--detail"), ("evaluate", "--sharpen"),
             ("export", "--tolerance"), ("swap", "--feather"), ("swap", "--sharpen"), ("swap", "--similarity"),
             ("swap", "--smooth-beta"), ("train-geometry", "--learning-rate")}
    assert known <= set(_float_options()), _float_options()
    assert not [verb for verb, command in main.commands.items() if isinstance(command, click.Group)]


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "1e999"])
@pytest.mark.parametrize(("verb", "option"), _float_options())
def test_every_float_option_of_every_verb_refuses_non_finite_values(verb, option, value):
    result = CliRunner().invoke(main, [verb, option, value])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert f"'{option}'" in lines[0] and "is not a finite number" in lines[0], lines[0]


@pytest.mark.parametrize("args", [
    ["swap", "--bogus"],                         # an unknown option
    ["swap", "--feather"],                       # an option without its value
    ["swap", "--feather", "99"],                 # out of range
    ["swap", "--blend", "mosaic"],               # not one of the choices
    ["export", "--format", "onnx"],              # a required option missing
    ["info"],                                    # a cross-option rule of the command
    ["--max-pixels", "lots", "info"],            # the group's own option
    ["frobnicate"],                              # an unknown verb
], ids=lambda args: " ".join(args))
def test_an_option_error_exits_2_with_one_sentence(args):
    """README: a wrong or missing option exits 2 (the usage convention) with one line naming the help to read; every
    other failure exits 1."""
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert "--help'" in lines[0] and "Usage:" not in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_a_non_finite_set_value_is_an_invalid_configuration_exit_1(value):
    """README: `train --set` values are checked with the whole configuration, so a NaN is refused as an invalid
    configuration (exit 1, one line naming the key), as the same value in a --config file would be."""
    result = run("train", "--preset", "tiny", "--dry-run", "--set", f"weights.id={value}")
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == [f"Error: invalid configuration: weights.id must be a finite number, got {value}"], lines
