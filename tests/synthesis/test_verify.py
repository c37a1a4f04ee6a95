"""The fp32 check of a run's improvements, on real forwards of a tiny model, with the run's own scorer options."""

from __future__ import annotations

import dataclasses
import importlib.util
import json

import pytest
from datasets import load_from_disk
from openai_server import OpenAIServer
from test_margin import shorter
from test_search import ANSWER, QUERY, Writer
from test_synthesis import configs, scripted
from testing_utils import REPO_ROOT, build_tiny_model, write_jsonl

import reer_hf.synthesis.runner as synthesis
from reer_hf.scoring.config import ScorerConfig
from reer_hf.scoring.scorer import Scorer
from reer_hf.synthesis.verify import plain_fp32_config, run_scorer_config, verify_improvements

SYSTEM = "You plan a story before you write it."  # the scorer's system turn in the run below; not the default


def verify_script():
    spec = importlib.util.spec_from_file_location("verify_fp32", REPO_ROOT / "scripts" / "verify_fp32.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reported_improvements_are_rescored_in_fp32(tiny_tokenizer, pairs):
    config = plain_fp32_config(ScorerConfig(scorer_clip=False, scorer_max_length=None))
    scorer = Scorer(tiny_tokenizer, config, model=build_tiny_model("llama", len(tiny_tokenizer)))
    query, answer = pairs[0]["query"], pairs[0]["answer"]
    a, b = "A plan in one line.", "A longer plan.\n\nIt has two paragraphs, and more words in each one of them."
    (sa, sb) = (r.score for r in scorer.score([query, query], [a, b], [answer, answer]))
    better, worse = (a, b) if sa < sb else (b, a)
    rows = [
        {"query": query, "answer": answer, "z0": worse, "z_star": better, "initial_score": 9.0, "final_score": 8.0},
        {"query": query, "answer": answer, "z0": better, "z_star": worse, "initial_score": 9.0, "final_score": 8.0},
        {"query": query, "answer": answer, "z0": a, "z_star": a, "initial_score": 9.0, "final_score": 9.0},
    ]
    report = verify_improvements(rows, scorer)
    assert (report["improved_reported"], report["improved_in_fp32"], report["reversed"]) == (2, 1, 1)
    assert report["per_row"][0]["fp32_gain"] == abs(sa - sb) and report["per_row"][1]["holds"] is False
    assert report["max_score_drift_from_fp32"] > 0  # the reported scores above are made up


@pytest.mark.slow  # a whole synthesis run
def test_a_run_is_verified_with_the_scorer_options_it_ran_with(tmp_path, tiny_llama_dir, monkeypatch, capsys):
    """A run whose scorer has another system turn (and no clipping) saves its options; the fp32 check re-scores with
    exactly those, so the reported scores are what it finds, which the default options would not give."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    pairs = [{"question": f"{QUERY} Version {i}.", "answer": ANSWER} for i in (0, 1)]
    data = write_jsonl(tmp_path / "pairs.jsonl", pairs)
    out = tmp_path / "run"
    with OpenAIServer(Writer(edit=shorter)) as server:
        run = configs(out, data, tiny_llama_dir, scripted(server), search_min_gain="0", search_max_step=4)
        args, gen, search, filters, scorer = run
        scorer = dataclasses.replace(scorer, scorer_system_prompt=SYSTEM)
        synthesis.synthesize(args, gen, search, filters, scorer, process_index=0, num_processes=1)
    saved = json.loads((out / "run_config.json").read_text())
    assert (saved["scorer_system_prompt"], saved["scorer_clip"], saved["scorer_reflection"]) == (SYSTEM, False, True)
    assert run_scorer_config(out) == dataclasses.replace(scorer, scorer_reflection=True)  # as it ran

    assert verify_script().main(["--output_dir", str(out), "--scorer_device", "cpu"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["improved_reported"] >= 1 and report["improved_in_fp32"] == report["improved_reported"]
    assert report["max_score_drift_from_fp32"] < 1e-5  # the run's scores, found again

    rows = load_from_disk(str(out / "dataset")).to_list()
    row = next(r for r in rows if r["final_score"] < r["initial_score"])
    default = dataclasses.replace(run_scorer_config(out), scorer_system_prompt=ScorerConfig().scorer_system_prompt)
    other = Scorer.from_config(plain_fp32_config(dataclasses.replace(default, scorer_device="cpu")))
    assert abs(other.score([row["query"]], [row["z0"]], [row["answer"]])[0].score - row["initial_score"]) > 1e-3


def test_a_folder_without_the_runs_options_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="run_config.json is missing"):
        verify_script().main(["--output_dir", str(tmp_path)])
