"""benchmarks/plan_run.py on a real synthesis output: a tiny run (a scripted OpenAI-compatible generator on loopback,
the tiny Llama as scorer) written by the runner itself, then the plan's arithmetic on its files."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from openai_server import OpenAIServer

from reer_hf.generation.config import GeneratorConfig
from reer_hf.scoring.config import ScorerConfig
from reer_hf.synthesis.config import FilterConfig, SearchConfig, SynthesisScriptArguments
from reer_hf.synthesis.runner import synthesize

pytestmark = pytest.mark.slow  # a whole (tiny) synthesis run

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "plan_run.py"
QUERY = "Write a short, calm story about a day in a small town."
ANSWER = (
    "Before the sun rose over Millbrook, Martha had already lit the ovens and the smell of bread drifted through the "
    "empty streets like a promise.\n\n"
    "The paper boy pedalled past at six, tossing rolled news onto porches, whistling a tune nobody had taught him.\n\n"
    "By evening the square was quiet again, and Martha turned the sign on her door, content with another ordinary day."
)
THINKING = (
    " wants a short piece about a quiet town, and I think the reader is someone who likes slow, careful stories told "
    "with warmth.\n\n"
    "So the core goal is a calm mood: the piece must make the reader feel the rhythm of ordinary days and the small "
    "habits of the people who live there.\n\n"
    "Finally the structure: three short scenes from morning to evening, a gentle opening image and an ending that "
    "returns to the baker as the lights go out."
)
THROUGHPUT = {"generator_prefill": 6000.0, "generator_decode": 500.0, "scorer": 24000.0}


def writer(kind: str, payload: dict) -> list[str]:
    """A thinking of three paragraphs for an initial request (pre-filled with the thinking tag), K rewrites for an
    edit."""
    last = payload["messages"][-1]
    if last["role"] == "assistant" and last["content"].startswith("<think>"):
        return [THINKING]
    return [
        f"It sets up the plan.\n</analyze>\n<refine>\nThen I picture the town once more, take {k}: the reader is "
        "patient, so the details stay concrete, plain and warm.\n"
        for k in range(payload.get("n", 1))
    ]


@pytest.fixture(scope="module")
def plan_run():
    spec = importlib.util.spec_from_file_location("plan_run", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def real_run(tmp_path_factory, tiny_llama_dir) -> Path:
    """A real synthesis output folder: 3 pairs, K=2, 2 steps."""
    root = tmp_path_factory.mktemp("plan-run")
    data = root / "pairs.jsonl"
    data.write_text("".join(json.dumps({"query": f"{QUERY} Version {i}.", "answer": ANSWER}) + "\n" for i in range(3)))
    out = root / "run"
    with pytest.MonkeyPatch.context() as mp, OpenAIServer(writer) as server:
        mp.setenv("NO_PROXY", "127.0.0.1,localhost")
        synthesize(
            SynthesisScriptArguments(dataset_name=str(data), map_batch_size=2, output_dir=str(out)),
            GeneratorConfig(
                generator_backend="openai", generator_base_url=server.base_url, generator_model="test-model"
            ),
            SearchConfig(
                search_max_step=2, search_stop_thresh=0.0, search_min_rollout_tokens=5, search_max_new_tokens=48
            ),
            FilterConfig(filter_min_thinking_tokens=None),
            ScorerConfig(
                scorer_model=str(tiny_llama_dir),
                scorer_dtype="fp32",
                scorer_device="cpu",
                scorer_clip=False,
                scorer_max_length=4096,
            ),
            process_index=0,
            num_processes=1,
        )
    return out


def run_copy(real_run: Path, tmp_path: Path, prompt_tokens: int | None) -> Path:
    """The real run's files in ``tmp_path``, its ``generator_prompt_tokens`` set (or removed for None)."""
    for name in ("summary.json", "reer.parquet", "run_config.json"):
        shutil.copyfile(real_run / name, tmp_path / name)
    summary = json.loads((tmp_path / "summary.json").read_text())
    summary.pop("generator_prompt_tokens", None)
    if prompt_tokens is not None:
        summary["generator_prompt_tokens"] = prompt_tokens
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    return tmp_path


def test_plan_of_the_real_run(plan_run, real_run, capsys):
    """Needs the run's own ``generator_prompt_tokens`` (the prompt tokens the generator backends count)."""
    summary = json.loads((real_run / "summary.json").read_text())
    rows = pq.read_table(real_run / "reer.parquet").to_pylist()
    result = plan_run.main(["--run_dir", str(real_run), "--markdown", "--pairs", "100"])
    out = capsys.readouterr().out.strip().splitlines()
    assert json.loads(out[-1]) == json.loads(json.dumps(result))  # the last line is the JSON object
    assert out[0].startswith("| role | tokens |") and "| scorer (full sequences) |" in "\n".join(out)

    measured = result["measured"]
    steps = sum(len(r["trace"]) for r in rows)
    assert measured["rows"] == 3 and measured["steps"] == steps > 0 and measured["candidates_per_step"] == 2
    assert measured["generator_prompt_tokens"] == summary["generator_prompt_tokens"] > 0
    assert measured["generated_tokens"] == summary["generated_tokens"] == sum(r["generated_tokens"] for r in rows)
    assert measured["scored_tokens"] == summary["scored_tokens"] == sum(r["scored_tokens"] for r in rows)
    assert measured["generator_samples"] == summary["generator_requests"] - steps + 2 * steps
    assert "full sequences" in measured["scored_tokens_counting"]
    # the full pass of the paper's settings: 1 + 10 requests, 1 + 2 * 10 samples and scorer sequences per trajectory
    plan = result["plan"]
    assert plan["generator_requests"] == 100 * 11 and plan["generator_samples"] == plan["scorer_sequences"] == 2100
    tokens = result["tokens"]
    assert tokens["generator_prefill"] == round(1100 * measured["prompt_tokens_per_request"])
    assert tokens["generator_decode"] == round(2100 * measured["generated_tokens_per_sample"])
    assert tokens["scorer"] == round(2100 * measured["scorer_tokens_per_sequence"])
    assert result["gpu_hours"] is None and any("--scorer_tok_s_per_gpu" in n for n in result["notes"])


def test_scorer_sequences_are_read_from_the_traces(plan_run, real_run, tmp_path):
    measured = plan_run.measure(run_copy(real_run, tmp_path, prompt_tokens=1000))
    rows = pq.read_table(real_run / "reer.parquet").to_pylist()
    # same-pass acceptance: each row's z0, then per step its scored candidates and the current trajectory once
    expected = sum(r["initial_score"] is not None for r in rows)
    for row in rows:
        for step in row["trace"]:
            sent = sum(s not in plan_run.UNSCORED for s in step["candidate_status"])
            expected += sent + (sent > 0)
    assert measured["scorer_sequences"] == expected > measured["rows"]
    assert measured["scorer_tokens_per_sequence"] == round(measured["scored_tokens"] / expected, 3)
    assert measured["prompt_tokens_per_request"] == round(1000 / measured["generator_requests"], 3)


def test_tokens_and_hours_scale_with_pairs_lengths_and_throughput(plan_run, real_run, tmp_path):
    measured = plan_run.measure(run_copy(real_run, tmp_path, prompt_tokens=4321))
    base = plan_run.plan(measured, pairs=1000, throughput=THROUGHPUT)
    double = plan_run.plan(measured, pairs=2000, throughput=THROUGHPUT)
    for key, value in base["tokens"].items():
        assert value > 0 and double["tokens"][key] == pytest.approx(2 * value, abs=1)
    for key in ("generator_prefill", "generator_decode", "scorer", "total"):
        assert double["gpu_hours"][key] == pytest.approx(2 * base["gpu_hours"][key], rel=1e-6)

    slow = plan_run.plan(measured, pairs=1000, throughput={k: v / 2 for k, v in THROUGHPUT.items()})
    for key in ("generator_prefill", "generator_decode", "scorer", "total"):
        assert slow["gpu_hours"][key] == pytest.approx(2 * base["gpu_hours"][key])
    assert slow["wall_clock_hours"]["overlapped"] == pytest.approx(2 * base["wall_clock_hours"]["overlapped"])

    longer = plan_run.plan(measured, pairs=1000, tokens_scale=3.0)
    assert longer["tokens"] == {k: pytest.approx(3 * v, abs=2) for k, v in base["tokens"].items()}
    more = plan_run.plan(measured, pairs=1000, throughput=THROUGHPUT, generator_replicas=2, scorer_replicas=2)
    assert more["gpu_hours"] == base["gpu_hours"] and more["layout"]["gpus"] == 12
    for key in ("generator", "scorer"):
        assert more["wall_clock_hours"][key] == pytest.approx(base["wall_clock_hours"][key] / 2)

    # GPU-hours are tokens over tokens/s per GPU; wall clock spreads them over the TP group's GPUs
    hours = base["gpu_hours"]
    assert hours["scorer"] == pytest.approx(base["tokens"]["scorer"] / THROUGHPUT["scorer"] / 3600, rel=1e-6)
    assert hours["total"] == pytest.approx(hours["generator_prefill"] + hours["generator_decode"] + hours["scorer"])
    assert base["wall_clock_hours"]["scorer"] == pytest.approx(hours["scorer"] / 2)
    assert base["wall_clock_hours"]["generator"] == pytest.approx(hours["generator"] / 4)


def test_thinking_tokens_sets_the_scale_and_measured_counts(plan_run, real_run, tmp_path, capsys):
    run = run_copy(real_run, tmp_path, prompt_tokens=500)
    measured = plan_run.measure(run)
    target = 2 * measured["thinking_tokens_mean"]
    result = plan_run.main(["--run_dir", str(run), "--thinking_tokens", str(target), "--pairs", "50"])
    assert result["settings"]["tokens_scale"] == 2.0
    assert result["tokens"] == plan_run.plan(measured, pairs=50, tokens_scale=2.0)["tokens"]
    capsys.readouterr()

    counts = plan_run.plan(measured, pairs=30, search_counts="measured")["plan"]
    assert counts["steps_per_searched_row"] == measured["steps_per_searched_row"]
    assert counts["rows_searched"] == pytest.approx(30 * measured["rows_searched"] / measured["rows"])


def test_a_run_without_prompt_token_counts_is_refused(plan_run, real_run, tmp_path):
    run = run_copy(real_run, tmp_path, prompt_tokens=None)
    with pytest.raises(ValueError, match="predates prompt-token counting"):
        plan_run.measure(run)
    with pytest.raises(ValueError, match="reported no prompt tokens"):
        plan_run.measure(run_copy(real_run, tmp_path, prompt_tokens=0))
    run = run_copy(real_run, tmp_path, prompt_tokens=None)
    done = subprocess.run([sys.executable, str(SCRIPT), "--run_dir", str(run)], capture_output=True, text=True)
    assert done.returncode == 1 and "predates prompt-token counting" in done.stderr and "Traceback" not in done.stderr
