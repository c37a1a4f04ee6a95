"""The README's commands are the ones CI runs, and every test selection it advises keeps the configured exclusions."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_EXCLUSION = "not gpu and not hub"
#: Files that advise test commands.
ADVICE = [ROOT / "README.md", ROOT / "recipes" / "README.md", ROOT / "benchmarks" / "README.md", ROOT / "Makefile"]
ADVICE += sorted((ROOT / "docs").glob("*.md"))


def bash_blocks(text: str) -> list[list[str]]:
    """The commands of each ```bash block, comments and blank lines left out."""
    blocks = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.DOTALL):
        lines = (line.split(" #")[0].strip() for line in block.splitlines() if not line.lstrip().startswith("#"))
        blocks.append([line for line in lines if line])
    return blocks


def marker_expression(command: str) -> str | None:
    """The ``-m`` expression of a ``python -m pytest`` command line (None without one)."""
    args = shlex.split(command)
    args = args[args.index("pytest") + 1 :]
    return args[args.index("-m") + 1] if "-m" in args else None


def test_ci_runs_the_readme_set_up_and_test_commands():
    setup, demo, tests = bash_blocks((ROOT / "README.md").read_text())[:3]
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    for line in setup:
        assert line in ci, f"README set-up command not in .ci/run: {line}"
    assert demo == ["python recipes/synthesize.py --config recipes/demo/synthesize.yaml"]
    assert (ROOT / "recipes" / "demo" / "synthesize.yaml").is_file()
    ci_tests = [line for line in ci if line.startswith("python -m pytest")]
    assert ci_tests and set(ci_tests) <= set(tests), "the README's test block must hold the command CI runs"
    for command in tests:
        assert command.startswith("python -m pytest"), command


def test_the_configured_selection_is_the_one_the_readme_describes():
    addopts = re.search(r'^addopts = "(.*)"$', (ROOT / "pyproject.toml").read_text(), re.MULTILINE).group(1)
    assert marker_expression(f"python -m pytest {addopts}") == DEFAULT_EXCLUSION
    assert f"-m '{DEFAULT_EXCLUSION}'" in (ROOT / "README.md").read_text()


def test_advised_test_selections_keep_the_default_exclusions():
    """A ``-m`` on the command line replaces the configured one, so every advised selection must repeat it."""
    found = 0
    for path in ADVICE:
        for command in re.findall(r"python -m pytest[^`\n]*", path.read_text()):
            expression = marker_expression(command)
            if expression is not None:
                found += 1
                assert DEFAULT_EXCLUSION in expression, f"{path.relative_to(ROOT)}: {command}"
    assert found, "no advised selection found"


def test_make_test_fast_is_the_readme_quick_suite():
    quick = bash_blocks((ROOT / "README.md").read_text())[2][0]
    assert f"\t{quick}\n" in (ROOT / "Makefile").read_text()
