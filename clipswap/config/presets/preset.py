"""What a preset is: a named experiment (TrainConfig) with big_vision's header, the fields `clipswap train --dry-run`,
`clipswap init` and `clipswap info` print. The presets themselves are in this package's family modules."""

from __future__ import annotations

from dataclasses import dataclass, field

from clipswap.config.schema import ModelConfig
from clipswap.config.tree import TrainConfig


@dataclass(frozen=True)
class Preset:
    """A named experiment with big_vision's header: how to run it, on what data, how long it takes on this
    project's 2-core CPU and what it should reach, each number with its source.

    Attributes:
        name: the `--preset` name (the TrainConfig's `preset`).
        config: the experiment (TrainConfig); `model` is its ModelConfig (what init/info/swap read).
        description: what it is, one or two sentences.
        command: the command that trains it; data: what it trains on; time: how long here; reaches: what it should
            reach (each says where the number comes from, or "not measured").
        notes: why each choice, with its source.
    """

    name: str
    config: TrainConfig
    description: str
    command: str
    data: str
    time: str
    reaches: str
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def model(self) -> ModelConfig:
        return self.config.model

    def header(self) -> dict[str, str]:
        return {
            "preset": self.name,
            "description": self.description,
            "command": self.command,
            "data": self.data,
            "time": self.time,
            "reaches": self.reaches,
        }
