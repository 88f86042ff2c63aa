"""The pixel limit: an image or video whose header declares more pixels than `clipswap
--max-pixels` (50 million by default) is refused before anything is decoded, with one sentence that names the limit
and the option; a 1.9 MB PNG declaring 400 million pixels used to take the swap past 12 GB."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from clipswap.cli import main
from clipswap.media import common as media
from clipswap.media.common import DEFAULT_MAX_PIXELS, MediaError, set_max_pixels
from clipswap.media.images import read_image

from conftest import shared_data


@pytest.fixture(autouse=True)
def _restore_limit():
    pillow = Image.MAX_IMAGE_PIXELS
    yield
    set_max_pixels(DEFAULT_MAX_PIXELS)
    assert Image.MAX_IMAGE_PIXELS == pillow  # reading a header leaves Pillow's own guard as it was


def _bomb_png(path, width: int, height: int) -> None:
    """A small valid PNG whose IHDR declares width x height grey pixels (the data is one short zlib stream)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    data = zlib.compress(b"\x00" * 1024)  # far too little for the declared size: only the header is ever read
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b""))


@pytest.mark.parametrize(("width", "height"), [(10_000, 6_000), (20_000, 20_000)])
def test_an_image_declaring_too_many_pixels_is_refused_from_its_header(tmp_path, width, height):
    path = tmp_path / "bomb.png"
    _bomb_png(path, width, height)
    assert path.stat().st_size < 10_000
    with pytest.raises(MediaError, match=r"above the limit of 50 million.*clipswap --max-pixels N"):
        read_image(path)


def test_the_limit_is_an_option_and_its_default_matches(tmp_path):
    assert DEFAULT_MAX_PIXELS == 50_000_000
    option = next(p for p in main.params if p.name == "max_pixels")
    assert option.default == DEFAULT_MAX_PIXELS
    face = shared_data("lfw", "Aaron_Sorkin", "Aaron_Sorkin_0001.jpg")
    output = tmp_path / "out.jpg"
    result = CliRunner().invoke(main, ["--max-pixels", "10000", "swap", "--no-progress", "--model", "landmarks",
                                       "-s", str(face), "-t", str(face), "-o", str(output)])
    assert result.exit_code == 1
    message = result.output.strip().splitlines()[-1]
    assert message.startswith("Error: ") and "250 x 250 image" in message and "--max-pixels" in message
    assert "Traceback" not in result.output and not output.exists()


def test_swap_refuses_a_bomb_without_decoding_it(tmp_path):
    bomb = tmp_path / "bomb.png"
    _bomb_png(bomb, 16_848, 24_750)  # the size from the issue
    face = shared_data("lfw", "Aaron_Sorkin", "Aaron_Sorkin_0001.jpg")
    output = tmp_path / "out.png"
    result = CliRunner().invoke(main, ["swap", "--no-progress", "--model", "landmarks", "-s", str(face),
                                       "-t", str(bomb), "-o", str(output)])
    assert result.exit_code == 1
    assert "16848 x 24750 image" in result.output and "--max-pixels" in result.output
    assert not output.exists()


def test_raising_the_limit_lets_a_big_real_image_through(tmp_path):
    path = tmp_path / "big.png"
    Image.fromarray(np.zeros((3000, 4000, 3), np.uint8)).save(path)
    set_max_pixels(12_000_000)
    assert read_image(path).shape == (3000, 4000, 3)
    assert media._limits["pixels"] == 12_000_000
    set_max_pixels(5_000_000)
    with pytest.raises(MediaError, match="4000 x 3000 image"):
        read_image(path)
    with pytest.raises(ValueError, match="at least 1"):
        set_max_pixels(0)


def test_a_video_with_frames_above_the_limit_is_refused_on_open():
    from clipswap.media.video import VideoReader

    clip = shared_data("video", "multi_face_1080p.mp4")
    set_max_pixels(1920 * 1080 - 1)
    with pytest.raises(MediaError, match=r"1920 x 1080 video .*--max-pixels"):
        VideoReader(clip)
    set_max_pixels(1920 * 1080)
    with VideoReader(clip) as reader:
        assert reader.info.size == (1920, 1080)
