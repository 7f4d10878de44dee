"""A mixin for the dataclass configs that checkpoints store as JSON: to_dict(), and from_dict() that names what is
wrong with a stored config (an unknown field from a newer or older Crossover, a missing one, a value of the wrong
type or out of range) instead of failing inside the constructor or, later, inside the model."""
from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any


class ConfigError(ValueError):
    """A stored config that cannot make its dataclass; the message names the class and the field."""


class DictConfig:
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Any):
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known if isinstance(d, dict) else set()
        if unknown:
            raise ConfigError(f"unknown {cls.__name__} fields {sorted(unknown)}; known: {sorted(known)}")
        problem = field_problem(d, {k: v for k, v in typing.get_type_hints(cls).items() if k in known}, required=False)
        if problem:
            raise ConfigError(f"{cls.__name__}: {problem}")
        try:
            return cls(**d)
        except TypeError as e:  # a field without a default is missing
            raise ConfigError(f"{cls.__name__}: {e}") from None
        except ValueError as e:  # __post_init__ refused a value
            raise ConfigError(str(e)) from None


def field_problem(held: Any, fields: dict[str, Any], required: bool = True) -> str | None:
    """What is wrong with `held`, parsed from a JSON file that should be an object whose `fields` (name -> type;
    float takes any number) have those types: not an object, a field missing (if `required`), or one of another
    type. None if nothing is."""
    if not isinstance(held, dict):
        return f"expected a JSON object, got {type(held).__name__}"
    for name, kind in fields.items():
        if name not in held:
            if required:
                return f"missing field {name!r}"
        elif not fits_type(held[name], kind):
            return f"field {name!r} must be {_type_name(kind)}, got {held[name]!r}"
    return None


def fits_type(value: Any, hint: Any) -> bool:
    """Whether a JSON or YAML value fits a field annotated `hint` (int, float, str, bool, list, dict, or a union of
    them with None): a bool is no int or float, and an int is a float."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return any(fits_type(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is float:  # JSON writes 2.0 as 2.0, but a hand-edited file may say 2
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint) if isinstance(hint, type) else True


def _type_name(hint: Any) -> str:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(h) for h in typing.get_args(hint))
    return "null" if hint is type(None) else getattr(hint, "__name__", str(hint))
