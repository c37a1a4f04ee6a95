"""Option metadata read by the code: Literal choices, resume-safe fields, and the recipe parser that knows them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest
import yaml

from reer_hf.core.options import check_choices, choices, resume_safe_names, semantic_options
from reer_hf.core.parser import RecipeParser
from reer_hf.generation.config import GeneratorConfig
from reer_hf.synthesis.config import SearchConfig, SynthesisScriptArguments
from reer_hf.synthesis.resume import fingerprint


@dataclass
class Toy:
    mode: Literal["a", "b"] = field(default="a", metadata={"help": "a or b."})
    maybe: Literal["x"] | None = field(default=None, metadata={"help": "x or None."})
    where: str = field(default="out", metadata={"help": "Output.", "resume_safe": True})

    def __post_init__(self):
        check_choices(self)


def test_choices_and_their_check():
    assert (
        choices(Toy, "mode") == ("a", "b") and choices(Toy, "maybe") == ("x", None) and choices(Toy, "where") is None
    )
    Toy(mode="b", maybe="x")
    with pytest.raises(ValueError, match=r"mode must be one of a, b; got 'c'"):
        Toy(mode="c")
    with pytest.raises(ValueError, match=r"generator_backend must be one of transformers, vllm, openai"):
        GeneratorConfig(generator_backend="tgi")
    with pytest.raises(ValueError, match=r"search_edit_format must be one of analyze, refine"):
        SearchConfig(search_edit_format="rewrite")


def test_resume_safe_options_are_read_from_the_fields():
    assert resume_safe_names(Toy) == {"where"}
    assert semantic_options(Toy(mode="b", where="elsewhere")) == {"mode": "b", "maybe": None}
    safe = resume_safe_names(SynthesisScriptArguments, GeneratorConfig, SearchConfig)
    assert {"output_dir", "generator_base_url", "generator_timeout"} <= safe
    assert not safe & {"dataset_name", "generator_model", "search_num_expansion", "search_seed"}


def test_fingerprint_ignores_resume_safe_options_only():
    base = (SynthesisScriptArguments(), GeneratorConfig(), SearchConfig())
    moved = (SynthesisScriptArguments(output_dir="elsewhere"), GeneratorConfig(generator_timeout=5.0), base[2])
    other = (base[0], base[1], SearchConfig(search_num_expansion=3))
    assert fingerprint(base, "rows") == fingerprint(moved, "rows")
    assert fingerprint(base, "rows") != fingerprint(other, "rows")
    assert fingerprint(base, "rows") != fingerprint(base, "other rows")


def test_recipe_parser_keeps_our_metadata_off_argparse_and_checks_yaml_choices(tmp_path):
    parser = RecipeParser((Toy, GeneratorConfig))
    toy, gen = parser.parse_args_and_config(["--mode", "b", "--where", "x", "--generator_timeout", "3"])
    assert (toy.mode, toy.where, gen.generator_timeout) == ("b", "x", 3.0)
    assert Toy.__dataclass_fields__["where"].metadata["resume_safe"] is True  # restored after parsing
    with pytest.raises(SystemExit):  # the command line checks choices itself
        parser.parse_args_and_config(["--mode", "c"])
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump({"generator_backend": "tgi"}))
    with pytest.raises(ValueError, match="generator_backend must be one of"):  # a YAML value reaches __post_init__
        parser.parse_args_and_config(["--config", str(config)])
