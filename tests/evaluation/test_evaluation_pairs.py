"""Pairs files and the evaluation protocols (synthetic files only)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from clipswap.evaluation.pairs import Pair, PairsFileError, read_pairs, write_pairs
from clipswap.evaluation.protocols import ffpp_protocol, sample_pairs, sample_protocol
from clipswap.media.video import VideoInfo, VideoWriter


def test_whitespace_pairs_with_comments_quotes_and_relative_paths(tmp_path):
    (tmp_path / "list.txt").write_text(
        '# source target output\n\na.jpg b.jpg\n"my photos/c.jpg" d.jpg out/e.png\nf.jpg /abs/g.jpg - person_f\n',
        encoding="utf-8",
    )
    pairs = read_pairs(tmp_path / "list.txt")
    assert pairs == [
        Pair(tmp_path / "a.jpg", tmp_path / "b.jpg"),
        Pair(tmp_path / "my photos/c.jpg", tmp_path / "d.jpg", tmp_path / "out/e.png"),
        Pair(tmp_path / "f.jpg", Path("/abs/g.jpg"), None, "person_f"),
    ]
    assert pairs[0].identity == str(tmp_path / "a.jpg")
    assert pairs[2].identity == "person_f"


def test_csv_with_header_in_any_column_order(tmp_path):
    (tmp_path / "pairs.csv").write_text(
        'target,label,source\nt1.png,alice,s1.png\n"t,2.png",,s2.png\n', encoding="utf-8"
    )
    pairs = read_pairs(tmp_path / "pairs.csv")
    assert pairs == [
        Pair(tmp_path / "s1.png", tmp_path / "t1.png", None, "alice"),
        Pair(tmp_path / "s2.png", tmp_path / "t,2.png", None, None),
    ]


def test_write_then_read_round_trip(tmp_path):
    pairs = [
        Pair(tmp_path / "img" / "a b.jpg", tmp_path / "img" / "c.jpg", None, "A"),
        Pair(tmp_path / "img" / "d.jpg", tmp_path / "img" / "e.jpg", tmp_path / "swaps" / "1.png", None),
    ]
    path = write_pairs(pairs, tmp_path / "pairs.tsv", comment="made by a test")
    assert path.read_text(encoding="utf-8").startswith("# made by a test\nsource\ttarget\toutput\tlabel\n")
    assert read_pairs(path) == pairs
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("only_one_field.jpg\n", "expected 2 to 4 fields"),
        ("a b c d e\n", "expected 2 to 4 fields"),
        ("source,target,colour\na,b,c\n", "unknown"),
        ("# nothing\n\n", "no pairs"),
        ('a.jpg "b c.jpg\n', r"bad.txt:1: No closing quotation .*close the quote"),
        ('# header\nx.jpg y.jpg\n"a.jpg b.jpg\n', r"bad.txt:3: No closing quotation"),
    ],
)
def test_bad_pairs_files_name_the_problem(tmp_path, text, message):
    (tmp_path / "bad.txt").write_text(text, encoding="utf-8")
    with pytest.raises(PairsFileError, match=message):
        read_pairs(tmp_path / "bad.txt")


def _image_folder(root: Path, people: dict[str, int]) -> None:
    for person, count in people.items():
        folder = root / person
        folder.mkdir(parents=True)
        for i in range(count):
            cv2.imwrite(str(folder / f"{person}_{i:04d}.jpg"), np.full((8, 8, 3), i * 20, np.uint8))


def test_sample_protocol_is_seeded_and_pairs_distinct_identities(tmp_path):
    _image_folder(tmp_path / "faces", {"ann": 3, "bob": 1, "cid": 2, "dee": 2})
    first = sample_pairs(tmp_path / "faces", 20, seed=7)
    assert first == sample_pairs(tmp_path / "faces", 20, seed=7)
    assert first != sample_pairs(tmp_path / "faces", 20, seed=8)
    assert len(first) == 20
    for pair in first:
        assert pair.label == pair.source.parent.name
        assert pair.source.parent.name != pair.target.parent.name
    path = sample_protocol(tmp_path / "faces", tmp_path / "run", 20, seed=7)
    assert read_pairs(path) == first


def test_sample_protocol_follows_person_folders_that_are_symbolic_links(tmp_path):
    """A held-out set is often a folder of links into the full dataset: the linked people's images are sampled (with
    the link's name as the label), and a link back up the tree is entered once rather than looping."""
    _image_folder(tmp_path / "all", {"ann": 2, "bob": 2, "cid": 2})
    (tmp_path / "heldout").mkdir()
    for person in ("ann", "bob"):
        (tmp_path / "heldout" / person).symlink_to(tmp_path / "all" / person, target_is_directory=True)
    (tmp_path / "all" / "ann" / "loop").symlink_to(tmp_path / "heldout", target_is_directory=True)
    pairs = sample_pairs(tmp_path / "heldout", 8, seed=0)
    assert len(pairs) == 8
    assert {p.label for p in pairs} == {"ann", "bob"}
    assert all(p.source.parent.name == p.label != p.target.parent.name for p in pairs)
    assert all(p.source.parent.parent == tmp_path / "heldout" for p in pairs)


def test_sample_protocol_without_subfolders_treats_each_image_as_an_identity(tmp_path):
    folder = tmp_path / "flat"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"{i}.png"), np.zeros((4, 4, 3), np.uint8))
    pairs = sample_pairs(folder, 10, seed=0)
    assert all(p.source != p.target and p.label is None for p in pairs)


def _write_video(path: Path, frames: int, offset: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with VideoWriter(path, VideoInfo((32, 32), 10.0, frames / 10.0, None)) as writer:
        for i in range(frames):
            # The frame index is written into the pixels so the test can check which frame was saved.
            writer.write(np.full((32, 32, 3), offset + 8 * i, np.uint8))


def test_ffpp_protocol_samples_frames_and_never_pairs_a_video_with_itself(tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    for n, name in enumerate(["v0", "v1", "v2"]):
        _write_video(videos / f"{name}.mp4", frames=20, offset=n)
    pairs_path = ffpp_protocol(videos, tmp_path / "run", frames_per_video=4, seed=3)
    pairs = read_pairs(pairs_path)
    assert len(pairs) == 12
    for pair in pairs:
        assert pair.label == pair.source.parent.name != pair.target.parent.name
        assert pair.output is None
        index = int(pair.target.stem)
        value = int(cv2.imread(str(pair.target))[0, 0, 0])
        assert abs(value - (8 * index + int(pair.target.parent.name[1]))) <= 3  # H.264 is lossy
    # Same seed, same frames and pairs.
    again = read_pairs(ffpp_protocol(videos, tmp_path / "run2", frames_per_video=4, seed=3))
    assert [(p.source.relative_to(tmp_path / "run2"), p.target.relative_to(tmp_path / "run2")) for p in again] == [
        (p.source.relative_to(tmp_path / "run"), p.target.relative_to(tmp_path / "run")) for p in pairs
    ]


def test_ffpp_protocol_needs_two_videos(tmp_path):
    _write_video(tmp_path / "one" / "v.mp4", frames=12, offset=0)
    with pytest.raises(ValueError, match="at least 2 videos"):
        ffpp_protocol(tmp_path / "one", tmp_path / "run")


def test_non_utf8_pairs_file_names_the_file_and_line(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("a.jpg b.jpg\nc\u00e9.jpg d.jpg\n".encode("latin-1"))
    with pytest.raises(PairsFileError, match=r"latin1\.txt:2: not UTF-8 text \(byte 0xe9") as caught:
        read_pairs(path)
    assert isinstance(caught.value.__cause__, UnicodeDecodeError)
    # A UTF-8 byte-order mark is not part of the header's first column name.
    path.write_bytes("\ufeffsource\ttarget\nx.jpg\ty.jpg\n".encode())
    assert read_pairs(path) == [Pair(tmp_path / "x.jpg", tmp_path / "y.jpg")]
