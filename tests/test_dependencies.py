"""Every package pyproject.toml declares, the extras included, is imported by the project's code, or used without an
import for a reason this test states and checks (the file that needs it). A dependency that is neither is dead
weight in every install."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from testing_utils import parsed_source

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]
CODE = ["reer_hf", "recipes", "scripts", "benchmarks", "tests"]
#: Distribution name -> the module it is imported as, where the two differ.
MODULE_OF = {"pyyaml": "yaml", "liger-kernel": "liger_kernel", "pytest-xdist": "xdist"}
#: Used by another library on the project's behalf, never imported here: why, and the file and text that show it.
USED_WITHOUT_IMPORT = {
    "peft": ("TRL builds the LoRA model with it (use_peft)", "recipes/DeepWriter-8B/sft/config_lora.yaml", "use_peft"),
    "gguf": ("transformers reads the demo model's GGUF file with it", "reer_hf/core/models.py", "gguf_file"),
    "tensorboard": ("transformers' TensorBoard callback", "recipes/DeepWriter-8B/sft/config_full.yaml", "tensorboard"),
    "deepspeed": ("accelerate runs ZeRO with it", "accelerate_configs/zero3.yaml", "deepspeed_config"),
    "wandb": ("transformers' callback behind --report_to wandb", "recipes/README.md", "--report_to wandb"),
    "trackio": ("transformers' callback behind --report_to trackio", "recipes/README.md", "--report_to trackio"),
    "ruff": ("the linter of make quality", "Makefile", "ruff check"),
    "pytest-xdist": ("pytest's -n (pyproject addopts)", "pyproject.toml", "-n auto"),
}


def declared() -> list[str]:
    """The distribution names of every requirement (dependencies and each extra), lower-cased, extras stripped."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    requirements = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    return sorted({re.match(r"[A-Za-z0-9_.-]+", r).group().lower() for r in requirements})


def imported() -> set[str]:
    """Top-level modules the project's code imports anywhere (inside functions too)."""
    found = set()
    for folder in CODE:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(parsed_source(path)):
                if isinstance(node, ast.Import):
                    found |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    found.add(node.module.split(".")[0])
    return found


def test_every_declared_dependency_is_imported_or_used_for_a_stated_reason():
    modules = imported()
    unused = []
    for name in declared():
        if MODULE_OF.get(name, name.replace("-", "_")) in modules:
            continue
        if name in USED_WITHOUT_IMPORT:
            _, path, evidence = USED_WITHOUT_IMPORT[name]
            assert evidence in (ROOT / path).read_text(encoding="utf-8"), f"{name}: {path} no longer says {evidence!r}"
            continue
        unused.append(name)
    assert not unused, f"declared in pyproject.toml but neither imported nor used by another library: {unused}"


def test_the_reasons_name_declared_packages():
    assert set(USED_WITHOUT_IMPORT) <= set(declared())
