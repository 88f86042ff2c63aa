"""A resumed run's folder forgets what the killed run did after the restored checkpoint."""

from __future__ import annotations

import json

from clipswap.training.run import forget_after


def test_rows_after_the_checkpoint_and_partial_checkpoints_are_dropped(tmp_path):
    rows = [{"step": s, "id": 0.5} for s in (5, 10, 15, 20)]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 2')
    (tmp_path / "heldout.jsonl").write_text(json.dumps({"step": 0}) + "\n" + json.dumps({"step": 25}) + "\n")
    checkpoints = tmp_path / "checkpoints"
    (checkpoints / "ckpt-20_temp" / "part-0").mkdir(parents=True)
    (checkpoints / "ckpt-10.index").write_text("kept")
    forget_after(tmp_path, 10)
    assert [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [5, 10]
    assert [json.loads(line)["step"] for line in (tmp_path / "heldout.jsonl").read_text().splitlines()] == [0]
    assert not (checkpoints / "ckpt-20_temp").exists() and (checkpoints / "ckpt-10.index").is_file()


def test_nothing_to_forget_leaves_the_files_untouched(tmp_path):
    text = json.dumps({"step": 3}) + "\n"
    (tmp_path / "metrics.jsonl").write_text(text)
    before = (tmp_path / "metrics.jsonl").stat().st_mtime_ns
    forget_after(tmp_path, 3)
    assert (tmp_path / "metrics.jsonl").read_text() == text
    assert (tmp_path / "metrics.jsonl").stat().st_mtime_ns == before
