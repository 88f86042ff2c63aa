"""`clipswap evaluate` through the CLI: given outputs, produced outputs, and errors."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from clipswap.cli import main
from clipswap.evaluation import identity_models
from clipswap.media.labels import read_label

from conftest import shared_data


def run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def sface_checkpoint(tmp_path_factory):
    """A random tiny generator: its config says identity_encoder = "sface"."""
    checkpoint = tmp_path_factory.mktemp("tiny") / "g.keras"
    assert run("init", "--preset", "tiny", "--output", str(checkpoint)).exit_code == 0
    return checkpoint


def _absent_pairs(tmp_path):
    # Never read: the runs below must stop before any image is opened.
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("absent_source.jpg absent_target.jpg\n")
    return pairs


def test_training_identity_model_is_refused(tmp_path, sface_checkpoint):
    out = tmp_path / "out"
    result = run(
        "evaluate", "--pairs", str(_absent_pairs(tmp_path)), "--output-dir", str(out), "--model", str(sface_checkpoint),
        "--identity-model", "sface", "--no-progress",
    )
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: --identity-model sface is sface, the family of the encoder the generator")
    assert "--allow-training-identity-model" in result.output and "Traceback" not in result.output
    assert not (out / "metrics.json").exists()


def test_auto_needs_dlib_for_an_sface_generator(tmp_path, sface_checkpoint, monkeypatch):
    monkeypatch.setattr(identity_models, "dlib_missing_reason", lambda *files: "dlib is not installed")
    result = run(
        "evaluate", "--pairs", str(_absent_pairs(tmp_path)), "--output-dir", str(tmp_path / "out"),
        "--model", str(sface_checkpoint), "--no-progress",
    )
    assert result.exit_code == 1, result.output
    assert "auto picks dlib" in result.output and "pip install 'clipswap[eval]'" in result.output
    assert "--identity-model" in result.output


def test_corrupt_fid_weights_fail_before_any_pair(tmp_path):
    weights = tmp_path / "corrupt.h5"
    weights.write_bytes(b"\x89HDF\r\n this is not an HDF5 file")
    out = tmp_path / "out"
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("absent_source.jpg absent_target.jpg absent_output.png\n")
    result = CliRunner().invoke(
        main, ["evaluate", "--pairs", str(pairs), "--output-dir", str(out), "--fid-weights", str(weights),
               "--no-progress"],
    )
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: cannot load InceptionV3 weights from") and "corrupt.h5" in result.output
    assert result.output.count("\n") == 1 and not isinstance(result.exception, OSError)
    # Stopped before the per-pair analysis: no report was written (the old code scored the pairs first).
    assert not (out / "metrics.json").exists()


def test_needs_pairs_or_protocol(tmp_path):
    result = run("evaluate", "--output-dir", str(tmp_path))
    assert result.exit_code == 2 and "--pairs FILE or --protocol" in result.output
    result = run("evaluate", "--protocol", "sample", "--output-dir", str(tmp_path))
    assert result.exit_code == 2 and "--input" in result.output


def test_bad_pairs_file_is_clear(tmp_path):
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("only_one_column.jpg\n")
    result = run("evaluate", "--pairs", str(pairs), "--output-dir", str(tmp_path / "out"), "--no-progress")
    assert result.exit_code == 1 and "Error:" in result.output


def test_output_equal_target_scores_perfect_fidelity(tmp_path):
    lfw = shared_data("lfw")
    people = sorted(p for p in lfw.iterdir() if p.is_dir())[:4]
    lines = []
    for source_person, target_person in zip(people, people[1:] + people[:1], strict=True):
        source = sorted(source_person.glob("*.jpg"))[0]
        target = sorted(target_person.glob("*.jpg"))[0]
        lines.append(f"{source} {target} {target}")
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("\n".join(lines) + "\n")
    result = run("evaluate", "--pairs", str(pairs), "--output-dir", str(tmp_path / "out"), "--no-progress")
    assert result.exit_code == 0, result.output
    assert "Table I" in result.output or "FF++" in result.output
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert len(metrics["pairs"]) == 4
    assert all(p["ssim"] == 1.0 for p in metrics["pairs"])


def test_model_produces_swaps(tmp_path, sface_checkpoint):
    lfw = shared_data("lfw")
    pytest.importorskip("dlib", reason="auto evaluates an SFace-trained generator with dlib (the eval extra)")
    result = run(
        "evaluate", "--protocol", "sample", "--input", str(lfw), "--count", "3", "--seed", "1",
        "--output-dir", str(tmp_path / "out"), "--model", str(sface_checkpoint), "--detector", "yunet",
        "--no-progress",
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    outputs = [Path(p["output"]) for p in metrics["pairs"] if p.get("output")]
    assert len(outputs) == 3 and all(p.is_file() for p in outputs)
    # Produced swaps carry the synthetic-content label (media.write_image).
    assert all("clipswap" in (read_label(p) or "") for p in outputs)
    # auto picked dlib, not the SFace the generator was trained with, and the report says so.
    assert metrics["identity_model"].startswith("dlib")
    assert "auto: dlib" in metrics["identity_model_note"] and "sface" in metrics["identity_model_note"]
    assert "identity model: dlib" in result.output and "auto: dlib" in result.output
    cost = metrics["aggregate"]["cost"]
    assert cost["latency_n"] == 2 and cost["latency_ms_median"] > 0 and "per swapped face" in cost["latency_note"]


def test_allowed_training_identity_model_is_named_in_the_report(tmp_path, sface_checkpoint):
    lfw = shared_data("lfw")
    result = run(
        "evaluate", "--protocol", "sample", "--input", str(lfw), "--count", "2", "--seed", "2",
        "--output-dir", str(tmp_path / "out"), "--model", str(sface_checkpoint), "--detector", "yunet",
        "--identity-model", "sface", "--allow-training-identity-model", "--no-progress",
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["identity_model"].startswith("sface")
    assert "--allow-training-identity-model" in metrics["identity_model_note"]
    assert "WARNING: same family as the generator's training encoder sface" in result.output


def test_input_errors_are_one_line_and_bugs_keep_their_traceback(tmp_path, monkeypatch):
    images = tmp_path / "one_person"
    images.mkdir()
    (images / "a.png").write_bytes(b"never read")  # one image directly in the folder: a single identity
    result = run("evaluate", "--protocol", "sample", "--input", str(images), "--count", "4",
                 "--output-dir", str(tmp_path / "out"), "--no-progress", "--identity-model", "sface")
    assert result.exit_code == 1 and "at least 2 identities" in result.output
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("s.jpg t.jpg\n")
    result = run("evaluate", "--pairs", str(pairs), "--output-dir", str(tmp_path / "out"), "--no-progress",
                 "--identity-model", "sface")
    assert result.exit_code == 1 and "no output image" in result.output

    from clipswap.evaluation import runner

    def broken(*args, **kwargs):
        raise ValueError("an internal bug")

    monkeypatch.setattr(runner, "run_evaluation", broken)
    # A bug is not an input error: the CLI's guard names it in one sentence (no traceback), -vv shows the traceback.
    args = ["evaluate", "--pairs", str(pairs), "--output-dir", str(tmp_path / "out"), "--identity-model", "sface"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1 and "unexpected ValueError: an internal bug" in result.output
    assert "Traceback" not in result.output
    with pytest.raises(ValueError, match="an internal bug"):
        run("-vv", *args)


def test_a_run_that_scores_no_pair_fails_and_leaves_no_folder(tmp_path):
    """Every path missing used to exit 0 with a report of nothing; a failed run removes the output
    folder it created but never one that existed before."""
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("absent_source.jpg absent_target.jpg absent_output.png\n")
    out = tmp_path / "new" / "out"
    result = run("evaluate", "--pairs", str(pairs), "--output-dir", str(out), "--identity-model", "sface",
                 "--no-progress")
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1].startswith("Error: none of the 1 pairs could be scored")
    assert not (tmp_path / "new").exists()
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "mine.txt").write_text("the user's file")
    result = run("evaluate", "--pairs", str(pairs), "--output-dir", str(kept), "--identity-model", "sface",
                 "--no-progress")
    assert result.exit_code == 1 and (kept / "mine.txt").read_text() == "the user's file"
