"""The package as users install it: the card templates (top-level ``model_cards/``) ship in the wheel as
``reer_hf.model_cards``, so an installed reer-hf renders its cards (TRL's ``create_model_card`` calls ours), and the
explicit packages list in ``pyproject.toml`` names every package."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from testing_utils import REPO_ROOT

tomllib = pytest.importorskip("tomllib")

SOURCES = ("pyproject.toml", "README.md", "LICENSE", "reer_hf", "model_cards")
# Renders both cards with the installed package from a folder outside the checkout; argv[1] is the venv's
# site-packages, where reer_hf must come from (not from the checkout's editable install).
SNIPPET = """
import sys
from pathlib import Path

import reer_hf
from huggingface_hub import DatasetCard, ModelCard

from reer_hf.core.cards import render_dataset_card, render_license_notice, render_model_card
from reer_hf.synthesis.config import SynthesisScriptArguments

assert Path(reer_hf.__file__).resolve().is_relative_to(Path(sys.argv[1]).resolve()), reer_hf.__file__
summary = {"rows": 2, "kept": 1, "languages": {"en": 2}, "hub_config_name": "cfg",
           "initial_score": {}, "final_score": {}, "accepted_gains": {}}
config = {"generator_model": "Qwen/Qwen2.5-32B-Instruct", "scorer_model": "Qwen/Qwen3-8B-Base"}
args = SynthesisScriptArguments(dataset_name="me/pairs")
card = DatasetCard(str(render_dataset_card(summary, config, args)))
assert card.data.license == "other" and card.data.license_link == "LICENSE.md", card.data
assert card.data.configs[0]["config_name"] == "cfg" and "https://arxiv.org/abs/2509.06160" in card.text
assert "Generated text" in render_license_notice(summary, config, args)
data = {"dataset_name": "me/data", "report": {"steps": []}, "assistant_format": "{thinking}{answer}"}
card = ModelCard(str(render_model_card("Qwen/Qwen3-8B-Base", {"name": "full", "lora": True}, data, {}, {})))
assert card.data.library_name == "peft" and card.data.base_model == "Qwen/Qwen3-8B-Base", card.data
assert "# DeepWriter SFT (full, LoRA)" in card.text
print("cards rendered")
"""


def pyproject() -> dict:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_the_packages_list_names_every_package():
    from setuptools import find_packages

    setup = pyproject()["tool"]["setuptools"]
    assert setup["package-dir"] == {"reer_hf.model_cards": "model_cards"}
    assert sorted(setup["packages"]) == sorted(
        [*find_packages(str(REPO_ROOT), include=["reer_hf*"]), "reer_hf.model_cards"]
    )
    assert (REPO_ROOT / "model_cards" / "__init__.py").is_file()


def run(*command, **kwargs) -> str:
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120, **kwargs)
    assert proc.returncode == 0, (command, proc.stdout[-2000:], proc.stderr[-3000:])
    return proc.stdout


@pytest.mark.slow
def test_an_installed_wheel_renders_both_cards(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in SOURCES:
        if (REPO_ROOT / name).is_dir():
            shutil.copytree(REPO_ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(REPO_ROOT / name, src / name)
    pip = (sys.executable, "-m", "pip", "--disable-pip-version-check", "-q")
    run(*pip, "wheel", str(src), "--no-deps", "--no-build-isolation", "--no-index", "-w", str(tmp_path / "dist"))
    (wheel,) = (tmp_path / "dist").glob("reer_hf-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("model_card.md", "dataset_card.md", "dataset_license.md", "__init__.py"):
        assert f"reer_hf/model_cards/{name}" in names
    assert "reer_hf/prompts/initial_en.md" in names and not any(n.startswith("model_cards/") for n in names)

    # a fresh venv with only the wheel; the heavy dependencies come from this environment through a .pth line
    # (a plain path line: the editable install's own .pth there is not processed, so it cannot shadow the wheel)
    run(sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "venv"))
    python = str(tmp_path / "venv" / ("Scripts/python.exe" if os.name == "nt" else "bin/python"))
    site = run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip()
    Path(site, "_reer_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run(*pip, "--python", python, "install", "--no-deps", "--no-index", str(wheel))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert run(python, "-I", "-c", SNIPPET, site, cwd=elsewhere).strip().endswith("cards rendered")
