"""The component registries (clipswap.registry): every row is consistent with what reads it (the command lines'
choices, the configuration's checks, the model files, the builders it names), importing them loads no TensorFlow,
and the worked examples: a new identity encoder, detector, export format and runtime are each one module (here, this
test file) and one row."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from clipswap.checkpoints.registry import FILES
from clipswap.cli import main
from clipswap.registry import UnknownComponentError, load_object
from clipswap.registry.attributes import ATTRIBUTES
from clipswap.registry.detectors import AUTO, DETECTORS, Detector, DetectorRow
from clipswap.registry.encoders import ENCODERS, IdentityEncoderRow
from clipswap.registry.runtimes import FORMATS, RUNTIMES, ExportFormatRow, RuntimeRow


def _choices(verb: str, option: str) -> tuple[str, ...]:
    """The choices the command line offers for `clipswap VERB OPTION`, as click sees them now."""
    command = main.commands[verb]
    param = next(p for p in command.params if option in p.opts)
    return tuple(param.type.choices)


# --- consistency ----------------------------------------------------------------------------------------------------


def test_importing_the_registries_loads_no_tensorflow():
    code = (
        "import sys, clipswap.registry.encoders, clipswap.registry.detectors, clipswap.registry.attributes, "
        "clipswap.registry.runtimes, clipswap.options; "
        "heavy = [m for m in ('tensorflow', 'keras', 'cv2') if m in sys.modules]; assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_command_lines_offer_the_registered_names():
    detectors = (AUTO, *DETECTORS.names())
    for verb in ("swap", "evaluate", "ui"):
        assert _choices(verb, "--detector") == detectors
    assert _choices("align", "--detector") == DETECTORS.names()
    for verb in ("swap", "evaluate"):
        assert _choices(verb, "--runtime") == ("auto", *RUNTIMES.names())
    assert _choices("export", "--format") == FORMATS.names()


def test_the_configuration_checks_the_registered_names():
    from clipswap.config import ATTRIBUTE_NETWORKS, IDENTITY_ENCODERS

    assert dict(IDENTITY_ENCODERS) == {row.name: row.width for row in ENCODERS.rows()}
    assert tuple(ATTRIBUTE_NETWORKS) == ATTRIBUTES.names()


def test_every_row_names_a_model_file_and_builders_that_exist():
    from clipswap.evaluation.identity_models import FAMILIES

    for row in ENCODERS.rows():
        assert row.file_key in FILES, row.name
        assert row.evaluation_family is None or row.evaluation_family in FAMILIES, row.name
        assert callable(load_object(row.network)) and callable(load_object(row.loader)), row.name
        assert len(row.stage_layers) >= 2 and row.pixel_range[0] < row.pixel_range[1], row.name
    for row in DETECTORS.rows():
        assert row.file_key in FILES, row.name
        assert callable(load_object(row.factory)), row.name
        assert row.network is None or callable(load_object(row.network)), row.name
    assert [row.name for row in DETECTORS.rows() if row.auto_rank is not None], "auto needs at least one detector"
    assert any(not row.user_file for row in DETECTORS.rows() if row.auto_rank is not None), "auto must work offline"
    for row in ATTRIBUTES.rows():
        assert callable(load_object(row.source)) and (row.check is None or callable(load_object(row.check)))
    for row in FORMATS.rows():
        assert callable(load_object(row.runner)), row.name
        assert set(row.run_modules) <= set(row.write_modules) or not row.write_modules, row.name
    for row in RUNTIMES.rows():
        assert row.format is None or row.format in FORMATS, row.name
        assert row.format is None or set(row.precisions) <= set(FORMATS.get(row.format).precisions), row.name


def test_every_extra_a_row_names_installs_its_packages():
    import tomllib

    extras = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    rows = [*FORMATS.rows(), *RUNTIMES.rows()]
    for row in rows:
        modules = row.modules if isinstance(row, RuntimeRow) else row.write_modules + row.run_modules
        if not modules:
            continue
        assert row.extra in extras, (row.name, row.extra)
        packages = {requirement.split(">")[0].split("=")[0].strip() for requirement in extras[row.extra]}
        assert {package for _, package in modules} <= packages, row.name


def test_export_formats_keep_their_keras_names_and_files():
    from clipswap.inference.export import FORMATS as EXPORT_FORMATS

    assert EXPORT_FORMATS is FORMATS
    assert [p.name for p in FORMATS.get("openvino").files(Path("g.xml"))] == ["g.bin", "g.xml"]
    assert FORMATS.get("savedmodel").file_name("g") == "g"


def test_an_unknown_name_is_one_sentence_listing_the_names():
    with pytest.raises(UnknownComponentError, match="unknown detector 'mtcnn'; choose one of retinaface, yunet"):
        DETECTORS.get("mtcnn")
    with pytest.raises(ValueError, match="already registered"):
        DETECTORS.register(DETECTORS.get("yunet"))


def test_the_file_flags_fill_one_mapping(tmp_path):
    result = CliRunner().invoke(main, ["swap", "-s", "a.png", "-t", "b.png", "-o", "c.png", "--file", "nope=x"])
    assert result.exit_code == 2 and "not a model file key" in result.output
    result = CliRunner().invoke(main, ["swap", "-s", "a.png", "-t", "b.png", "-o", "c.png", "--file", "arcface"])
    assert result.exit_code == 2 and "KEY=PATH" in result.output


# --- worked example (a): a new identity encoder is one module and one row ------------------------------------------


def _toy_network():
    """The new encoder's module: a graph [B, 112, 112, 3] RGB in [0, 1] -> [B, 32], with two stage layers."""
    import keras

    inputs = keras.Input((112, 112, 3))
    x = keras.layers.Conv2D(4, 3, strides=4, name="toy_stage1")(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, name="toy_stage2")(x)
    outputs = keras.layers.Dense(32, name="toy_embedding")(keras.layers.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, outputs, name="toy")


def _toy_loader(path):
    return _toy_network()


TOY_ENCODER = IdentityEncoderRow(
    "toy",
    "Toy",
    32,
    112,
    (0.0, 1.0),
    ("toy_stage1", "toy_stage2"),
    file_key="sface",
    network=_toy_network,
    loader=_toy_loader,
)


def test_worked_example_a_new_identity_encoder():
    from clipswap.checkpoints.encoders import load_identity_encoder
    from clipswap.config import IDENTITY_ENCODERS, ModelConfig
    from clipswap.inference.choice import identity_label

    with pytest.raises(ValueError, match="identity_encoder must be one of"):
        ModelConfig(identity_encoder="toy")
    with ENCODERS.registered(TOY_ENCODER):
        config = ModelConfig(identity_encoder="toy")
        assert config.identity_encoder == "toy" and IDENTITY_ENCODERS["toy"] == 32
        encoder = load_identity_encoder("toy")
        assert encoder.dim == 32
        assert encoder.embed(np.zeros((2, 112, 112, 3), np.uint8)).shape == (2, 32)
        assert identity_label("toy") == "Toy identity"
        assert ENCODERS.get("toy").spec.stages == ("toy_stage1", "toy_stage2")
    assert "toy" not in IDENTITY_ENCODERS


def test_worked_example_a_new_identity_encoder_reaches_generator_files_and_the_evaluation(monkeypatch):
    from clipswap.checkpoints.errors import CheckpointError
    from clipswap.checkpoints.generator_h5 import identity_input_widths, interpret_identity_width
    from clipswap.evaluation import identity_models
    from clipswap.evaluation.identity_models import IdentityModelChoiceError, choose_identity_model

    assert 32 not in identity_input_widths()
    with ENCODERS.registered(TOY_ENCODER):
        # A published generator file with a 32-d identity input, alone or followed by a CLIP embedding, is the toy's.
        assert interpret_identity_width(32, "g.h5") == ("toy", None)
        assert interpret_identity_width(32 + 512, "g.h5") == ("toy", "clip_vit_base_patch32")
        # No evaluation model shares its family (the row's default): any may score its generators; auto is sface.
        assert choose_identity_model("auto", "toy").spec == "sface"
        assert choose_identity_model("sface", "toy").spec == "sface"
    assert 32 not in identity_input_widths()

    # A row of the sface family: its generators are refused sface's scores, and auto moves on to dlib.
    with ENCODERS.registered(replace(TOY_ENCODER, evaluation_family="sface")):
        with pytest.raises(IdentityModelChoiceError, match="--allow-training-identity-model"):
            choose_identity_model("sface", "toy")
        assert choose_identity_model("dlib", "toy").spec == "dlib"
        monkeypatch.setattr(identity_models, "dlib_missing_reason", lambda *files: None)
        assert choose_identity_model("auto", "toy").spec == "dlib"

    # A row as wide as SFace: a 128-d generator file no longer says which encoder it was trained with.
    with ENCODERS.registered(replace(TOY_ENCODER, width=128)):
        with pytest.raises(CheckpointError, match="128-d identity vector, which is ambiguous: sface and toy each"):
            interpret_identity_width(128, "g.h5")
        assert interpret_identity_width(512, "g.h5") == ("arcface", None)
    assert interpret_identity_width(128, "g.h5") == ("sface", None)


def test_worked_example_a_new_identity_encoder_with_a_user_file_trains_with_file_key_path(monkeypatch, tmp_path):
    """An encoder whose weights file is the user's: its row and its file's row, then `clipswap train --file
    KEY=PATH`; no RunFiles field and no train flag of its own."""
    import json

    from clipswap.checkpoints.registry import ModelFile
    from clipswap.config import RunFiles, check_runnable, resolve_run

    monkeypatch.setitem(FILES, "toyface", ModelFile("toyface", "the toy identity encoder", "published",
                                                    ("ToyFace.h5",), "this test", "[B, 112, 112, 3] RGB in [0, 1]"))
    weights = tmp_path / "ToyFace.h5"
    weights.write_bytes(b"toy")
    args = ["train", "--preset", "tiny", "--dry-run", "--set", "model.identity_encoder=toy"]
    with ENCODERS.registered(replace(TOY_ENCODER, file_key="toyface")):
        assert ENCODERS.get("toy").user_file
        refused = CliRunner().invoke(main, args)
        assert refused.exit_code != 0 and "--file toyface=PATH" in refused.output
        assert "needs the Toy file (ToyFace.h5), which was not given" in refused.output
        accepted = CliRunner().invoke(main, [*args, "--file", f"toyface={weights}"])
        assert accepted.exit_code == 0, accepted.output
        printed = json.loads(accepted.output[accepted.output.index("{"):])
        assert printed["files"]["files"] == {"toyface": str(weights.resolve())} and printed["notes"] == []
        config, files = resolve_run("tiny", overrides={"model.identity_encoder": "toy"},
                                    files=RunFiles(files={"toyface": str(weights)}))
        assert files.model_files() == {"toyface": str(weights)} and check_runnable(config, files) == []
        # Given to a run of another encoder, the file is not used, and the note names the option that gave it.
        notes = check_runnable(resolve_run("tiny")[0], files)
        assert notes == ["--file toyface=PATH given but the identity encoder is sface: the file is not used"]


# --- worked example (b): a new detector is one module and one row ----------------------------------------------------


class _CentreDetector:
    """The new detector's module: one face in the middle of every image."""

    def __init__(self, path, score_threshold):
        self.score_threshold = score_threshold

    def detect(self, image):
        from clipswap.face.detection import Detection
        from clipswap.face.templates import arcface_template

        height, width = image.shape[:2]
        side = min(height, width) / 2
        landmarks = arcface_template(112) * side / 112 + [width / 2 - side / 2, height / 2 - side / 2]
        box = [width / 2 - side / 2, height / 2 - side / 2, width / 2 + side / 2, height / 2 + side / 2]
        return [Detection(box=np.array(box, np.float32), score=0.99, landmarks=landmarks.astype(np.float32))]


TOY_DETECTOR = DetectorRow("centre", "Centre", "yunet", _CentreDetector)


def test_worked_example_a_new_detector():
    from clipswap.face.detectors import build_detector, resolve_detector
    from clipswap.facedata.align_dataset import AlignError, AlignSettings

    assert "centre" not in _choices("swap", "--detector")
    with pytest.raises(AlignError, match="--detector must be one of"):
        AlignSettings(detector="centre")
    with DETECTORS.registered(TOY_DETECTOR):
        for verb in ("swap", "evaluate", "ui"):
            assert "centre" in _choices(verb, "--detector")
        assert "centre" in _choices("align", "--detector")
        assert AlignSettings(detector="centre").detector == "centre"
        assert resolve_detector("centre") == ("centre", None)
        detector = build_detector("centre", 0.3)
        assert isinstance(detector, Detector)
        [face] = detector.detect(np.zeros((200, 100, 3), np.uint8))
        assert face.landmarks.shape == (5, 2)
        result = CliRunner().invoke(main, ["swap", "--help"])
        assert "centre" in result.output
    assert "centre" not in _choices("swap", "--detector")


# --- worked example (c, d): a new export format and the runtime that runs it: one module and one row each -------------


class _NpzRunner:
    """The new format's module: a "network" stored as the weights of y = a * x + b in an .npz file."""

    def __init__(self, path, precision="fp32"):
        stored = np.load(path)
        self.a, self.b = float(stored["a"]), float(stored["b"])

    def __call__(self, inputs):
        return (self.a * inputs[0] + self.b).astype(np.float32)


TOY_FORMAT = ExportFormatRow("npz", "npz", ".npz", _NpzRunner, extra="")
TOY_RUNTIME = RuntimeRow("npzrt", "npz", ("fp32",))


def test_worked_example_a_new_export_format_and_runtime(tmp_path):
    from clipswap.inference.export import load_exported
    from clipswap.inference.runtime import RuntimeUnavailableError, resolve_runtime

    with pytest.raises(RuntimeUnavailableError, match="unknown runtime"):
        resolve_runtime("npzrt")
    with FORMATS.registered(TOY_FORMAT), RUNTIMES.registered(TOY_RUNTIME):
        assert "npz" in _choices("export", "--format")
        assert "npzrt" in _choices("swap", "--runtime") and "npzrt" in _choices("evaluate", "--runtime")
        assert resolve_runtime("npzrt", "fp32") == "npzrt"
        with pytest.raises(RuntimeUnavailableError, match="fp32 only"):
            resolve_runtime("npzrt", "bf16")
        path = tmp_path / TOY_FORMAT.file_name("generator")
        np.savez(path, a=2.0, b=1.0)
        runner = load_exported("npz", path)
        np.testing.assert_array_equal(runner([np.ones((1, 2), np.float32)]), [[3.0, 3.0]])
    assert "npz" not in _choices("export", "--format")
