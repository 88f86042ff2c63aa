"""Several people mapped (`--map REF=SRC`) on ../shared/data/wild/couple.jpg: each of the two
faces is matched to its own reference and takes its own source's identity; a face that matches no reference is left
alone when no --source is given; bad --map values and --map with the landmark model are usage errors."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from clipswap.checkpoints.pretrained import DEMO_DIR, DEMO_FILE
from clipswap.cli import main
from clipswap.face.align import align_face
from clipswap.face.detection import sort_by_area
from clipswap.face.similarity import cosine_similarity
from clipswap.media.images import read_image, write_image

from conftest import require_module, shared_data

SOURCES = (("Aaron_Sorkin", "Aaron_Sorkin_0001.jpg"), ("Abdullah_Gul", "Abdullah_Gul_0001.jpg"))


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """(couple.jpg, [its two faces' boxes, left to right], [a reference image of each cut from the photo], the two
    source photos, an SFace embedder of the face nearest a box)."""
    require_module("dlib", "the demo generator reads the landmark swap (dlib's 68 points)")
    if not (DEMO_DIR / DEMO_FILE).is_file():
        pytest.skip("the shipped demo generator is absent")
    from clipswap.checkpoints.encoders import load_identity_encoder
    from clipswap.face.yunet import YuNetDetector

    folder = tmp_path_factory.mktemp("map")
    photo_path = shared_data("wild", "couple.jpg")
    photo = read_image(photo_path)
    detector, encoder = YuNetDetector(), load_identity_encoder("sface")
    faces = sorted(sort_by_area(detector.detect(photo))[:2], key=lambda d: d.box[0])
    references = []
    for index, face in enumerate(faces):
        x0, y0, x1, y1 = face.box
        grow = 0.6 * (x1 - x0)
        cut = photo[max(0, int(y0 - grow)):int(y1 + grow), max(0, int(x0 - grow)):int(x1 + grow)]
        references.append(write_image(np.ascontiguousarray(cut), folder / f"reference_{index}.png"))
    sources = [shared_data("lfw", *parts) for parts in SOURCES]

    def embed_near(image, box):
        centre = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
        found = detector.detect(image)
        face = min(found, key=lambda d: np.linalg.norm(np.array([(d.box[0] + d.box[2]) / 2,
                                                                 (d.box[1] + d.box[3]) / 2]) - centre))
        return encoder.embed(align_face(image, face.landmarks, 112)[0][None])[0]

    return photo_path, [f.box for f in faces], references, sources, embed_near


def _swap(*args):
    return CliRunner().invoke(main, ["swap", "--no-progress", "--model", "demo", *map(str, args)])


def test_each_face_takes_its_own_source(scene, tmp_path):
    photo_path, boxes, references, sources, embed_near = scene
    output = tmp_path / "mapped.png"
    result = _swap("-t", photo_path, "-o", output, "--map", f"{references[0]}={sources[0]}",
                   "--map", f"{references[1]}={sources[1]}")
    assert result.exit_code == 0, result.output
    assert "swapped 2 face(s)" in result.output
    photo, mapped = read_image(photo_path), read_image(output)
    wanted = [embed_near(read_image(path), (0, 0, 1e9, 1e9)) for path in sources]
    for box, mine, other in ((boxes[0], wanted[0], wanted[1]), (boxes[1], wanted[1], wanted[0])):
        before, after = embed_near(photo, box), embed_near(mapped, box)
        assert cosine_similarity(after, mine) > cosine_similarity(before, mine) + 0.05
        assert cosine_similarity(after, mine) > cosine_similarity(after, other)


def test_an_unmatched_face_is_left_alone_without_a_source(scene, tmp_path):
    photo_path, boxes, references, sources, _ = scene
    output = tmp_path / "one.png"
    # --no-watermark: the other face is compared exactly (the watermark changes every pixel a little).
    result = _swap("-t", photo_path, "-o", output, "--map", f"{references[0]}={sources[0]}", "--no-watermark")
    assert result.exit_code == 0, result.output
    assert "swapped 1 face(s)" in result.output
    photo, mapped = read_image(photo_path), read_image(output)
    x0, y0, x1, y1 = (int(v) for v in boxes[1])
    np.testing.assert_array_equal(mapped[y0:y1, x0:x1], photo[y0:y1, x0:x1])


def test_bad_map_values_are_usage_errors(tmp_path):
    face = shared_data("lfw", *SOURCES[0])
    out = tmp_path / "o.png"
    for value in ("no-equals-sign.jpg", f"={face}", f"{face}="):
        result = CliRunner().invoke(main, ["swap", "-t", str(face), "-o", str(out), "--map", value])
        assert result.exit_code == 2 and "REF=SRC" in result.output
    result = CliRunner().invoke(main, ["swap", "-t", str(face), "-o", str(out)])
    assert result.exit_code == 2 and "--map" in result.output
    result = CliRunner().invoke(main, ["swap", "-t", str(face), "-o", str(out), "--model", "landmarks",
                                       "--map", f"{face}={face}"])
    assert result.exit_code == 2 and "generator model" in result.output
    assert not out.exists()


def test_a_source_with_two_faces_says_which_it_uses(caplog):
    """A two-face source used to take one face silently."""
    import logging

    from clipswap.face.yunet import YuNetDetector
    from clipswap.inference.swapper import best_face

    photo = read_image(shared_data("wild", "couple.jpg"))
    with caplog.at_level(logging.WARNING, logger="clipswap.inference.swapper"):
        face = best_face(YuNetDetector(), photo, "source image", say_which=True)
    message = " ".join(record.getMessage() for record in caplog.records)
    assert "the source image holds 2 faces; using the most confident one, face 2 from the left, at x=" in message
    assert f"x={int(round(float(face.box[0])))} " in message
