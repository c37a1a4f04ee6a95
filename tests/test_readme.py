"""The README's commands are the ones CI runs, and the files they name exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def bash_blocks(text: str) -> list[list[str]]:
    return [
        [line.strip() for line in block.splitlines() if line.strip() and not line.startswith("#")]
        for block in re.findall(r"```bash\n(.*?)```", text, re.DOTALL)
    ]


def test_ci_runs_the_readme_set_up_and_test_commands():
    setup, demo, tests = bash_blocks((ROOT / "README.md").read_text())[:3]
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    for line in setup + tests:
        assert line in ci, f"README command not in .ci/run: {line}"
    assert demo == ["python recipes/synthesize.py --config recipes/demo/synthesize.yaml"]
    assert (ROOT / "recipes" / "demo" / "synthesize.yaml").is_file()


def test_readme_points_at_existing_paths():
    text = (ROOT / "README.md").read_text() + (ROOT / "recipes" / "README.md").read_text()
    for path in re.findall(r"`((?:reer_hf|recipes|benchmarks|scripts|accelerate_configs)/[\w./-]+)`", text):
        assert (ROOT / path).exists(), path
