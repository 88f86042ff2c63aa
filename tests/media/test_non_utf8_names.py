"""File names that are not valid UTF-8: a Latin-1 `t\\xe9.jpg` used to crash `swap` with SIGSEGV
(cv2.imread on the surrogate-escaped name) and `align` with a UnicodeEncodeError on every rerun. They are read,
swapped, aligned and stored like any other name."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from clipswap.media.images import read_image

from conftest import require_module, shared_data

if sys.platform == "win32" or os.fsencode("\udce9") != b"\xe9":
    pytest.skip("needs a POSIX file system that stores raw bytes in names", allow_module_level=True)

LATIN1 = b"t\xe9"  # "te" with an acute accent in Latin-1: not valid UTF-8


def _copy(source, folder, stem: bytes):
    destination = os.path.join(os.fsencode(folder), stem + b".jpg")
    shutil.copyfile(source, destination)
    return os.fsdecode(destination)  # what Python gives a program: a str with a surrogate escape


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "clipswap.cli", *args], capture_output=True, timeout=600)


def test_read_image_opens_a_latin1_name(tmp_path):
    path = _copy(shared_data("lfw", "Aaron_Sorkin", "Aaron_Sorkin_0001.jpg"), tmp_path, LATIN1)
    assert read_image(path).shape == (250, 250, 3)


def test_swap_reads_and_writes_latin1_names(tmp_path):
    require_module("dlib", "the landmark model places dlib's 68 landmarks")
    source = _copy(shared_data("lfw", "Aaron_Sorkin", "Aaron_Sorkin_0001.jpg"), tmp_path, LATIN1)
    target = _copy(shared_data("lfw", "Abdullah_Gul", "Abdullah_Gul_0001.jpg"), tmp_path, b"target")
    output = os.fsdecode(os.path.join(os.fsencode(tmp_path), b"out\xe9.jpg"))
    result = _cli("swap", "--no-progress", "--model", "landmarks", "-s", source, "-t", target, "-o", output)
    assert result.returncode == 0, result.stderr[-2000:]
    assert b"swapped 1 face(s)" in result.stdout
    assert read_image(output).shape == (250, 250, 3)


@pytest.mark.slow
def test_align_keeps_a_latin1_name_and_reruns(tmp_path):
    from clipswap.facedata.shards import iterate_records

    person = tmp_path / "data" / "Aaron_Sorkin"
    person.mkdir(parents=True)
    _copy(shared_data("lfw", "Aaron_Sorkin", "Aaron_Sorkin_0001.jpg"), person, LATIN1)
    _copy(shared_data("lfw", "Aaron_Sorkin", "Aaron_Sorkin_0002.jpg"), person, b"plain")
    for _ in range(2):  # the second run resumes from the first's manifest
        result = _cli("align", "--input", str(tmp_path / "data"), "--output", str(tmp_path / "aligned"),
                      "--size", "128", "--workers", "1", "--no-progress")
        assert result.returncode == 0, result.stderr[-2000:]
    records = iterate_records(tmp_path / "aligned" / "shards")
    names = sorted(os.fsencode(record.path).rsplit(b"/", 1)[-1] for record in records)
    assert names == [b"plain.jpg", LATIN1 + b".jpg"]
