"""Every repository path the docs, recipes, code and tests name exists, and no stale document name is left.

A reference is a path that starts at one of the repository's top-level folders (``recipes/demo/sft.yaml``,
``reer_hf/prompts/judge_*_en.md``) or a relative markdown link. Globs must match a file; placeholders (``<name>``,
``{stage}``) match any one path component; URLs and paths inside other paths (``trl/scripts/utils.py``) are not
references. Run-time outputs live under ``outputs/``, which is no reference root.
"""

from __future__ import annotations

import html
import re
import subprocess
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Top-level folders a reference starts from.
ROOTS = ("recipes", "reer_hf", "docs", "scripts", "accelerate_configs", "model_cards", "benchmarks", "slurm", "tests")
#: Files scanned: everything tracked (or new and not ignored) here, but data.
SCANNED = re.compile(
    r"^(README[^/]*|Makefile|pyproject\.toml|(docs|recipes|reer_hf|model_cards|tests|scripts|benchmarks|slurm|"
    r"accelerate_configs)/.*)$"
)
TEXT_SUFFIXES = {".md", ".py", ".yaml", ".yml", ".jinja", ".toml", ".sh", ".slurm", ".txt", ".cfg", ""}
DATA = re.compile(r"^(tests/data|reer_hf/assets)/")
#: Mentions that must not appear anywhere (removed documents, folders outside the repository, tracker numbers).
FORBIDDEN = [r"\bREER\.md\b", r"\bBENCHMARKS\.md\b", r"\.\./shared\b", r"(?i:\bissue #)"]

PLACEHOLDER = r"<[^<>\n]*>|\{[^{}\n]*\}"
PATH = re.compile(
    rf"(?<![\w./\\-])((?:{'|'.join(ROOTS)})/(?:[\w.*?+-]|{PLACEHOLDER})*(?:/(?:[\w.*?+-]|{PLACEHOLDER})*)*)"
)
LINK = re.compile(r"\]\(([^()\s]+)\)")
#: In markdown, a code span holding a file path relative to the document's folder (``demo/sft.yaml`` in
#: recipes/README.md); checked when its first folder is there (other spans name files of other repositories).
SPAN = re.compile(rf"`((?!outputs/|/|~)[\w.-]+(?:/(?:[\w.*-]|{PLACEHOLDER})+)+\.(?:yaml|yml|py|md|jinja|sh))`")


def scanned_files() -> list[Path]:
    try:
        out = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    names = [n for n in out.splitlines() if SCANNED.match(n) and not DATA.match(n) and (ROOT / n).is_file()]
    this = Path(__file__).resolve()  # its examples name missing paths on purpose
    return [ROOT / n for n in sorted(set(names)) if Path(n).suffix in TEXT_SUFFIXES and ROOT / n != this]


@cache
def mapped_packages() -> dict[str, str]:
    """Package paths that setuptools maps to another folder (``reer_hf/model_cards/`` -> ``model_cards/``)."""
    text = (ROOT / "pyproject.toml").read_text()
    table = re.search(r"^package-dir = \{(.*)\}$", text, re.MULTILINE)
    pairs = re.findall(r'"([\w.]*)" = "([\w./]*)"', table.group(1)) if table else []
    return {package.replace(".", "/") + "/": folder.rstrip("/") + "/" for package, folder in pairs if package}


def resolves(ref: str, base: Path = ROOT) -> bool:
    """Whether ``ref`` (relative to ``base``) names an existing file or folder; globs and placeholders must match."""
    for package, folder in mapped_packages().items():
        if base == ROOT and ref.startswith(package):
            ref = folder + ref[len(package) :]
    pattern = re.sub(PLACEHOLDER, "*", ref.rstrip("/"))
    if not any(c in pattern for c in "*?["):
        return (base / pattern).exists()
    return next(base.glob(pattern), None) is not None


def references(path: Path) -> list[tuple[int, str, Path]]:
    """(line, reference, base folder) for every repository path and relative markdown link in ``path``."""
    found: dict[tuple[int, str, Path], None] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if path.suffix == ".md":  # as rendered: `judge_\*_en.md` is judge_*_en.md, `&lt;name>` is <name>
            line = html.unescape(line.replace("\\*", "*"))
        for match in PATH.finditer(line):
            if "://" in re.split(r"[\s`(\"']", line[: match.start()])[-1]:  # inside a URL
                continue
            ref = match.group(1).rstrip(".,:;")
            found[number, ref, ROOT] = None
        if path.suffix == ".md":
            for span in SPAN.findall(line):
                if not span.startswith(ROOTS) and (path.parent / span.split("/")[0]).is_dir():
                    found[number, span, path.parent] = None
            for target in LINK.findall(line):
                target = target.split("#")[0]
                if target and not re.match(r"^[a-z][a-z0-9+.-]*:", target):
                    found[number, target, path.parent] = None
    return list(found)


def test_there_are_references():
    assert sum(len(references(p)) for p in scanned_files()) > 100


def test_referenced_paths_exist():
    broken = [
        f"{path.relative_to(ROOT)}:{number}: {ref}"
        for path in scanned_files()
        for number, ref, base in references(path)
        if not resolves(ref, base)
    ]
    assert not broken, "references to missing paths:\n" + "\n".join(broken)


def test_no_stale_mentions():
    pattern = re.compile("|".join(FORBIDDEN))
    hits = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()[:120]}"
        for path in scanned_files()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line)
    ]
    assert not hits, "stale mentions:\n" + "\n".join(hits)


@pytest.mark.parametrize(
    ("text", "refs"),
    [
        ("see `recipes/demo/sft.yaml`.", ["recipes/demo/sft.yaml"]),
        (
            "recipes/<Model or Dataset>/<stage>/config_<variant>.yaml",
            ["recipes/<Model or Dataset>/<stage>/config_<variant>.yaml"],
        ),
        ("https://github.com/huggingface/trl/blob/main/trl/scripts/utils.py and outputs/docs/x.md", []),
        ("[the recipes](recipes/README.md#runs) and [TRL](https://huggingface.co/docs/trl)", ["recipes/README.md"]),
        ("`evaluator/llm.py` of WritingBench; `outputs/sft-demo/README.md`", []),
    ],
)
def test_what_counts_as_a_reference(tmp_path, text, refs):
    doc = tmp_path / "doc.md"
    doc.write_text(text)
    assert sorted({ref for _, ref, _ in references(doc)}) == refs


def test_globs_and_placeholders_must_match():
    assert resolves("reer_hf/prompts/judge_*_en.md")
    assert resolves("recipes/<Model or Dataset>/<stage>/config_<variant>.yaml")
    assert resolves("recipes/{stage}.py")
    assert not resolves("recipes/*/config_nothing.yaml")
    assert not resolves("recipes/evaluate.py")
    if "reer_hf/model_cards/" in mapped_packages():
        assert resolves("reer_hf/model_cards/model_card.md")  # model_cards/ ships inside the package
