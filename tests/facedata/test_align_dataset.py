"""`clipswap align` on a small LFW subset: kept/skipped counts, crop geometry, identities, shards, resume, CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from clipswap.cli import main
from clipswap.face.detection import sort_by_area
from clipswap.face.templates import arcface_template
from clipswap.facedata.align_dataset import JOURNAL, AlignError, align_dataset, list_inputs
from clipswap.facedata.shards import count_records, iterate_records, list_shards

from conftest import shared_data

SIZE = 128
PEOPLE = ("Abdullah_Gul", "Abdullah_al-Attiyah", "Adrien_Brody")


def _make_input(root):
    lfw = shared_data("lfw")
    for person in PEOPLE:
        photos = sorted((lfw / person).glob("*.jpg"))[:3]
        assert photos, f"{person} missing from {lfw}"
        (root / person).mkdir(parents=True)
        for photo in photos:
            shutil.copy(photo, root / person / photo.name)
    odd = root / "Odd_Cases"
    odd.mkdir()
    cv2.imwrite(str(odd / "tiny.png"), np.full((20, 20, 3), 128, np.uint8))
    (odd / "notes.jpg").write_text("not an image")
    # A smooth gradient: big enough, readable, no face.
    ramp = np.tile(np.linspace(0, 255, 200, dtype=np.uint8)[None, :, None], (200, 1, 3))
    cv2.imwrite(str(odd / "ramp.png"), ramp)
    (root / ".DS_Store").write_text("ignored")


@pytest.fixture(scope="module")
def aligned(tmp_path_factory):
    root = tmp_path_factory.mktemp("align")
    _make_input(root / "in")
    report = align_dataset(root / "in", root / "out", size=SIZE, min_size=64, workers=1, progress=False, seed=3)
    return root / "in", root / "out", report


def test_report_counts(aligned):
    _, out, report = aligned
    assert report["images"] == 12
    assert report["kept"] == 9 and report["records"] == 9
    assert report["skipped"] == {"too_small": 1, "unreadable": 1, "no_face": 1}
    assert report["processed"] == 12 and report["reused"] == 0
    assert report["identities"] == 3
    assert not (out / JOURNAL).exists()
    manifest = json.loads((out / "align_manifest.json").read_text())
    assert manifest["settings"]["size"] == SIZE
    reasons = {name: entry.get("reason") for name, entry in manifest["files"].items()}
    assert reasons["Odd_Cases/tiny.png"] == "too_small"
    assert reasons["Odd_Cases/notes.jpg"] == "unreadable"
    assert reasons["Odd_Cases/ramp.png"] == "no_face"
    assert all(entry["status"] == "kept" for name, entry in manifest["files"].items() if name.startswith(PEOPLE))


def test_aligned_crops_put_the_eyes_on_the_template(aligned):
    from clipswap.face.yunet import YuNetDetector

    _, out, _ = aligned
    crops = sorted((out / "aligned").rglob("*.png"))
    assert len(crops) == 9 and {c.parent.name for c in crops} == set(PEOPLE)
    template = arcface_template(SIZE)
    detector = YuNetDetector()
    pad = SIZE // 2
    errors = []
    for crop in crops:
        image = cv2.cvtColor(cv2.imread(str(crop)), cv2.COLOR_BGR2RGB)
        assert image.shape == (SIZE, SIZE, 3)
        # YuNet spreads landmarks outward on a crop the face fills; some context around it removes that bias.
        padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        faces = detector.detect(padded)
        assert faces, f"no face found again in {crop}"
        eyes = sort_by_area(faces)[0].landmarks[:2] - pad
        errors.append(np.linalg.norm(eyes - template[:2], axis=1))
    errors = np.array(errors)
    assert errors.max() < 0.1 * SIZE, errors
    assert errors.mean() < 0.05 * SIZE, errors


def test_identities_and_shards(aligned):
    source, out, report = aligned
    identities = json.loads((out / "identities.json").read_text())
    assert identities == sorted(PEOPLE)
    assert [p.rsplit("/", 1)[-1] for p in report["shards"]] == ["shard-00000-of-00001.tfrecord"]
    assert count_records(out / "shards") == 9
    manifest = json.loads((out / "align_manifest.json").read_text())["files"]
    template = arcface_template(SIZE)
    records = list(iterate_records(out))
    kept = [str((source / name).resolve()) for name in manifest if name.startswith(PEOPLE)]
    assert sorted(r.path for r in records) == sorted(kept)
    for record in records:
        assert identities[record.label] == record.identity
        assert record.size == SIZE
        relative = Path(record.path).relative_to(source.resolve()).as_posix()
        entry = manifest[relative]
        decoded = cv2.imdecode(np.frombuffer(record.image, np.uint8), cv2.IMREAD_COLOR)
        np.testing.assert_array_equal(decoded, cv2.imread(str(out / entry["aligned"])))
        np.testing.assert_allclose(record.landmarks_original, entry["landmarks_original"], atol=1e-3)
        # The stored crop landmarks are the original ones through the alignment: close to the template.
        assert np.abs(record.landmarks[:2] - template[:2]).max() < 0.06 * SIZE


def test_record_order_is_seeded(aligned, tmp_path):
    source, out, _ = aligned
    again = tmp_path / "again"
    shutil.copytree(out, again)
    first = [r.path for r in iterate_records(out)]
    assert [r.path for r in iterate_records(out)] == first
    align_dataset(source, again, size=SIZE, progress=False, seed=4)
    assert sorted(r.path for r in iterate_records(again)) == sorted(first)
    assert [r.path for r in iterate_records(again)] != first


def test_resume_reuses_everything_and_redoes_only_missing(aligned, tmp_path):
    source, out, _ = aligned
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    crops = sorted((copy / "aligned").rglob("*.png"))
    stamps = {c: c.stat().st_mtime_ns for c in crops}
    shard = (copy / "shards" / "shard-00000-of-00001.tfrecord").read_bytes()
    report = align_dataset(source, copy, size=SIZE, progress=False, seed=3)
    assert report["processed"] == 0 and report["reused"] == 12 and report["kept"] == 9
    assert {c: c.stat().st_mtime_ns for c in crops} == stamps
    assert (copy / "shards" / "shard-00000-of-00001.tfrecord").read_bytes() == shard
    crops[0].unlink()
    report = align_dataset(source, copy, size=SIZE, progress=False, seed=3)
    assert report["processed"] == 1 and report["reused"] == 11 and crops[0].is_file()
    assert report["skipped"] == {"too_small": 1, "unreadable": 1, "no_face": 1}


def test_resume_after_an_interrupted_run(aligned, tmp_path):
    """A killed run leaves only the journal (with a half-written last line); the next run continues from it."""
    source, out, _ = aligned
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    manifest = json.loads((copy / "align_manifest.json").read_text())
    (copy / "align_manifest.json").unlink()
    lines = [json.dumps({"settings": manifest["settings"]})]
    done = sorted(manifest["files"])[:5]
    lines += [json.dumps({"file": name, "entry": manifest["files"][name]}) for name in done]
    (copy / JOURNAL).write_text("\n".join(lines) + '\n{"file": "trunc')
    report = align_dataset(source, copy, size=SIZE, progress=False, seed=3)
    assert report["reused"] == 5 and report["processed"] == 7 and report["kept"] == 9
    assert not (copy / JOURNAL).exists()


def test_resume_from_a_corrupt_manifest_or_journal_is_refused(aligned, tmp_path):
    source, out, _ = aligned
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    manifest = json.loads((copy / "align_manifest.json").read_text())
    (copy / "align_manifest.json").write_text('{"settings": ')
    with pytest.raises(AlignError, match="not valid JSON"):
        align_dataset(source, copy, size=SIZE, progress=False, seed=3)
    (copy / "align_manifest.json").unlink()
    lines = [json.dumps({"settings": manifest["settings"]}), json.dumps({"name": "a.jpg"})]
    (copy / JOURNAL).write_text("\n".join(lines) + "\n")
    with pytest.raises(AlignError, match="line 2 of .* is not a journal entry"):
        align_dataset(source, copy, size=SIZE, progress=False, seed=3)


def test_resume_with_other_settings_is_refused(aligned, tmp_path):
    source, out, _ = aligned
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    with pytest.raises(AlignError, match="different settings"):
        align_dataset(source, copy, size=64, progress=False)


def test_parallel_workers_give_the_same_result(aligned, tmp_path):
    source, out, _ = aligned
    report = align_dataset(source, tmp_path / "par", size=SIZE, workers=2, progress=False, seed=3)
    assert report["kept"] == 9 and report["skipped"] == {"too_small": 1, "unreadable": 1, "no_face": 1}
    serial = json.loads((out / "align_manifest.json").read_text())["files"]
    parallel = json.loads((tmp_path / "par" / "align_manifest.json").read_text())["files"]
    for name, entry in serial.items():
        assert parallel[name]["status"] == entry["status"]
        if entry["status"] == "kept":
            np.testing.assert_allclose(parallel[name]["landmarks"], entry["landmarks"], atol=1e-3)
    assert [r.path for r in iterate_records(tmp_path / "par")] == [r.path for r in iterate_records(out)]


def test_flat_folder_identity_is_the_file_stem(tmp_path):
    lfw = shared_data("lfw")
    flat = tmp_path / "flat"
    flat.mkdir()
    for person in PEOPLE[:2]:
        photo = sorted((lfw / person).glob("*.jpg"))[0]
        shutil.copy(photo, flat / photo.name)
    (flat / f"{photo.stem}.png").write_bytes(b"")  # same stem, other suffix: its crop must not collide
    inputs = list_inputs(flat)
    assert [i.identity for i in inputs] == sorted(i.identity for i in inputs)
    assert len({i.aligned for i in inputs}) == 3
    report = align_dataset(flat, tmp_path / "out", size=64, progress=False)
    assert report["kept"] == 2 and report["skipped"]["unreadable"] == 1
    assert json.loads((tmp_path / "out" / "identities.json").read_text()) == sorted(
        p.stem for p in flat.glob("*.jpg"))
    assert len(list_shards(tmp_path / "out")) == 1


def run_cli(*args):
    return CliRunner().invoke(main, ["align", *args], catch_exceptions=False)


def test_cli_reports_a_resumed_run(aligned, tmp_path):
    source, out, _ = aligned
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    result = run_cli("--input", str(source), "--output", str(copy), "--size", str(SIZE), "--seed", "3",
                     "--no-progress")
    assert result.exit_code == 0, result.output
    assert "0 processed, 12 reused" in result.output
    assert "kept       9 faces of 3 identities" in result.output
    assert "1 too small (< 64 px), 1 unreadable, 1 without a face" in result.output


def test_cli_errors(tmp_path):
    result = run_cli("--input", str(tmp_path / "missing"), "--output", str(tmp_path / "out"))
    assert result.exit_code == 1 and "input folder" in result.output and "does not exist" in result.output
    (tmp_path / "empty").mkdir()
    result = run_cli("--input", str(tmp_path / "empty"), "--output", str(tmp_path / "out"))
    assert result.exit_code == 1 and "holds no files" in result.output
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.jpg").write_bytes(b"x")
    (tmp_path / "blocker").write_text("a file where the output folder should be")
    result = run_cli("--input", str(tmp_path / "photos"), "--output", str(tmp_path / "blocker" / "out"))
    assert result.exit_code == 1 and "cannot create the output folder" in result.output
    result = run_cli("--input", str(tmp_path / "photos"), "--output", str(tmp_path / "photos"))
    assert result.exit_code == 1 and "must differ from --input" in result.output
    result = run_cli("--input", str(tmp_path / "photos"), "--output", str(tmp_path / "o"), "--det-threshold", "1.5")
    assert result.exit_code == 2
    result = run_cli("--input", str(tmp_path / "photos"), "--output", str(tmp_path / "o"), "--retinaface", "x.h5")
    assert result.exit_code == 2 and "--detector retinaface" in result.output
    result = run_cli("--input", str(tmp_path / "photos"), "--output", str(tmp_path / "o"), "--detector", "retinaface",
                     "--retinaface", str(tmp_path / "missing.h5"))
    assert result.exit_code == 1 and "missing.h5" in result.output and "does not exist" in result.output


def test_cli_fails_when_no_face_was_kept(tmp_path):
    photos = tmp_path / "photos" / "nobody"
    photos.mkdir(parents=True)
    cv2.imwrite(str(photos / "grey.jpg"), np.full((200, 200, 3), 128, np.uint8))
    result = run_cli("--input", str(tmp_path / "photos"), "--output", str(tmp_path / "out"), "--no-progress")
    assert result.exit_code == 1
    assert "kept       0 faces" in result.output  # the report still comes first
    assert result.output.strip().splitlines()[-1].startswith("Error: no face was kept from the 1 files")
    assert not (tmp_path / "out").exists()  # the folder this run created is not left behind
    # an output folder that was there before (an earlier run's, to resume) stays
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "note.txt").write_text("mine")
    result = run_cli("--input", str(tmp_path / "photos"), "--output", str(tmp_path / "kept"), "--no-progress")
    assert result.exit_code == 1 and (tmp_path / "kept" / "note.txt").read_text() == "mine"


def test_identity_folders_that_are_symbolic_links_are_followed_once(tmp_path):
    """A dataset of links into another folder is read through them; a link back up the tree is entered once."""
    real = tmp_path / "real"
    for person in ("Ann", "Bob"):
        (real / person).mkdir(parents=True)
        (real / person / "1.jpg").write_bytes(b"x")
    linked = tmp_path / "linked"
    linked.mkdir()
    for person in ("Ann", "Bob"):
        (linked / person).symlink_to(real / person, target_is_directory=True)
    (real / "Bob" / "up").symlink_to(linked, target_is_directory=True)  # a cycle through the links
    inputs = list_inputs(linked)
    assert [(item.relpath, item.identity) for item in inputs] == [("Ann/1.jpg", "Ann"), ("Bob/1.jpg", "Bob")]
