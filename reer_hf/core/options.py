"""What the code reads off the option dataclasses instead of hand-kept lists: the allowed values of a ``Literal``
field, and which options a resumed run may change (``metadata={"resume_safe": True}``)."""

from __future__ import annotations

import dataclasses
import sys
import typing
from functools import cache
from typing import Any, Literal

__all__ = ["OWN_METADATA", "RESUME_SAFE", "check_choices", "choices", "resume_safe_names", "semantic_options"]

#: Field metadata key: the option changes how a run is operated (where it writes, how fast, on which device), not
#: what it writes, so a resumed run may change it without voiding the work already done.
RESUME_SAFE = "resume_safe"
#: Our own metadata keys, which the recipe parser keeps off the command line.
OWN_METADATA = frozenset({RESUME_SAFE})


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls, vars(sys.modules[cls.__module__]))


def choices(cls: type, name: str) -> tuple | None:
    """The values a ``Literal`` (or ``Literal | None``) field of dataclass ``cls`` allows; ``None`` for other types."""
    hint = _hints(cls).get(name)
    if typing.get_origin(hint) is Literal:
        return typing.get_args(hint)
    for arg in typing.get_args(hint):
        if typing.get_origin(arg) is Literal:
            return typing.get_args(arg) + ((None,) if type(None) in typing.get_args(hint) else ())
    return None


def check_choices(obj: Any) -> None:
    """Raise a ``ValueError`` that names the option and its allowed values when a ``Literal`` field holds another
    value. The command-line parser checks choices itself, but values from a YAML file reach the dataclass unchecked."""
    for f in dataclasses.fields(obj):
        allowed = choices(type(obj), f.name)
        value = getattr(obj, f.name)
        if allowed is not None and value not in allowed:
            shown = ", ".join("None" if a is None else str(a) for a in allowed)
            raise ValueError(f"{f.name} must be one of {shown}; got {value!r}")


def resume_safe_names(*configs: Any) -> set[str]:
    """The options of ``configs`` (dataclass instances or classes) marked ``resume_safe``."""
    return {f.name for c in configs for f in dataclasses.fields(c) if f.metadata.get(RESUME_SAFE)}


def semantic_options(*configs: Any) -> dict[str, Any]:
    """Every option of ``configs`` that decides what a run writes (all but the ``resume_safe`` ones), by name."""
    safe = resume_safe_names(*configs)
    return {k: v for c in configs for k, v in dataclasses.asdict(c).items() if k not in safe}
