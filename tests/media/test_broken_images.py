"""Broken still images: a JPEG or PNG cut short is refused instead of being swapped with OpenCV's
grey fill, an animated WebP or PNG is refused instead of being flattened to its first frame, and a dropped alpha
channel is said."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from clipswap.cli import main
from clipswap.media.common import MediaError
from clipswap.media.images import read_image

from conftest import shared_data

FACE = ("lfw", "Aaron_Sorkin", "Aaron_Sorkin_0001.jpg")


def _cut(source, destination, fraction: float):
    data = source.read_bytes()
    destination.write_bytes(data[: int(len(data) * fraction)])
    return destination


def test_a_jpeg_cut_at_60_percent_is_refused(tmp_path):
    path = _cut(shared_data(*FACE), tmp_path / "cut.jpg", 0.6)
    with pytest.raises(MediaError, match="damaged or cut short"):
        read_image(path)


def test_a_png_cut_in_half_is_refused(tmp_path):
    whole = tmp_path / "whole.png"
    Image.fromarray(read_image(shared_data(*FACE))).save(whole)
    with pytest.raises(MediaError, match="damaged or cut short"):
        read_image(_cut(whole, tmp_path / "cut.png", 0.5))


@pytest.mark.parametrize("suffix", [".webp", ".png"])
def test_an_animated_image_is_refused_not_flattened(tmp_path, suffix):
    frames = [Image.fromarray(np.full((48, 48, 3), 60 * i, np.uint8)) for i in range(3)]
    path = tmp_path / f"animated{suffix}"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    with pytest.raises(MediaError, match=r"animated image \(3 frames\).*video"):
        read_image(path)


def test_an_alpha_channel_is_read_and_its_loss_said(tmp_path, caplog):
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 128
    path = tmp_path / "alpha.png"
    Image.fromarray(rgba).save(path)
    with caplog.at_level(logging.WARNING, logger="clipswap.media.images"):
        image = read_image(path)
    assert image.shape == (40, 40, 3)
    assert any("alpha channel" in record.getMessage() for record in caplog.records)


def test_swap_of_a_cut_target_exits_1_and_writes_nothing(tmp_path):
    target = _cut(shared_data(*FACE), tmp_path / "cut.jpg", 0.6)
    output = tmp_path / "out.jpg"
    result = CliRunner().invoke(main, ["swap", "--no-progress", "--model", "landmarks", "-s", str(shared_data(*FACE)),
                                       "-t", str(target), "-o", str(output)])
    assert result.exit_code == 1
    assert "damaged or cut short" in result.output and "Traceback" not in result.output
    assert not output.exists()
