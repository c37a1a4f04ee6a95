"""Write the option tables of recipes/README.md from the recipes' option dataclasses.

    python scripts/option_tables.py          # rewrite the tables between the <!-- options:NAME:start/end --> markers
    python scripts/option_tables.py --check  # exit 1 when a table differs from what the dataclasses give

Each table lists the fields a dataclass declares itself (name, type, default, ``help`` text); TRL's ``SFTConfig`` and
``ModelConfig`` (and the fields of any TRL base class) are linked to TRL's documentation instead. A dataclass
shared by two recipes is tabled once, under the recipe named first in ``SHARED_IN``.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import re
import sys
import types
import typing
from pathlib import Path
from typing import Any, Literal

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "recipes" / "README.md"

TRL_DOCS = {
    "SFTConfig": "https://huggingface.co/docs/trl/sft_trainer#trl.SFTConfig",
    "ModelConfig": "https://github.com/huggingface/trl/blob/main/trl/trainer/model_config.py",
}


def recipe_dataclasses() -> dict[str, list[type]]:
    """Recipe name -> the option dataclasses of its script, in parser order (ours only)."""
    from reer_hf.evaluation.config import EvaluationScriptArguments, JudgeConfig
    from reer_hf.generation.config import GeneratorConfig
    from reer_hf.scoring.config import ScorerConfig, ScoreScriptArguments
    from reer_hf.sft.config import SFTScriptArguments
    from reer_hf.synthesis.config import FilterConfig, SearchConfig, SynthesisScriptArguments

    return {
        "score": [ScoreScriptArguments, ScorerConfig],
        "synthesize": [SynthesisScriptArguments, GeneratorConfig, SearchConfig, FilterConfig, ScorerConfig],
        "sft": [SFTScriptArguments],
        "eval": [EvaluationScriptArguments, GeneratorConfig, JudgeConfig],
    }


#: Where a dataclass used by several recipes is tabled: the first recipe that has it, in this order.
SHARED_IN = ["score", "synthesize", "sft", "eval"]


def type_text(hint: Any) -> str:
    """A field's type as a reader writes it: ``int | None``, ``list[str]``, ``'builtin' | 'official'``."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(hint))
    if origin in (typing.Union, types.UnionType):
        return " | ".join("None" if a is type(None) else type_text(a) for a in typing.get_args(hint))
    if origin is not None:
        return f"{origin.__name__}[{', '.join(type_text(a) for a in typing.get_args(hint))}]"
    return getattr(hint, "__name__", str(hint))


def default_text(f: dataclasses.Field) -> str:
    """A field's default as it is written in a recipe YAML (``true``, a bare string, ``[a, b]``); ``None`` stays."""
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        return "required"
    if value is None or isinstance(value, bool):
        return "None" if value is None else str(value).lower()
    if isinstance(value, str):
        return value.replace("\n", "\\n").replace("\t", "\\t") if value else "''"
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, ensure_ascii=False)
    return repr(value)


CODE_SPAN = re.compile(r"(`+)(.+?)\1")


def cell(text: str, code: bool = False) -> str:
    """Markdown table cell: pipes escaped; outside the code spans (``x`` or `x`), HTML-like tags and emphasis marks
    too. ``code=True`` makes the whole text one code span."""
    if code:
        fence, pad = ("``", " ") if "`" in text else ("`", "")
        return fence + pad + text.replace("|", "\\|") + pad + fence
    out, last = [], 0
    for m in CODE_SPAN.finditer(text := " ".join(text.split())):
        out += [text[last : m.start()].replace("<", "&lt;").replace("*", "\\*"), m.group(0)]
        last = m.end()
    out.append(text[last:].replace("<", "&lt;").replace("*", "\\*"))
    return "".join(out).replace("|", "\\|")


def own_fields(cls: type) -> list[dataclasses.Field]:
    """The fields ``cls`` declares in its own body (not those it inherits), in declaration order."""
    own = inspect.get_annotations(cls)
    return [f for f in dataclasses.fields(cls) if f.name in own]


def inherited_fields(cls: type) -> dict[type, list[str]]:
    """Base class -> the fields ``cls`` inherits from it unchanged."""
    own = set(inspect.get_annotations(cls))
    out: dict[type, list[str]] = {}
    for base in cls.__mro__[1:]:
        if dataclasses.is_dataclass(base):
            names = [f.name for f in dataclasses.fields(base) if f.name not in own and f.name in base.__annotations__]
            if names:
                out[base] = names
    return out


def source_link(cls: type) -> str:
    path = Path(inspect.getsourcefile(cls)).resolve().relative_to(ROOT).as_posix()
    return f"[`{path}`](../{path})"


def table(cls: type) -> list[str]:
    hints = typing.get_type_hints(cls, vars(sys.modules[cls.__module__]))
    lines = ["| option | type | default | what it does |", "|---|---|---|---|"]
    for f in own_fields(cls):
        help_text = f.metadata.get("help", "")
        row = [cell(f.name, code=True), cell(type_text(hints[f.name]), code=True)]
        lines.append("| " + " | ".join([*row, cell(default_text(f), code=True), cell(help_text)]) + " |")
    return lines


def render(recipe: str, classes: dict[str, list[type]] | None = None) -> str:
    """The markdown between the markers of ``recipe``: one table per option dataclass of its script."""
    classes = classes or recipe_dataclasses()
    owner = {}
    for name in SHARED_IN:
        for cls in classes[name]:
            owner.setdefault(cls, name)
    out = ["<!-- generated by scripts/option_tables.py from the dataclasses' help texts: edit those, then run it -->"]
    for cls in classes[recipe]:
        doc = " ".join((inspect.getdoc(cls) or "").split("\n\n")[0].split())
        if owner[cls] != recipe:
            out += ["", f"`{cls.__name__}` ({source_link(cls)}): the table of `recipes/{owner[cls]}.py`."]
            continue
        out += ["", f"`{cls.__name__}` ({source_link(cls)}): {cell(doc)}", "", *table(cls)]
        for base, names in inherited_fields(cls).items():
            link = TRL_DOCS.get(base.__name__)
            where = f"[`{base.__name__}`]({link})" if link else f"`{base.__name__}`"
            out += ["", f"From TRL's {where}: {', '.join(f'`{n}`' for n in names)}."]
    if recipe == "sft":
        trl = " and ".join(f"[`{name}`]({TRL_DOCS[name]})" for name in ("SFTConfig", "ModelConfig"))
        out += ["", f"Every option of TRL's {trl} is an option of `recipes/sft.py` too."]
    return "\n".join(out)


def markers(recipe: str) -> tuple[str, str]:
    return f"<!-- options:{recipe}:start -->", f"<!-- options:{recipe}:end -->"


def update(text: str, classes: dict[str, list[type]] | None = None) -> str:
    """``text`` with every recipe's block between its markers replaced by the rendered tables."""
    classes = classes or recipe_dataclasses()
    for recipe in classes:
        start, end = markers(recipe)
        pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
        if len(pattern.findall(text)) != 1:
            raise ValueError(f"{README.name} must hold the markers {start} ... {end} exactly once")
        block = f"{start}\n{render(recipe, classes)}\n{end}"
        text = pattern.sub(lambda _, block=block: block, text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="Exit 1 when a table is stale; write nothing.")
    parser.add_argument("--readme", type=Path, default=README, help="The file holding the markers.")
    args = parser.parse_args(argv)
    text = args.readme.read_text(encoding="utf-8")
    new = update(text)
    if new == text:
        return 0
    if args.check:
        print(f"{args.readme} has stale option tables: run python scripts/option_tables.py", file=sys.stderr)
        return 1
    args.readme.write_text(new, encoding="utf-8")
    print(f"wrote the option tables of {args.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
