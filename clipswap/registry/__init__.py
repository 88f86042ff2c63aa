"""Component registries: one row per identity encoder, face detector, attribute network, runtime and export format.

A row says everything the rest of clipswap needs to know about a component without building it: its name, what it
reads and writes, the model file it needs (a key of clipswap.checkpoints.registry.FILES) and, as a "module:attribute"
string, the function that builds it. The command lines' choices, the configuration's checks, `doctor` and `info` read
the rows, so adding a component is one module (its code) and one row (keras-hub's and facefusion's habit).

Importing a registry imports no TensorFlow, Keras or OpenCV: a builder is imported only when it is called.

    encoders    identity encoders (clipswap.registry.encoders.ENCODERS)
    detectors   face detectors and the Detector protocol (clipswap.registry.detectors.DETECTORS)
    attributes  attribute networks of the attribute loss (clipswap.registry.attributes.ATTRIBUTES)
    runtimes    export formats and the runtimes that run them (clipswap.registry.runtimes.FORMATS, RUNTIMES)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from clipswap.errors import ClipswapError

Row = TypeVar("Row")

#: Model files by their key in clipswap.checkpoints.registry.FILES: how a user's files reach the components (the
#: `--arcface` and `--retinaface` flags fill it; a key left out is looked up in the checkpoint folders).
Files = Mapping[str, "str | Path"]


class UnknownComponentError(ClipswapError, ValueError):
    """A component name that no row of its registry has; the message lists the names there are."""


def load_object(target: str | Callable) -> Any:
    """The object a row names: "package.module:attribute" is imported now (the registries import nothing heavy until
    a component is built); a callable is returned as it is (rows registered by code, e.g. in a test)."""
    if callable(target):
        return target
    module, _, attribute = target.partition(":")
    value = importlib.import_module(module)
    for part in attribute.split("."):
        value = getattr(value, part)
    return value


@dataclass
class Registry(Generic[Row]):
    """Rows of one kind of component by name, in the order they were registered (the order the choices list them);
    read like a dict of names (iterating gives the names; rows() the rows).

    Attributes:
        kind: the component in words ("identity encoder"), for messages.
    """

    kind: str
    _rows: dict[str, Row] = field(default_factory=dict)

    def register(self, row: Row) -> Row:
        """Add `row` (a frozen dataclass with a `name`); a name already taken is an error."""
        name = row.name
        if name in self._rows:
            raise ValueError(f"a {self.kind} called {name!r} is already registered")
        self._rows[name] = row
        return row

    @contextmanager
    def registered(self, row: Row) -> Iterator[Row]:
        """`row` registered for the duration of a with-block (a plug-in tried for one run, a test)."""
        self.register(row)
        try:
            yield row
        finally:
            self._rows.pop(row.name, None)

    def get(self, name: str) -> Row:
        """The row called `name`. Raises UnknownComponentError, one sentence listing the names."""
        try:
            return self._rows[name]
        except KeyError:
            raise UnknownComponentError(
                f"unknown {self.kind} {name!r}; choose one of {', '.join(self._rows)}") from None

    def __getitem__(self, name: str) -> Row:
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._rows

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._rows))

    def __len__(self) -> int:
        return len(self._rows)

    def names(self) -> tuple[str, ...]:
        return tuple(self._rows)

    def rows(self) -> tuple[Row, ...]:
        return tuple(self._rows.values())

    def view(self, attribute: str) -> Mapping[str, Any]:
        """A live read-only mapping name -> the rows' `attribute` (e.g. encoder widths), which sees rows registered
        later."""
        return _View(self, attribute)


class _View(Mapping):
    def __init__(self, registry: Registry, attribute: str):
        self._registry, self._attribute = registry, attribute

    def __getitem__(self, name: str) -> Any:
        if name not in self._registry:
            raise KeyError(name)
        return getattr(self._registry.get(name), self._attribute)

    def __iter__(self) -> Iterator[str]:
        return iter(self._registry.names())

    def __len__(self) -> int:
        return len(self._registry)

    def __repr__(self) -> str:
        return repr(dict(self))


class Choices:
    """A live sequence of names for a command line's choice list: the registry's names, after any fixed names
    ("auto"), seen when the list is read rather than when the command line was built."""

    def __init__(self, registry: Registry, before: tuple[str, ...] = ()):
        self._registry, self._before = registry, before

    def _names(self) -> tuple[str, ...]:
        return (*self._before, *self._registry.names())

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __contains__(self, name: object) -> bool:
        return name in self._names()

    def __len__(self) -> int:
        return len(self._names())

    def __getitem__(self, index):
        return self._names()[index]

    def __eq__(self, other: object) -> bool:
        return tuple(self) == (tuple(other) if isinstance(other, tuple | list | Choices) else other)

    def __hash__(self) -> int:
        return hash(self._names())

    def __repr__(self) -> str:
        return repr(self._names())


def given_files(files: Files | None) -> dict[str, Path]:
    """`files` without its None values, as Paths."""
    return {key: Path(path) for key, path in (files or {}).items() if path is not None}


__all__ = ["Choices", "Files", "Registry", "UnknownComponentError", "given_files", "load_object"]
