"""Hostile input, one table over input classes x roles x command lines.

Each bad file is made on the fly. Every case asserts the same contract: the documented exit code; one sentence that
says what was wrong ("Error: ..." on one line, naming the file or the option); no traceback; nothing written, no
temporary file and no folder left, and every file that was there before byte-for-byte and mode-for-mode untouched.
The bomb cases run in a child process under an address-space limit (RLIMIT_AS), and its peak memory (ru_maxrss)
is compared with the same child swapping a healthy photo. COMMAND_CASES holds the options and outputs of every verb
that must be refused before any model work (NaN and infinite numbers, unknown options, an output that is a folder,
an info --json that cannot be written), with the exit code each documents (2 for an option, 1 otherwise). The
special classes have their own files too: damaged and hostile video, and partial files of killed runs
(test_hostile_video.py), what a video keeps of its input (media/test_video_fidelity.py), every float option of
every verb (commands/test_cli.py), checkpoints and manifests (checkpoints/test_hostile_checkpoints.py), pixel
limits (media/test_pixel_limit.py), non-UTF-8 names (media/test_non_utf8_names.py), the last-resort guard
(tests/test_cli_guard.py) and kill-and-resume (training/test_kill_and_resume.py).
"""

from __future__ import annotations

import hashlib
import os
import resource
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from clipswap.checkpoints.native import init_generator
from clipswap.cli import main
from clipswap.config import get_preset
from clipswap.quiet_start import drop_noise

from conftest import SHARED_DATA, load_inference_script, shared_data

FACE = SHARED_DATA / "lfw" / "Aaron_Sorkin" / "Aaron_Sorkin_0001.jpg"
OTHER = SHARED_DATA / "lfw" / "Abdullah_Gul" / "Abdullah_Gul_0001.jpg"


@pytest.fixture(autouse=True)
def _faces_present() -> None:
    """Every case reads the two LFW photos: skip (fail under CI) without ../shared/data."""
    shared_data("lfw", "Aaron_Sorkin", "Aaron_Sorkin_0001.jpg")
    shared_data("lfw", "Abdullah_Gul", "Abdullah_Gul_0001.jpg")


# ------------------------------------------------------------------------------------------------ the bad files


def _png_bomb(path: Path, width: int = 20_000, height: int = 20_000) -> None:
    """A 1 KB PNG whose header declares width x height pixels (400 million by default)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = zlib.compress(b"\x00" * 1024)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b""))


def _jpeg_bomb(path: Path) -> None:
    """A real JPEG of 12000 x 9000 pixels (108 million, flat grey: a few hundred KB on disk, 324 MB decoded)."""
    Image.new("L", (12_000, 9_000), 128).save(path, quality=50)


def _cut(fraction: float) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        data = FACE.read_bytes()
        path.write_bytes(data[: int(len(data) * fraction)])
    return make


def _animated(path: Path) -> None:
    frame = Image.open(FACE)
    frame.save(path, save_all=True, append_images=[frame.rotate(10)])


#: name -> (file name, maker or None for "never created", fragment the message must hold). The file name's suffix is
#: what the command sees.
BAD_IMAGES: dict[str, tuple[str, Callable[[Path], None] | None, str]] = {
    "empty file": ("empty.jpg", lambda p: p.write_bytes(b""), "cannot be read as an image"),
    "random bytes": ("noise.jpg", lambda p: p.write_bytes(np.random.default_rng(0).bytes(6_000)),
                     "cannot be read as an image"),
    "text named .png": ("text.png", lambda p: p.write_text("not an image\n"), "cannot be read as an image"),
    "JPEG cut at 60 %": ("cut.jpg", _cut(0.6), "is damaged or cut short"),
    "PNG bomb (400 MP header)": ("bomb.png", _png_bomb, "above the limit of 50 million"),
    "1 x 1 image": ("dot.png", lambda p: Image.new("RGB", (1, 1)).save(p), "no face"),
    "unsupported type": ("face.tiff", lambda p: Image.open(FACE).save(p), "unsupported type '.tiff'"),
    "missing file": ("missing.jpg", None, "does not exist"),
    "animated GIF (a video where an image is needed)": ("anim.gif", _animated, "anim.gif"),
    "Latin-1 name, cut": (os.fsdecode(b"t\xe9te.jpg"), _cut(0.5), "is damaged or cut short"),
}

#: Where a bad image goes.
ROLES = ("source", "target", "reference")


def _swap_args(role: str, bad: Path, output: Path) -> list[str]:
    source, target = (bad, FACE) if role == "source" else (FACE, bad) if role == "target" else (FACE, FACE)
    args = ["-s", str(source), "-t", str(target), "-o", str(output)]
    if role == "reference":
        args += ["--reference-face", str(bad)]
    return args


# -------------------------------------------------------------------------------------------------- the contract


def snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    """Every path under `folder` -> (SHA-256 or 'dir', mode): what must be the same after a refused command."""
    state = {}
    for path in sorted(folder.rglob("*")):
        mode = stat.S_IMODE(path.lstat().st_mode)
        digest = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
        state[os.fsdecode(path.relative_to(folder))] = (digest, mode)
    return state


def assert_refused(output: str, exit_code: int, fragment: str, expected_code: int = 1) -> None:
    """exit code 1 (2 for an option error), one sentence ending the output, holding `fragment`; no traceback
    anywhere."""
    assert exit_code == expected_code, output
    assert "Traceback" not in output, output
    lines = [line for line in output.strip().splitlines() if line.strip()]
    assert lines, "no message at all"
    message = lines[-1]
    assert message.startswith("Error: "), output
    assert fragment in message, f"{fragment!r} not in {message!r}"
    message.encode("utf-8")  # printable: a surrogate-escaped name would raise here


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return init_generator(get_preset("tiny").model, tmp_path_factory.mktemp("ckpt") / "tiny.keras")


@pytest.fixture(scope="module")
def inference():
    return load_inference_script("inference_script_hostile")


def _bad_file(tmp_path: Path, kind: str) -> tuple[Path, str]:
    name, make, fragment = BAD_IMAGES[kind]
    path = tmp_path / "in" / name
    path.parent.mkdir(exist_ok=True)
    if make is not None:
        make(path)
    return path, fragment


# ---------------------------------------------------------------------------------- clipswap swap, every class


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("kind", list(BAD_IMAGES))
def test_swap_refuses_a_bad_image_in_every_role(tiny, tmp_path, kind, role):
    bad, fragment = _bad_file(tmp_path, kind)
    output = tmp_path / "out" / "deep" / "swap.jpg"  # a folder tree the failed run must not leave behind
    before = snapshot(tmp_path)
    result = CliRunner().invoke(main, ["swap", "--no-progress", "--model", str(tiny), "--detector", "yunet",
                                       *_swap_args(role, bad, output)])
    assert_refused(result.output, result.exit_code, fragment)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("kind", ["random bytes", "JPEG cut at 60 %", "PNG bomb (400 MP header)", "missing file"])
@pytest.mark.parametrize("side", ["reference", "source"])
def test_swap_map_refuses_a_bad_image_on_either_side(tiny, tmp_path, kind, side):
    bad, fragment = _bad_file(tmp_path, kind)
    pair = f"{bad}={FACE}" if side == "reference" else f"{FACE}={bad}"
    output = tmp_path / "swap.jpg"
    before = snapshot(tmp_path)
    result = CliRunner().invoke(main, ["swap", "--no-progress", "--model", str(tiny), "--detector", "yunet",
                                       "-t", str(FACE), "-o", str(output), "--map", pair])
    assert_refused(result.output, result.exit_code, fragment)
    assert snapshot(tmp_path) == before


# ------------------------------------------------------------------------------- inference.py, the same classes


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("kind", ["random bytes", "JPEG cut at 60 %", "PNG bomb (400 MP header)", "1 x 1 image",
                                  "missing file", "Latin-1 name, cut"])
def test_inference_py_refuses_a_bad_image_in_every_role(inference, tiny, tmp_path, capsys, kind, role):
    bad, fragment = _bad_file(tmp_path, kind)
    output = tmp_path / "output" / "result.jpg"
    args = ["--model_path", str(tiny), "--detector", "yunet", "--runtime", "tf"]
    swap = _swap_args(role, bad, output)
    args += ["--source", swap[1], "--target", swap[3], "--output", swap[5], *swap[6:]]
    before = snapshot(tmp_path)
    code = inference.main(args)
    captured = capsys.readouterr()
    assert_refused(captured.out + captured.err, code, fragment)
    assert snapshot(tmp_path) == before


def test_inference_py_turns_an_unforeseen_failure_into_one_sentence(inference, tmp_path, capsys, monkeypatch):
    def broken(request, announce):
        raise RuntimeError("something nobody foresaw\nsecond line")

    monkeypatch.setattr("clipswap.inference.pipeline.run_swap", broken)
    code = inference.main(["--source", str(FACE), "--target", str(OTHER), "--output", str(tmp_path / "o.jpg")])
    captured = capsys.readouterr()
    assert_refused(captured.err, code, "unexpected RuntimeError: something nobody foresaw (this is a bug")
    assert "re-run with -vv for the traceback" in captured.err and "second line" not in captured.err
    with pytest.raises(RuntimeError, match="nobody foresaw"):
        inference.main(["-vv", "--source", str(FACE), "--target", str(OTHER), "--output", str(tmp_path / "o.jpg")])


# ------------------------------------------------------- options, outputs and files of the later probe, one table


def _blocked_json(tmp_path: Path) -> list[str]:
    (tmp_path / "blocker").write_text("a file where a folder is needed")
    return ["info", "--preset", "tiny", "--no-detector", "--json", str(tmp_path / "blocker" / "info.json")]


def _output_folder(tmp_path: Path) -> list[str]:
    (tmp_path / "out" / "dir.png").mkdir(parents=True)
    return ["swap", "--no-progress", "--model", "demo", "-s", str(FACE), "-t", str(OTHER),
            "-o", str(tmp_path / "out" / "dir.png")]


def _swap_option(*option: str) -> Callable[[Path], list[str]]:
    return lambda tmp_path: ["swap", "--no-progress", "--model", "demo", "-s", str(FACE), "-t", str(OTHER),
                             "-o", str(tmp_path / "swap.png"), *option]


#: name -> (arguments of `clipswap`, made in the test's folder; exit code; fragment of the one sentence).
COMMAND_CASES: dict[str, tuple[Callable[[Path], list[str]], int, str]] = {
    "output is an existing folder": (_output_folder, 1, "is an existing folder, not a file"),
    "--feather nan": (_swap_option("--feather", "nan"), 2, "'nan' is not a finite number"),
    "--smooth-beta nan": (_swap_option("--smooth-beta", "nan"), 2, "'nan' is not a finite number"),
    "--det-threshold nan": (_swap_option("--det-threshold", "nan"), 2, "'nan' is not a finite number"),
    "--similarity nan": (_swap_option("--reference-face", str(FACE), "--similarity", "nan"), 2,
                         "'nan' is not a finite number"),
    "--smooth-min-cutoff inf": (_swap_option("--smooth-min-cutoff", "inf"), 2, "'inf' is not a finite number"),
    "unknown option": (_swap_option("--colour", "red"), 2, "No such option '--colour'"),
    "info --json where a folder cannot be made": (_blocked_json, 1, "cannot create the output folder"),
}


@pytest.mark.parametrize("case", list(COMMAND_CASES))
def test_a_bad_option_or_output_is_one_sentence_before_any_model_work(tmp_path, monkeypatch, case):
    make, code, fragment = COMMAND_CASES[case]
    args = make(tmp_path)

    def no_models(*args, **kwargs):
        raise AssertionError("a model was loaded before the request was checked")

    monkeypatch.setattr("clipswap.inference.pipeline.build_swapper", no_models)
    monkeypatch.setattr("clipswap.models.inventory.build_inventory", no_models)
    before = snapshot(tmp_path)
    result = CliRunner().invoke(main, args)
    assert_refused(result.output, result.exit_code, fragment, code)
    assert snapshot(tmp_path) == before


def test_inference_py_names_its_own_pixel_limit_option(inference, tmp_path, capsys):
    """The refusal of a too-large target tells the user of inference.py to raise inference.py's limit, which it
    takes; a raised limit reads the file."""
    bomb = tmp_path / "big.png"
    Image.new("RGB", (400, 300)).save(bomb)
    args = ["--model_path", "landmarks", "--source", str(FACE), "--target", str(bomb),
            "--output", str(tmp_path / "o.png")]
    code = inference.main(["--max-pixels", "100000", *args])
    captured = capsys.readouterr()
    assert_refused(captured.out + captured.err, code, "raise the limit with `inference.py --max-pixels N`")
    code = inference.main(["--max-pixels", "200000", *args])
    captured = capsys.readouterr()
    assert_refused(captured.out + captured.err, code, "no face")


# ------------------------------------------------------------------------------ outputs that would destroy input


@pytest.mark.parametrize("victim", ["source", "target", "reference"])
def test_an_output_that_is_an_input_is_refused_and_the_input_kept(tmp_path, victim):
    files = {name: tmp_path / f"{name}.jpg" for name in ("source", "target", "reference")}
    for name, path in files.items():
        path.write_bytes((FACE if name != "reference" else OTHER).read_bytes())
    before = snapshot(tmp_path)
    result = CliRunner().invoke(main, ["swap", "--no-progress", "--model", "landmarks",
                                       "-s", str(files["source"]), "-t", str(files["target"]),
                                       "--reference-face", str(files["reference"]), "-o", str(files[victim])])
    assert_refused(result.output, result.exit_code, f"the output {files[victim]} would overwrite an input")
    assert snapshot(tmp_path) == before


def test_an_output_of_an_unsupported_type_is_refused(tmp_path):
    before = snapshot(tmp_path)
    result = CliRunner().invoke(main, ["swap", "--no-progress", "--model", "landmarks", "-s", str(FACE),
                                       "-t", str(OTHER), "-o", str(tmp_path / "swap.txt")])
    assert_refused(result.output, result.exit_code, "unsupported type '.txt'")
    assert snapshot(tmp_path) == before


# --------------------------------------------------------------- unusual but valid images are read, not refused


@pytest.mark.parametrize("mode", ["16-bit", "CMYK", "grey", "palette"])
def test_unusual_but_valid_images_swap_like_the_plain_photo(tmp_path, mode):
    plain = np.asarray(Image.open(OTHER).convert("RGB"))
    path = tmp_path / ("target.png" if mode in ("16-bit", "palette") else "target.jpg")
    image = Image.fromarray(plain)
    if mode == "16-bit":
        import cv2

        cv2.imwrite(str(path), (plain.astype(np.uint16) * 257)[..., ::-1])
    else:
        {"CMYK": image.convert("CMYK"), "grey": image.convert("L"), "palette": image.convert("P")}[mode].save(path)
    output = tmp_path / "swap.png"
    result = CliRunner().invoke(main, ["swap", "--no-progress", "--no-watermark", "--model", "landmarks",
                                       "-s", str(FACE), "-t", str(path), "-o", str(output)])
    assert result.exit_code == 0, result.output
    swapped = np.asarray(Image.open(output).convert("RGB")).astype(np.float32)
    assert swapped.shape == plain.shape
    # the frame around the face is the target's, decoded right (not garbage, not a wrong bit depth or channel order)
    border = np.ones(plain.shape[:2], bool)
    border[40:-40, 40:-40] = False
    reference = np.asarray(Image.open(path).convert("RGB")).astype(np.float32) if mode != "16-bit" else plain
    assert np.abs(swapped[border] - reference[border]).mean() < 3.0


# ---------------------------------------------------------------------- bombs: bounded memory, clean stderr


#: Address-space cap of the bomb children (RLIMIT_AS): the landmarks swap of a 250 px photo runs in 2.5 GB here, a
#: decoded 400-million-pixel bomb would need 1.2 GB for its pixels alone on top; TensorFlow is not imported on
#: this path (its import alone reserves more than this).
BOMB_ADDRESS_SPACE = 3 << 30


def _limit_address_space() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (BOMB_ADDRESS_SPACE, BOMB_ADDRESS_SPACE))


def _peak_rss_mb(args: list[str], cwd: Path) -> tuple[int, str, str, float]:
    """Run `args` in a child under BOMB_ADDRESS_SPACE; its exit code, stdout, stderr and its own peak resident
    memory in MB (os.wait4)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        child = subprocess.Popen(args, cwd=cwd, stdout=out, stderr=err, preexec_fn=_limit_address_space)
        timer = threading.Timer(300, child.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(child.pid, 0)
        finally:
            timer.cancel()
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return child.returncode, out.read().decode(), err.read().decode(), usage.ru_maxrss / 1024


@pytest.mark.slow
@pytest.mark.parametrize("bomb", ["png", "jpeg"])
def test_a_bomb_is_refused_within_the_memory_of_a_healthy_swap(tmp_path, bomb):
    target = tmp_path / f"bomb.{'png' if bomb == 'png' else 'jpg'}"
    (_png_bomb if bomb == "png" else _jpeg_bomb)(target)
    command = [sys.executable, "-m", "clipswap.cli", "swap", "--no-progress", "--model", "landmarks", "-s", str(FACE)]
    code, _, err, healthy = _peak_rss_mb([*command, "-t", str(OTHER), "-o", str(tmp_path / "ok.jpg")], tmp_path)
    assert code == 0, err
    before = snapshot(tmp_path)
    code, out, err, peak = _peak_rss_mb([*command, "-t", str(target), "-o", str(tmp_path / "swap.jpg")], tmp_path)
    assert_refused(out + err, code, "above the limit of 50 million")
    assert snapshot(tmp_path) == before
    assert peak <= healthy * 1.05 + 50, f"the refused bomb peaked at {peak:.0f} MB, a healthy swap at {healthy:.0f} MB"


def test_stderr_holds_only_our_lines_when_tensorflow_loads(tiny, tmp_path):
    """The generator's load imports TensorFlow; its C++ start-up lines (absl, oneDNN, CUDA stub) must not come
    before our own one-sentence error."""
    bad = tmp_path / "cut.jpg"
    _cut(0.6)(bad)
    result = subprocess.run([sys.executable, "-m", "clipswap.cli", "swap", "--no-progress", "--model", str(tiny),
                             "--detector", "yunet", "--runtime", "tf", "-s", str(bad), "-t", str(FACE),
                             "-o", str(tmp_path / "o.jpg")], capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("Error: ") and "is damaged or cut short" in lines[-1], result.stderr
    assert all(line.startswith(("Error: ", "WARNING clipswap")) for line in lines), result.stderr


def test_drop_noise_keeps_every_line_that_is_not_start_up_noise():
    captured = (b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
                b"I0000 00:00:1796232122.620336    2754 port.cc:153] oneDNN custom operations are on.\n"
                b"I0000 00:00:1796232122.620670    2754 cudart_stub.cc:31] Could not find cuda drivers.\n"
                b"E0000 00:00:1796232125.569772    2754 cuda_platform.cc:52] failed call to cuInit: INTERNAL: x\n"
                b"E0000 00:00:1796232125.569772    2754 other.cc:9] a real error\n"
                b"ImportError: a real Python message\n")
    assert drop_noise(captured) == (b"E0000 00:00:1796232125.569772    2754 other.cc:9] a real error\n"
                                    b"ImportError: a real Python message\n")
