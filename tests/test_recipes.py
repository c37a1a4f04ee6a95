"""Every recipe YAML parses with the real parser of its script (unknown keys fail); the scripts run end to end."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes"
YAMLS = sorted(RECIPES.rglob("*.yaml"))


STAGE_SCRIPTS = {
    "synthesis": "synthesize",
    "evaluation": "eval",
}  # stage folder -> script, where the two names differ


def script_for(path: Path) -> Path:
    """``recipes/<X>/<stage>/config_*.yaml`` belongs to the script of its stage (``synthesis/`` to ``synthesize.py``,
    ``evaluation/`` to ``eval.py``), ``recipes/demo/<script>.yaml`` to ``recipes/<script>.py``."""
    stage = path.parent.name if path.stem.startswith("config") else path.stem
    return RECIPES / f"{STAGE_SCRIPTS.get(stage, stage)}.py"


def parser_of(script: Path):
    spec = importlib.util.spec_from_file_location(f"recipe_{script.stem}", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.make_parser()


def parser_dests(parser) -> set[str]:
    return {action.dest for action in parser._actions}


def test_there_are_recipes():
    assert YAMLS, "no recipe YAML found"


@pytest.mark.parametrize("script", sorted(RECIPES.glob("*.py")), ids=lambda p: p.name)
def test_every_recipe_prints_its_help(script):
    """--help formats every option's help text (a bare % in one would crash argparse)."""
    text = parser_of(script).format_help()
    assert text.startswith("usage:") and "%%" not in text


@pytest.mark.parametrize("path", YAMLS, ids=[str(p.relative_to(RECIPES)) for p in YAMLS])
def test_recipe_parses_and_rejects_unknown_keys(path, tmp_path):
    script = script_for(path)
    assert script.is_file(), f"{path} belongs to no script ({script} is missing)"
    assert path.read_text().startswith("# "), "the first line says on what hardware the recipe runs"
    parser = parser_of(script)
    # bf16 recipes are for GPUs: TrainingArguments refuses bf16 on a CPU machine unless use_cpu is set.
    on_cpu = ["--use_cpu", "true"] if "use_cpu" in parser_dests(parser) and not torch.cuda.is_available() else []
    parsed = parser.parse_args_and_config(["--config", str(path), *on_cpu])
    values = {k: v for obj in parsed for k, v in vars(obj).items()}
    for key, value in yaml.safe_load(path.read_text()).items():
        assert values[key] == value, key
    bad = tmp_path / "bad.yaml"
    bad.write_text(path.read_text() + "\nnot_an_option: 1\n")
    with pytest.raises(ValueError, match="not_an_option"):
        parser_of(script).parse_args_and_config(["--config", str(bad), *on_cpu])


@pytest.mark.slow
def test_score_recipe_cli(tiny_llama_dir, tmp_path):
    out = tmp_path / "scored"
    cmd = [
        sys.executable,
        str(RECIPES / "score.py"),
        "--config",
        str(RECIPES / "demo" / "score.yaml"),
        "--scorer_model",
        str(tiny_llama_dir),
        "--scorer_dtype",
        "fp32",
        "--max_rows",
        "3",
        "--output_dir",
        str(out),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rows"] == 3 and summary["status"] == {"ok": 3}
    assert summary["score_mean"] == pytest.approx(2.0, abs=1e-3)  # a random tiny model: every log-prob clipped at -2
    from datasets import load_from_disk

    scored = load_from_disk(str(out / "dataset"))
    assert {"query", "answer", "score", "score_nll", "score_status"} <= set(scored.column_names)
    assert (out / "scored.parquet").is_file()


@pytest.mark.slow
def test_eval_recipe_cli(tiny_llama_dir, tmp_path):
    """The evaluation demo's command line on the tiny model: LongBench-Write from the bundled data, no judge."""
    out = tmp_path / "eval"
    cmd = [
        sys.executable,
        str(RECIPES / "eval.py"),
        "--config",
        str(RECIPES / "demo" / "eval.yaml"),
        "--generator_model",
        str(tiny_llama_dir),
        "--generator_dtype",
        "fp32",
        "--max_items",
        "3",
        "--eval_max_new_tokens",
        "8",
        "--output_dir",
        str(out),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["table"]["LB S_l"] is not None and report["judge"] is None
    assert sum(report["generation"]["longbench_write"].values()) == 3
    assert "| **demo-smollm2-135m** (ours) |" in (out / "report.md").read_text()
