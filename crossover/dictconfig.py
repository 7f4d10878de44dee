"""A mixin for the dataclass configs that checkpoints store as JSON: to_dict(), and from_dict() that names the
unknown fields (a checkpoint from a newer or older Crossover) instead of failing inside the constructor."""
from __future__ import annotations

import dataclasses
from typing import Any


class DictConfig:
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown {cls.__name__} fields {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)
