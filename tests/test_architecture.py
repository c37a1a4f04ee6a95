"""The package's shape: stages over a shared core and one generator client, no import cycle (imports inside functions
count), small modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from testing_utils import parsed_source

PACKAGE = Path(__file__).resolve().parents[1] / "reer_hf"
STAGES = ("scoring", "synthesis", "sft", "evaluation")
MAX_LINES = 500


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(path: Path) -> set[str]:
    """Every ``reer_hf`` module ``path`` imports, at any depth (functions, ``TYPE_CHECKING`` blocks), as module
    names: ``from reer_hf.a import b`` is ``reer_hf.a.b`` when that is a module, else ``reer_hf.a``."""
    found: set[str] = set()
    for node in ast.walk(parsed_source(path)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "reer_hf"}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "reer_hf":
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in MODULES else node.module)
    return found


def edges(name: str) -> set[str]:
    """What importing module ``name`` executes first: its imports and their parent packages' ``__init__`` modules
    (except its own ancestors, which are already being initialised when it runs)."""
    own = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
    out: set[str] = set()
    for target in imports_of(MODULES[name]):
        parts = target.split(".")
        out |= {".".join(parts[:i]) for i in range(2, len(parts) + 1)} - own - {name}
    return {t for t in out if t in MODULES}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycle():
    graph = {name: edges(name) for name in MODULES}
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_core_imports_no_stage():
    for name in MODULES:
        if name.startswith("reer_hf.core"):
            stray = sorted(t for t in imports_of(MODULES[name]) if not t.startswith("reer_hf.core"))
            assert not stray, f"{name} imports {stray}: the core must not depend on a stage"


def test_the_generator_client_imports_only_the_core():
    """Every stage that generates (the search, the evaluation, the judge) uses ``reer_hf.generation``, which depends on
    no stage, so no stage reaches into another for it."""
    for name in MODULES:
        if name.startswith("reer_hf.generation"):
            stray = sorted(
                t for t in imports_of(MODULES[name]) if not t.startswith(("reer_hf.core", "reer_hf.generation"))
            )
            assert not stray, f"{name} imports {stray}: the generator client must not depend on a stage"


def test_the_evaluation_uses_nothing_of_the_search():
    for name in MODULES:
        if name.startswith("reer_hf.evaluation"):
            stray = sorted(
                t for t in imports_of(MODULES[name]) if t.startswith(("reer_hf.synthesis", "reer_hf.scoring"))
            )
            assert not stray, f"{name} imports {stray}: the evaluation generates through reer_hf.generation"


def test_stages_do_not_import_later_stages():
    """Data flows scoring -> synthesis -> sft -> evaluation; a stage may use an earlier one (the search scores),
    never a later one."""
    order = {stage: i for i, stage in enumerate(STAGES)}
    for name in MODULES:
        stage = name.split(".")[1] if name.count(".") else None
        if stage not in order:
            continue
        for target in imports_of(MODULES[name]):
            other = target.split(".")[1] if target.count(".") else None
            if other in order:
                assert order[other] <= order[stage], f"{name} imports {target}, a later stage"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_stay_small(name):
    lines = len(MODULES[name].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines (at most {MAX_LINES}): split it by topic"


def test_each_stage_owns_its_config_and_no_catch_all_exists():
    assert not (PACKAGE / "configs.py").exists()
    for stage in STAGES:
        assert (PACKAGE / stage / "config.py").is_file(), f"reer_hf/{stage}/config.py"


def test_public_imports():
    from reer_hf.scoring import Scorer, ScorerConfig
    from reer_hf.scoring.config import ScorerConfig as ConfigHome
    from reer_hf.scoring.scorer import Scorer as ScorerHome
    from reer_hf.search import Searcher, search_features
    from reer_hf.segment import segment, segment_spans
    from reer_hf.synthesis.search import Searcher as SearcherHome

    assert (Scorer, ScorerConfig, Searcher) == (ScorerHome, ConfigHome, SearcherHome)
    assert callable(search_features) and segment("a\n\nb", min_chars=1) == ["a", "\n\nb"] and segment_spans("") == []
