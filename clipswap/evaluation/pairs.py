"""The pairs file: which source identity goes onto which target, and (optionally) the swapped output to score.

Format (one pair a line):

    # comments start with '#'; blank lines are ignored
    source.jpg  target.jpg  [output.png]  [label]

* Fields are separated by whitespace (quote a path that contains spaces: `"my photos/a.jpg"`), or by commas (CSV,
  with CSV quoting), or by tabs (TSV). The separator is taken from the first data line: a tab makes the file TSV,
  otherwise a comma makes it CSV, otherwise whitespace.
* An optional header line names the columns, in any order, from `source`, `target`, `output`, `label`
  (`source` and `target` are required). Without a header the order is `source target [output] [label]`.
* `output` may be `-` (or empty in CSV/TSV): the swap is produced by the evaluation run.
* `label` is the identity of the source (used by ID retrieval). When absent the label is the source path itself,
  i.e. every distinct source image is its own identity.
* Relative paths are resolved against the folder that holds the pairs file.
"""

from __future__ import annotations

import csv
import io
import os
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from clipswap.atomic import write_text_atomic
from clipswap.errors import ClipswapError

COLUMNS = ("source", "target", "output", "label")
NO_OUTPUT = "-"


@dataclass(frozen=True)
class Pair:
    """One evaluation pair.

    Attributes:
        source: image whose identity is transferred.
        target: image that gives pose, expression, lighting and background.
        output: the swapped image (same size as the target), or None when the run must produce it.
        label: identity label of the source; None means "the source path is the label".
    """

    source: Path
    target: Path
    output: Path | None = None
    label: str | None = None

    @property
    def identity(self) -> str:
        """The source identity used by ID retrieval."""
        return self.label if self.label is not None else str(self.source)


class PairsFileError(ClipswapError, ValueError):
    """The pairs file cannot be parsed; the message names the file and the line."""


def _split(line: str, separator: str | None, where: str = "") -> list[str]:
    if separator is None:
        try:
            return shlex.split(line, comments=False, posix=True)
        except ValueError as error:  # shlex: "No closing quotation", "No escaped character"
            raise PairsFileError(f"{where}: {error} in {line!r}; close the quote around the path") from None
    return [field.strip() for field in next(csv.reader(io.StringIO(line), delimiter=separator))]


def _detect_separator(line: str) -> str | None:
    if "\t" in line:
        return "\t"
    if "," in line:
        return ","
    return None


def read_pairs(path: str | os.PathLike) -> list[Pair]:
    """Parse a pairs file (format in the module docstring).

    Raises:
        FileNotFoundError: the file does not exist.
        PairsFileError: the file is not UTF-8 text, a line has fewer than 2 or more than 4 fields, or the header
            names an unknown column.
    """
    path = Path(path)
    base = path.resolve().parent
    data = path.read_bytes()
    try:
        # utf-8-sig: a byte-order mark (some editors write one) is dropped rather than read into the first field.
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = error.object[: error.start].count(b"\n") + 1
        raise PairsFileError(
            f"{path}:{line}: not UTF-8 text (byte 0x{error.object[error.start]:02x} at offset {error.start}); "
            "save the pairs file as UTF-8"
        ) from error
    lines = [
        (number, raw.rstrip("\r\n"))
        for number, raw in enumerate(text.splitlines(), start=1)
        if raw.strip() and not raw.lstrip().startswith("#")
    ]
    if not lines:
        raise PairsFileError(f"{path}: no pairs (every line is blank or a '#' comment)")
    separator = _detect_separator(lines[0][1])
    columns: Sequence[str] = COLUMNS
    first = [field.lower() for field in _split(lines[0][1], separator, f"{path}:{lines[0][0]}")]
    if "source" in first and "target" in first:
        unknown = sorted(set(first) - set(COLUMNS))
        if unknown or len(set(first)) != len(first):
            raise PairsFileError(
                f"{path}:{lines[0][0]}: header {first} must name distinct columns from {list(COLUMNS)}; "
                f"unknown: {unknown}"
            )
        columns = first
        lines = lines[1:]

    def resolve(value: str) -> Path:
        candidate = Path(value).expanduser()
        return candidate if candidate.is_absolute() else base / candidate

    pairs = []
    for number, line in lines:
        fields = _split(line, separator, f"{path}:{number}")
        if not 2 <= len(fields) <= len(columns):
            raise PairsFileError(
                f"{path}:{number}: expected {len(columns) if columns is not COLUMNS else '2 to 4'} fields "
                f"({' '.join(columns)}), got {len(fields)}: {line!r}"
            )
        row = dict(zip(columns, fields, strict=False))
        if not row.get("source") or not row.get("target"):
            raise PairsFileError(f"{path}:{number}: source and target must not be empty: {line!r}")
        output = row.get("output") or NO_OUTPUT
        label = row.get("label") or None
        pairs.append(
            Pair(
                source=resolve(row["source"]),
                target=resolve(row["target"]),
                output=None if output == NO_OUTPUT else resolve(output),
                label=label,
            )
        )
    return pairs


def write_pairs(pairs: Iterable[Pair], path: str | os.PathLike, comment: str | None = None) -> Path:
    """Write `pairs` as a TSV pairs file with a header, paths relative to the file's folder where possible.

    Written atomically (temporary file in the same folder, then os.replace). Returns the path.
    """
    path = Path(path)
    base = path.resolve().parent
    base.mkdir(parents=True, exist_ok=True)

    def relative(value: Path) -> str:
        value = Path(value).resolve()
        try:
            return str(value.relative_to(base))
        except ValueError:
            return str(value)

    buffer = io.StringIO()
    if comment:
        for line in comment.splitlines():
            buffer.write(f"# {line}\n")
    writer = csv.writer(buffer, delimiter="\t", lineterminator="\n")
    writer.writerow(COLUMNS)
    for pair in pairs:
        writer.writerow(
            [
                relative(pair.source),
                relative(pair.target),
                NO_OUTPUT if pair.output is None else relative(pair.output),
                pair.label or "",
            ]
        )
    write_text_atomic(path, buffer.getvalue())
    return path
