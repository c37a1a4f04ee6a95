"""The README's commands are the ones CI runs, and the gpu and hub tests are opt-in whatever a selection says."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]


def bash_blocks(text: str) -> list[list[str]]:
    """The commands of each ```bash block, comments and blank lines left out."""
    blocks = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.DOTALL):
        lines = (line.split(" #")[0].strip() for line in block.splitlines() if not line.lstrip().startswith("#"))
        blocks.append([line for line in lines if line])
    return blocks


def test_ci_runs_the_readme_set_up_test_and_demo_commands():
    setup, demo, tests = bash_blocks((ROOT / "README.md").read_text())[:3]
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert setup == ["bash scripts/setup.sh", ". .venv/bin/activate"]
    assert (ROOT / "scripts" / "setup.sh").is_file()
    for line in setup:
        assert line in ci, f"README set-up command not in .ci/run: {line}"
    assert demo == ["python recipes/synthesize.py --config recipes/demo/synthesize.yaml"]
    assert demo[0] in ci and (ROOT / "recipes" / "demo" / "synthesize.yaml").is_file()
    assert tests[0] == "python -m pytest" and tests[0] in ci
    assert all(command.startswith("python -m pytest") for command in tests)


def test_make_install_and_test_fast_are_the_readme_commands():
    makefile = (ROOT / "Makefile").read_text()
    assert "\tbash scripts/setup.sh\n" in makefile
    quick = bash_blocks((ROOT / "README.md").read_text())[2][1]
    assert f"\t{quick}\n" in makefile


def test_no_marker_expression_is_configured():
    """The opt-in switches replace a configured ``-m``, which any ``-m`` on the command line would have replaced."""
    addopts = re.search(r'^addopts = "(.*)"$', (ROOT / "pyproject.toml").read_text(), re.MULTILINE).group(1)
    assert "-m" not in addopts.split()


@pytest.fixture
def marked_tests(pytester):
    pytester.makeconftest("from opt_in import pytest_addoption, pytest_collection_modifyitems\n")
    pytester.makeini("[pytest]\nmarkers =\n    slow\n    gpu\n    hub\n")
    pytester.makepyfile(
        test_marks="""
        import pytest

        def test_plain(): pass

        @pytest.mark.slow
        def test_slow(): pass

        @pytest.mark.gpu
        @pytest.mark.slow
        def test_gpu(): pass

        @pytest.mark.hub
        def test_hub(): pass
        """
    )
    return pytester


@pytest.mark.parametrize(
    ("args", "env", "passed", "skipped"),
    [
        ([], {}, 2, 2),
        (["-m", "slow"], {}, 1, 1),  # a selection of one's own never pulls in the gpu test
        (["-m", "not slow"], {}, 1, 1),
        (["-k", "gpu or hub"], {}, 0, 2),
        (["--run-gpu"], {}, 3, 1),
        (["-m", "slow", "--run-gpu"], {}, 2, 0),
        ([], {"REER_RUN_HUB": "1"}, 3, 1),
        ([], {"REER_RUN_HUB": "0"}, 2, 2),
    ],
)
def test_gpu_and_hub_tests_run_only_when_asked(marked_tests, monkeypatch, args, env, passed, skipped):
    for name in ("REER_RUN_GPU", "REER_RUN_HUB"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = marked_tests.runpytest("-p", "no:xdist", "-p", "no:cacheprovider", "-rs", *args)
    result.assert_outcomes(passed=passed, skipped=skipped, deselected=4 - passed - skipped)
    if skipped:
        result.stdout.fnmatch_lines(["*test: opt in with --run-*"])
