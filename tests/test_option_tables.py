"""The option tables of recipes/README.md are those ``scripts/option_tables.py`` renders from the dataclasses."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tables():
    return load(ROOT / "scripts" / "option_tables.py", "option_tables")


def test_recipes_readme_tables_are_current(tables):
    assert tables.main(["--check"]) == 0, (
        "stale option tables in recipes/README.md: run python scripts/option_tables.py"
    )


@pytest.mark.parametrize("recipe", ["score", "synthesize", "sft", "eval"])
def test_every_option_dataclass_of_a_recipe_is_tabled(tables, recipe):
    parser = load(ROOT / "recipes" / f"{recipe}.py", f"recipe_{recipe}").make_parser()
    ours = [cls for cls in parser.dataclass_types if cls.__module__.startswith("reer_hf.")]
    assert ours == tables.recipe_dataclasses()[recipe]


def test_check_mode_finds_and_write_mode_fixes_a_stale_table(tables, tmp_path):
    readme = tmp_path / "README.md"
    current = tables.update((ROOT / "recipes" / "README.md").read_text())
    readme.write_text(current.replace("| `scorer_model` |", "| `scorer_old_name` |", 1))
    assert tables.main(["--check", "--readme", str(readme)]) == 1
    assert tables.main(["--readme", str(readme)]) == 0
    assert readme.read_text() == current
    readme.write_text("no markers")
    with pytest.raises(ValueError, match="options:score:start"):
        tables.main(["--check", "--readme", str(readme)])


def test_cells_escape_markdown_outside_code_spans(tables):
    assert tables.cell("a|b <think> ``x|<y>*`` *z*") == "a\\|b &lt;think> ``x\\|<y>*`` \\*z\\*"
    assert tables.cell("<think>\\n", code=True) == "`<think>\\n`"
    assert tables.cell("a`b", code=True) == "`` a`b ``"


def test_types_and_defaults_read_as_in_a_recipe(tables):
    from reer_hf.evaluation.config import EvaluationScriptArguments
    from reer_hf.sft.config import SFTScriptArguments

    rows = {line.split(" | ")[0]: line for line in tables.table(EvaluationScriptArguments)}
    assert "| `longbench_subset` | `'all' \\| 'en' \\| 'ruler'` | `all` |" in rows["| `longbench_subset`"]
    assert '`["generate", "judge", "report"]`' in rows["| `stages`"]
    assert "`false`" in rows["| `overwrite_output_dir`"]
    own = [f.name for f in tables.own_fields(SFTScriptArguments)]
    assert "dataset_name" in own and "dataset_test_split" not in own  # TRL's fields are linked, not tabled
