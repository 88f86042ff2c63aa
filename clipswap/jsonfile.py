"""Reading the JSON files we write (manifests, run configurations) with one clear error for every way they break."""

from __future__ import annotations

import json
from pathlib import Path

from clipswap.errors import ClipswapError


class JSONFileError(ClipswapError, ValueError):
    """A JSON file cannot be read, does not parse, or does not hold an object; the message names the file."""


def read_json_object(path: str | Path) -> dict:
    """The JSON object stored in `path` (UTF-8).

    Raises:
        JSONFileError: unreadable file, invalid UTF-8 or JSON, or a JSON value that is not an object.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise JSONFileError(f"{path} cannot be read ({error})") from error
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise JSONFileError(f"{path} is not valid JSON ({error})") from error
    if not isinstance(data, dict):
        raise JSONFileError(f"{path} is not a JSON object")
    return data
