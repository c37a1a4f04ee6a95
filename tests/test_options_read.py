"""Every option of every recipe script does something: some code that script runs reads it.

An option that is parsed and then read by nothing is a promise the code does not keep (a user sets it and nothing
changes). For each option dataclass of each ``recipes/*.py`` parser, every field must be read by the script or a
package module it imports (at any depth, imports inside functions included: a dataclass two scripts share, such as
``GeneratorConfig``, must be read in each), outside the ``__post_init__`` that validates it: as an attribute
(``args.name``), by ``getattr`` with the name as a literal, by a benchmark's ``item_options`` / ``report_options``, or
by one of the few reads that build the name (:func:`dynamic_reads`, each checked to be in its file). TRL's
``SFTConfig`` is the one class read by someone else: ``SFTTrainer`` takes it whole as its ``args``, and TRL and
transformers read its fields. TRL's ``ModelConfig`` is checked like ours, with the TRL functions the recipe hands it to
(``get_peft_config``, ``get_quantization_config``) scanned too.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import inspect
import textwrap
from functools import cache
from pathlib import Path

import pytest
from testing_utils import parsed_source

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((ROOT / "recipes").glob("*.py"))


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted((ROOT / "reer_hf").rglob("*.py"))}
#: Read whole by the library it belongs to, so no field of it is ours to find a reader for (see the docstring).
READ_BY_THEIR_LIBRARY = {"SFTConfig": "SFTTrainer(args=...): TRL's SFTTrainer and transformers' Trainer read it"}
#: TRL functions the SFT recipe hands ``ModelConfig`` to: what they read counts where the script calls them.
TRL_READERS = {"get_peft_config", "get_quantization_config"}
#: Class attributes that list the options a benchmark reads with getattr (reer_hf/evaluation/benchmarks/base.py).
OPTION_LISTS = {"item_options", "report_options"}


def dynamic_reads() -> list[tuple[str, str, set[str]]]:
    """The reads that build an option's name: (file, the expression there, the names it reads), the names taken from
    the same data the code iterates over."""
    from reer_hf.core.endpoint import Endpoint
    from reer_hf.evaluation.benchmarks import BENCHMARKS
    from reer_hf.evaluation.judgement import JudgeSampling

    endpoint = {
        f"{prefix}_{f.name}" for prefix in ("generator", "judge", "scorer") for f in dataclasses.fields(Endpoint)
    }
    sampling = {f"eval_{key}" for b in BENCHMARKS.values() for key in dataclasses.asdict(b.sampling)}
    judge = {f"judge_{f.name}" for f in dataclasses.fields(JudgeSampling)}
    return [
        ("reer_hf/core/endpoint.py", 'getattr(options, f"{prefix}_{f.name}")', endpoint),
        ("reer_hf/evaluation/generate.py", 'getattr(args, f"eval_{key}")', sampling),
        ("reer_hf/evaluation/config.py", 'getattr(self, f"judge_{key}")', judge),
    ]


def reads_in(tree: ast.AST) -> set[str]:
    """Names read in ``tree``: attributes loaded, ``getattr``/``hasattr`` literals, the strings of an option list;
    what a ``__post_init__`` reads does not count (validating an option is not using it)."""
    validators = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "__post_init__"]
    skipped = {id(n) for v in validators for n in ast.walk(v)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
            found.add(node.attr)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr"):
            if len(node.args) >= 2 and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str):
                found.add(node.args[1].value)
        elif isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id in OPTION_LISTS for t in node.targets
        ):
            found |= {
                c.value for c in ast.walk(node.value) if isinstance(c, ast.Constant) and isinstance(c.value, str)
            }
    return found


def imported_modules(tree: ast.AST) -> set[str]:
    """The package modules ``tree`` imports anywhere, with the packages Python runs first."""
    found: set[str] = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [
                f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in MODULES else node.module for a in node.names
            ]
        for name in names:
            parts = name.split(".")
            found |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)} & MODULES.keys()
    return found


@cache
def parsed(path: Path) -> ast.AST:
    return parsed_source(path)


@cache
def script_reads(script: Path) -> frozenset[str]:
    """What ``script`` and the package modules it runs read."""
    seen, todo = set(), imported_modules(parsed(script))
    while todo:
        name = todo.pop()
        seen.add(name)
        todo |= imported_modules(parsed(MODULES[name])) - seen
    paths = [script, *(MODULES[name] for name in seen)]
    found = set().union(*(reads_in(parsed(path)) for path in paths))
    for path, _, names in dynamic_reads():
        if ROOT / path in paths:
            found |= names
    import trl

    called = {n.id for path in paths for n in ast.walk(parsed(path)) if isinstance(n, ast.Name)}
    for name in TRL_READERS & called:
        found |= reads_in(ast.parse(textwrap.dedent(inspect.getsource(getattr(trl, name)))))
    return frozenset(found)


def script_dataclasses() -> list[tuple[str, type]]:
    out = []
    for script in SCRIPTS:
        spec = importlib.util.spec_from_file_location(f"recipe_{script.stem}", script)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        out += [(script.name, cls) for cls in module.make_parser().dataclass_types]
    return out


CLASSES = script_dataclasses()


def test_every_recipe_script_is_walked():
    assert {script for script, _ in CLASSES} == {p.name for p in SCRIPTS} and len(SCRIPTS) >= 4


@pytest.mark.parametrize(("script", "cls"), CLASSES, ids=[f"{s}:{c.__name__}" for s, c in CLASSES])
def test_every_option_is_read_by_some_code(script, cls):
    if cls.__name__ in READ_BY_THEIR_LIBRARY:
        return
    unread = sorted(f.name for f in dataclasses.fields(cls) if f.name not in script_reads(ROOT / "recipes" / script))
    assert not unread, (
        f"{script}: options of {cls.__name__} that no code reads (parsed, then ignored): {unread}. Make them work, "
        "or refuse them with a clear error instead of accepting them."
    )


def test_the_dynamic_reads_are_in_their_files():
    for path, expression, names in dynamic_reads():
        assert expression in (ROOT / path).read_text(encoding="utf-8"), f"{path} no longer reads {expression}"
        assert names


def test_the_walk_catches_an_option_nothing_reads():
    tree = ast.parse(
        "class Options:\n"
        "    def __post_init__(self):\n"
        "        if self.validated_only < 0: raise ValueError\n"
        "def run(args):\n"
        "    return args.used, getattr(args, 'looked_up')\n"
    )
    assert reads_in(tree) == {"used"} | {"looked_up"}


@pytest.mark.parametrize("option", ["dataset_test_split", "dataset_streaming", "ignore_bias_buffers"])
def test_the_sft_recipe_refuses_the_trl_script_options_it_would_not_read(option, tmp_path):
    """TRL's ScriptArguments fields that recipes/sft.py never read are no options of it: a YAML or a command line
    that sets one fails, naming it."""
    from reer_hf.sft.config import sft_parser

    demo = ROOT / "recipes" / "demo" / "sft.yaml"
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(demo.read_text() + f"\n{option}: true\n")
    with pytest.raises(ValueError, match=option):
        sft_parser().parse_args_and_config(["--config", str(recipe)])
    with pytest.raises(ValueError, match=f"not used by the HfArgumentParser: \\['--{option}'"):
        sft_parser().parse_args_and_config(["--config", str(demo), f"--{option}", "true"])
