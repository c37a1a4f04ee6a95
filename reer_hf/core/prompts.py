"""Prompt templates: Jinja files in ``reer_hf/prompts``, one per prompt and language (picked per row by
:func:`reer_hf.core.text.detect_language`), or the official REER code's own templates, fetched from their pinned
commit (:mod:`reer_hf.core.official`) and filled as the official code fills them.

Templates live in this folder as ``<name>_<lang>.md``; a path to a file of one's own can be given instead of a name.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import jinja2

from reer_hf.core import official
from reer_hf.core.text import LANGUAGES

PROMPTS_DIR = Path(__file__).resolve().parents[1] / "prompts"


@lru_cache(maxsize=64)
def _template(source: str) -> jinja2.Template:
    env = jinja2.Environment(keep_trailing_newline=False, undefined=jinja2.StrictUndefined, autoescape=False)
    return env.from_string(source)


def template_source(name: str, lang: str = "en") -> str:
    """The text of prompt ``name`` in ``lang``, or of the file at ``name`` when it is a path."""
    path = Path(name)
    if path.suffix and path.is_file():
        return path.read_text(encoding="utf-8")
    if lang not in LANGUAGES:
        raise ValueError(f"Unsupported language {lang!r}; prompts exist for {LANGUAGES}")
    file = PROMPTS_DIR / f"{name}_{lang}.md"
    if not file.is_file():
        available = sorted({p.stem.rsplit("_", 1)[0] for p in PROMPTS_DIR.glob("*_*.md")})
        raise FileNotFoundError(f"No prompt {name!r} for {lang!r} in {PROMPTS_DIR}; available: {available}")
    return file.read_text(encoding="utf-8")


def render(name: str, lang: str = "en", **variables) -> str:
    """Render prompt ``name`` (or a template file path) with ``variables``; missing variables raise."""
    return _template(template_source(name, lang)).render(**variables).strip()


#: Our prompt names and the official templates that play their part. The official code fills a template with
#: ``str.format`` and positional arguments: inference (query), initial (query, answer), edit (query, answer, before,
#: target, after, target).
OFFICIAL_TEMPLATES = {"inference": "standard_inference", "initial": "initial_thinking", "edit": "segment_edits"}


def official_text(name: str) -> str:
    """A text of the official REER code (``reer:NAME``), fetched once from its pinned commit and verified."""
    return official.cached_text(f"reer:{name}")


def official_prompt(name: str, lang: str, *arguments: str) -> str:
    """Our prompt ``name`` (inference, initial or edit) in the official code's wording for ``lang``, filled with
    ``arguments`` in the official order."""
    if name not in OFFICIAL_TEMPLATES:
        raise ValueError(f"No official template plays the part of {name!r}; there are {sorted(OFFICIAL_TEMPLATES)}")
    return official_text(f"{OFFICIAL_TEMPLATES[name]}_{'cn' if lang == 'zh' else 'en'}").format(*arguments)
