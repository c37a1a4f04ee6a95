"""The recipes' command-line and YAML parser: TRL's, taught the option metadata of :mod:`reer_hf.core.options`."""

from __future__ import annotations

import dataclasses
from argparse import ArgumentParser
from types import MappingProxyType

from transformers import HfArgumentParser
from trl import TrlParser

from reer_hf.core.options import OWN_METADATA

__all__ = ["RecipeParser"]


class RecipeParser(TrlParser):
    """``TrlParser`` (YAML ``--config`` plus command-line overrides, unknown keys refused) that keeps our own field
    metadata (``resume_safe``) away from argparse, which would take every metadata key for an ``add_argument``
    keyword, and escapes ``%`` in help texts, which argparse would read as a format code (``--help`` would crash)."""

    @staticmethod
    def _parse_dataclass_field(parser: ArgumentParser, field: dataclasses.Field) -> None:
        own = OWN_METADATA & field.metadata.keys()
        help_text = field.metadata.get("help")
        escape = isinstance(help_text, str) and "%" in help_text
        if not own and not escape:
            return HfArgumentParser._parse_dataclass_field(parser, field)
        saved = field.metadata
        metadata = {k: v for k, v in saved.items() if k not in own}
        if escape:
            metadata["help"] = help_text.replace("%", "%%")
        field.metadata = MappingProxyType(metadata)
        try:
            return HfArgumentParser._parse_dataclass_field(parser, field)
        finally:
            field.metadata = saved
