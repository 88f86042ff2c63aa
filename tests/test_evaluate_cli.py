"""`clipswap evaluate` through the CLI: given outputs, produced outputs, and errors."""

import json
from pathlib import Path

from click.testing import CliRunner

from clipswap.cli import main

from conftest import shared_data


def run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


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


def test_model_produces_swaps(tmp_path):
    lfw = shared_data("lfw")
    checkpoint = tmp_path / "g.keras"
    assert run("init", "--preset", "tiny", "--output", str(checkpoint)).exit_code == 0
    result = run(
        "evaluate", "--protocol", "sample", "--input", str(lfw), "--count", "3", "--seed", "1",
        "--output-dir", str(tmp_path / "out"), "--model", str(checkpoint), "--detector", "yunet", "--no-progress",
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    outputs = [Path(p["output"]) for p in metrics["pairs"] if p.get("output")]
    assert len(outputs) == 3 and all(p.is_file() for p in outputs)
