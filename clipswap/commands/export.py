"""`clipswap export`: the generator and its identity encoder as deployment files (SavedModel, ONNX, OpenVINO, LiteRT).

    clipswap export --model demo --format onnx --output OUT

writes OUT/generator.onnx, OUT/identity.onnx and OUT/export.json (what each file takes and returns, the checkpoint's
SHA-256 and the measured differences), so a deployment needs no TensorFlow: align the faces (5-point ArcFace
template), run the identity file on the source's 112 crop and the generator on the target's crop.

The bundled SFace's ONNX file is its original OpenCV Zoo graph behind a layout prefix (clipswap.inference.
sface_export), not a tf2onnx conversion of our Keras copy: the same contract and the same check, without the 2.4 GiB
that converting the 36 MB Keras graph takes. Every other network and format is converted from Keras.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import tempfile
from pathlib import Path

import click

from clipswap.commands.params import FiniteFloatRange, LiveChoice, model_files_option
from clipswap.errors import ClipswapError
from clipswap.options import EXPORT_FORMATS, EXPORT_TOLERANCE, INFERENCE_GRAPH_REVISION

#: What export.json says each file reads and returns (clipswap.models.generator, clipswap.checkpoints.encoders).
GENERATOR_IO = ("target [B, S, S, 3] float32 RGB in [-1, 1] (ArcFace-template crop), identity [B, D] float32 raw "
                "vector "
                "(then source [B, S, S, 3] float32 RGB in [-1, 1] when the conditioning reads one) -> [B, S, S, 3] "
                "float32 RGB, "
                "read as [-1, 1] (clip)")
GENERATOR_GRAPH = ("inference form, revision {revision} (clipswap.models.generator.inference_generator: each down "
                   "block's 3x3 conv + 2x2 average pool as one stride-2 4x4 conv, the same function), checked against "
                   "the trained model")
IDENTITY_IO = "crop [B, 112, 112, 3] float32 RGB in [0, 1] (ArcFace 112 template) -> [B, D] float32 raw vector"
#: How export.json says the identity file was made: converted from the Keras encoder, or (the bundled SFace in ONNX)
#: its original ONNX graph written directly, which needs an ONNX runtime with opset 21.
IDENTITY_GRAPH = {
    False: "converted from the Keras encoder, checked against it",
    True: ("OpenCV Zoo's SFace ONNX graph (int8 block-quantised weights, opset 21) behind an NHWC [0, 1] -> NCHW "
           "0..255 prefix (clipswap.inference.sface_export), checked against the Keras encoder"),
}


@click.command("export")
@click.option("--model", "model", default=None,
              help="Generator: auto (default), demo, or a .h5/.keras/.json file.")
@click.option("--format", "fmt", type=LiveChoice(EXPORT_FORMATS), required=True, help="The deployment format.")
@click.option("--output", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="A new folder for the files.")
@click.option("--identity/--no-identity", default=True, show_default=True,
              help="Export the identity encoder the generator reads too.")
@click.option("--arcface", type=click.Path(dir_okay=False), default=None,
              help="ArcFace-Res50.h5 for an ArcFace generator (default: pretrained_ckpts/).")
@click.option("--tolerance", type=FiniteFloatRange(min=0.0, min_open=True), default=EXPORT_TOLERANCE, show_default=True,
              help="Largest difference allowed between an exported network and the Keras model.")
@model_files_option
def export(model, fmt, output, identity, arcface, tolerance, model_files):
    """Export the generator (and its identity encoder), run each exported file beside the Keras model on one batch
    and print the largest difference; a difference above --tolerance is an error and nothing is written."""
    from clipswap.atomic import FOLDER_MODE, outermost_missing, remove_empty_folders
    from clipswap.checkpoints.native import load_any_generator, sha256_of
    from clipswap.inference.choice import resolve_model
    from clipswap.inference.export import export_network, get_format, require_modules

    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise click.ClickException(f"{output} already exists and is not an empty folder; choose a new --output")
    spec = get_format(fmt)
    # The folders above --output that this run creates go again when it fails; nothing that existed is removed.
    created = outermost_missing(output.parent)
    try:
        require_modules(spec.write_modules, f"exporting to {fmt}", spec.extra)
        choice = resolve_model(model)
        if not choice.is_generator:
            what = "the landmark warp" if choice.kind == "warp" else "the classical swap"
            raise click.ClickException(f"--model {choice.kind} is {what}, not a network; there is nothing to export")
        checkpoint = load_any_generator(choice.path)
        networks = {"generator": checkpoint.model}
        writers = {}  # network name -> a writer of its own file, in place of converting the Keras graph
        if identity:
            from clipswap.checkpoints.encoders import load_identity_encoder
            from clipswap.registry import given_files

            encoder = load_identity_encoder(checkpoint.config.identity_encoder,
                                            {**model_files, **given_files({"arcface": arcface})})
            networks["identity"] = encoder.model
            if fmt == "onnx" and encoder.onnx_source is not None:
                from clipswap.inference.sface_export import write_sface_onnx

                writers["identity"] = functools.partial(write_sface_onnx, encoder.onnx_source)
        output.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
        try:
            files, differences = {}, {}
            for name, network in networks.items():
                differences[name] = export_network(network, fmt, staging / spec.file_name(name), tolerance,
                                                   write=writers.get(name))
                files[name] = spec.file_name(name)
                click.echo(f"{name:<10} {fmt} {output / files[name]}   max difference to Keras "
                           f"{differences[name]:.2e} (tolerance {tolerance:g})")
            config = checkpoint.config
            manifest = {
                "format": fmt,
                "files": files,
                "generator_io": GENERATOR_IO,
                "identity_io": IDENTITY_IO if identity else None,
                "identity_graph": IDENTITY_GRAPH["identity" in writers] if identity else None,
                "model": config.to_dict(),
                "image_size": config.image_size,
                "identity_encoder": config.identity_encoder,
                "identity_dim": config.identity_dim,
                "checkpoint": str(choice.path),
                "checkpoint_sha256": sha256_of(checkpoint.path),
                "generator_graph": GENERATOR_GRAPH.format(revision=INFERENCE_GRAPH_REVISION),
                "max_difference": differences,
                "tolerance": tolerance,
            }
            (staging / "export.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
            os.chmod(staging, FOLDER_MODE)
            if output.exists():
                output.rmdir()  # empty (checked above)
            os.replace(staging, output)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    except BaseException as error:
        # Whatever stops the export (a failure, a refused tolerance, Ctrl-C, SIGTERM) takes its new folders along.
        if created is not None:
            remove_empty_folders(output.parent, created)
        if isinstance(error, (ClipswapError, OSError)):
            raise click.ClickException(str(error)) from error
        raise
    click.echo(f"wrote {output}/export.json")
