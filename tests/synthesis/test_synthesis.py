"""A whole synthesis run: pieces, resume after a crash, sharding across processes, summary, plot, card, CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from datasets import load_from_disk
from openai_server import OpenAIServer
from test_search import ANSWER, QUERY, Writer
from testing_utils import REPO_ROOT

import reer_hf.synthesis.runner as synthesis
from reer_hf.generation.config import GeneratorConfig
from reer_hf.scoring.config import ScorerConfig
from reer_hf.scoring.scorer import Scorer
from reer_hf.synthesis.config import FilterConfig, SearchConfig, SynthesisScriptArguments

ROOT = REPO_ROOT


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture
def pairs_file(tmp_path) -> Path:
    path = tmp_path / "pairs.jsonl"
    rows = [{"question": f"{QUERY} Version {i}.", "answer": f"<think>old thoughts</think>{ANSWER}"} for i in range(5)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def configs(out: Path, data: Path, model_dir: Path, generator: GeneratorConfig, **search):
    args = SynthesisScriptArguments(dataset_name=str(data), map_batch_size=2, output_dir=str(out))
    values = dict(search_max_step=2, search_stop_thresh=0.0, search_min_rollout_tokens=5, search_max_new_tokens=48)
    values.update(search)
    return (
        args,
        generator,
        SearchConfig(**values),
        FilterConfig(filter_min_thinking_tokens=None),
        ScorerConfig(
            scorer_model=str(model_dir),
            scorer_dtype="fp32",
            scorer_device="cpu",
            scorer_clip=False,
            scorer_max_length=4096,
        ),
    )


def scripted(server) -> GeneratorConfig:
    return GeneratorConfig(
        generator_backend="openai", generator_base_url=server.base_url, generator_model="test-model"
    )


def crash_after(monkeypatch, pieces: int):
    real = synthesis._search_piece
    done = []

    def flaky(*args, **kwargs):
        if len(done) == pieces:
            raise KeyboardInterrupt("killed")
        real(*args, **kwargs)
        done.append(1)

    monkeypatch.setattr(synthesis, "_search_piece", flaky)


@pytest.mark.slow
def test_run_outputs_resume_and_card(tmp_path, pairs_file, tiny_llama_dir, monkeypatch):
    with OpenAIServer(Writer()) as server:
        full = configs(tmp_path / "full", pairs_file, tiny_llama_dir, scripted(server))
        summary = synthesis.synthesize(*full, process_index=0, num_processes=1)
        crashed = configs(tmp_path / "crashed", pairs_file, tiny_llama_dir, scripted(server))
        crash_after(monkeypatch, 1)
        with pytest.raises(KeyboardInterrupt):
            synthesis.synthesize(*crashed, process_index=0, num_processes=1)
        assert sorted(p.name for p in (tmp_path / "crashed" / "pieces").glob("*.parquet")) == ["piece-000000.parquet"]
        monkeypatch.undo()
        monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
        before = len(server.requests)
        resumed = synthesis.synthesize(*crashed, process_index=0, num_processes=1)
        assert len(server.requests) - before == 3 * (1 + 2)  # only the 3 rows of the two missing pieces

    a = load_from_disk(str(tmp_path / "full" / "dataset"))
    b = load_from_disk(str(tmp_path / "crashed" / "dataset"))
    assert a.to_list() == b.to_list()
    assert a["query"] == [f"{QUERY} Version {i}." for i in range(5)]
    assert a["answer"] == [ANSWER] * 5  # the old thinking was stripped
    assert summary["rows"] == resumed["rows"] == 5 and summary["kept"] == 5
    assert summary["generator_calls"] == 3 * (1 + 2)  # 3 map batches, each 1 + max_step calls
    assert summary["initial_score"]["median"] >= summary["final_score"]["median"]
    assert set(summary["acceptance_per_step"]) == {"0", "1"}

    out = tmp_path / "full"
    for name in ("reer.parquet", "summary.json", "scores.png", "README.md"):
        assert (out / name).is_file(), name
    assert (out / "scores.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    card = (out / "README.md").read_text()
    assert card.startswith("---\n") and "license: other" in card
    assert "search_num_expansion: 2" in card and "scorer_model:" in card  # the full configuration
    assert "Reverse-Engineered Reasoning for Open-Ended Generation" in card and "2509.06160" in card
    assert f"| rows searched / kept | 5 / {summary['kept']} |" in card
    assert summary["hub_config_name"] in card

    # the local image of the Hub repo loads by its config name, with the kept rows only
    from datasets import load_dataset

    hub = load_dataset(str(out / "hub"), summary["hub_config_name"], split="train")
    assert hub.to_list() == a.filter(lambda s: s == "ok", input_columns="status").to_list()
    assert (out / "hub" / summary["hub_config_name"] / "summary.json").is_file()
    assert (out / "hub" / "LICENSE.md").is_file() and "license_link: LICENSE.md" in card

    assert summary["filters"] == {"dedup": 0, "leak_trajectory": 0, "leak_rewrite": 0}
    assert summary["drop_reasons"] == {} and summary["candidates"]["scored"] > 0
    assert summary["generator_requests"] == 5 * (1 + 2) and summary["generator_errors"] == 0
    assert summary["languages"] == {"en": 5} and "language:\n- en" in card

    # other settings, or other rows, on the same output_dir: refused, unless asked to start over
    other = configs(tmp_path / "full", pairs_file, tiny_llama_dir, full[1], search_max_step=3)
    with pytest.raises(ValueError, match="overwrite_output_dir"):
        synthesis.synthesize(*other, process_index=0, num_processes=1)
    lines = pairs_file.read_text().splitlines()
    pairs_file.write_text("\n".join([lines[1], lines[0], *lines[2:]]) + "\n")  # same rows, another order
    with pytest.raises(ValueError, match="overwrite_output_dir"):
        synthesis.synthesize(*full, process_index=0, num_processes=1)


@pytest.mark.slow
def test_processes_take_their_shards_and_the_main_one_merges(tmp_path, pairs_file, tiny_llama_dir):
    with OpenAIServer(Writer()) as server:
        single = configs(tmp_path / "single", pairs_file, tiny_llama_dir, scripted(server))
        synthesis.synthesize(*single, process_index=0, num_processes=1)
        # a margin given as a number: rank 1 runs before the main process here, with no noise floor to wait for
        sharded = configs(tmp_path / "sharded", pairs_file, tiny_llama_dir, scripted(server), search_min_gain="0")
        assert synthesis.synthesize(*sharded, process_index=1, num_processes=2) is None  # rank 1: piece 1 only
        assert [p.name for p in (tmp_path / "sharded" / "pieces").glob("*.parquet")] == ["piece-000001.parquet"]
        # a failure marker left by a crashed process of an earlier launch does not stop this one
        (tmp_path / "sharded" / "pieces" / "failed-1.txt").write_text("process 1: OOM")
        summary = synthesis.synthesize(*sharded, process_index=0, num_processes=2)  # rank 0: pieces 0, 2; merges
    assert summary["rows"] == 5
    a = load_from_disk(str(tmp_path / "single" / "dataset"))
    b = load_from_disk(str(tmp_path / "sharded" / "dataset"))
    assert a.to_list() == b.to_list()


def full_and_resumed(tmp_path, pairs_file, model_dir, monkeypatch, **search) -> tuple[list[dict], list[dict]]:
    """The rows of an uninterrupted run and of a run killed after two pieces and started again, with a generator
    that samples for real (the tiny transformers model)."""
    generator = GeneratorConfig(generator_model=str(model_dir), generator_dtype="fp32", generator_device="cpu")
    kw = dict(search_segment_min_chars=1, search_min_rollout_tokens=1, search_edit_format="refine", **search)
    full = configs(tmp_path / "full", pairs_file, model_dir, generator, **kw)
    full[3].filter_repetition = False
    synthesis.synthesize(*full, process_index=0, num_processes=1)
    crashed = configs(tmp_path / "crashed", pairs_file, model_dir, generator, **kw)
    crashed[3].filter_repetition = False
    crash_after(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        synthesis.synthesize(*crashed, process_index=0, num_processes=1)
    monkeypatch.undo()
    synthesis.synthesize(*crashed, process_index=0, num_processes=1)
    full_rows = load_from_disk(str(tmp_path / "full" / "dataset")).to_list()
    return full_rows, load_from_disk(str(tmp_path / "crashed" / "dataset")).to_list()


@pytest.mark.slow
def test_resume_with_real_sampling_is_identical(tmp_path, pairs_file, tiny_llama_dir, monkeypatch):
    """The transformers generator samples for real: seeds per map batch make a resumed run write the same data."""
    a, b = full_and_resumed(tmp_path, pairs_file, tiny_llama_dir, monkeypatch)
    assert a == b
    assert all(row["z0"] for row in a)  # real sampled text, compared character for character


@pytest.mark.slow
def test_rollouts_are_rows_of_their_own_and_resume_exactly(tmp_path, pairs_file, tiny_llama_dir, monkeypatch):
    """Two sampled rollouts per pair: each its own row with its index, different trajectories, and a run killed
    after a piece and started again writes exactly what an uninterrupted run writes."""
    a, b = full_and_resumed(tmp_path, pairs_file, tiny_llama_dir, monkeypatch, search_num_rollouts=2)
    assert a == b and len(a) == 10
    assert [row["rollout"] for row in a] == [0, 1] * 5
    assert all(row["duplicate_of"] is None for row in a)  # a pair's second rollout is no duplicate
    assert all(a[i]["query"] == a[i + 1]["query"] and a[i]["z0"] != a[i + 1]["z0"] for i in range(0, 10, 2))


def test_expand_rollouts_keeps_pairs_together():
    from datasets import Dataset

    ds = synthesis.expand_rollouts(Dataset.from_dict({"query": ["a", "b"], "answer": ["x", "y"]}), 3)
    assert ds["query"] == ["a"] * 3 + ["b"] * 3 and ds["rollout"] == [0, 1, 2] * 2
    marked = synthesis.mark_duplicates(ds)
    assert marked["duplicate_of"] == [None] * 6
    one = synthesis.expand_rollouts(Dataset.from_dict({"query": ["a", "a"], "answer": ["x", "x"]}), 1)
    assert synthesis.mark_duplicates(one)["duplicate_of"] == [None, 0]
    with pytest.raises(ValueError, match="search_num_rollouts"):
        SearchConfig(search_num_rollouts=0)


def test_config_name_carries_the_key_hyperparameters():
    paper = GeneratorConfig(generator_model="Qwen/Qwen2.5-32B-Instruct", generator_backend="openai")
    name = synthesis.config_name(SearchConfig(), ScorerConfig(scorer_model="Qwen/Qwen3-8B-Base"), paper)
    assert name == "qwen3-8b-base-k2-s10-t0.25-gen-qwen2.5-32b-instruct"
    ablation = synthesis.config_name(
        SearchConfig(search_reflection=False, search_num_expansion=4), ScorerConfig(), GeneratorConfig()
    )
    assert ablation == "smollm2-135m-k4-s10-t0.25-noreflect"


def test_one_switch_for_the_no_reflection_ablation(tiny_tokenizer):
    off = SearchConfig(search_reflection=False)
    scorer_cfg = synthesis.follow_reflection_switch(off, ScorerConfig())
    assert scorer_cfg.scorer_reflection is False
    assert synthesis.follow_reflection_switch(SearchConfig(), ScorerConfig()).scorer_reflection is True
    with pytest.raises(ValueError, match="leave scorer_reflection unset"):
        synthesis.follow_reflection_switch(off, ScorerConfig(scorer_reflection=True))
    query = "Write a short story about a lighthouse keeper."
    asks = Scorer(tiny_tokenizer, ScorerConfig(), backend=lambda rows: []).context(query)
    silent = Scorer(tiny_tokenizer, scorer_cfg, backend=lambda rows: []).context(query)
    assert asks != silent and query in silent


@pytest.mark.hub
def test_push_to_hub(tmp_path, pairs_file, tiny_llama_dir):  # pragma: no cover - needs the Hub and a token
    """A real push: the rows load by config name, and the Hub's card is ours with the metadata push_to_hub wrote."""
    repo = os.environ.get("REER_HF_TEST_DATASET_REPO")
    if not repo:
        pytest.skip("set REER_HF_TEST_DATASET_REPO, HF_TOKEN and HF_HUB_OFFLINE=0 to push to a scratch dataset repo")
    with OpenAIServer(Writer()) as server:
        args, *rest = configs(tmp_path / "hub", pairs_file, tiny_llama_dir, scripted(server))
        args.push_to_hub, args.hub_dataset_id = True, repo
        summary = synthesis.synthesize(args, *rest, process_index=0, num_processes=1)
    from datasets import load_dataset
    from huggingface_hub import DatasetCard

    name = summary["hub_config_name"]
    pushed = load_dataset(repo, name, split="train")
    assert len(pushed) == summary["kept"]
    card = DatasetCard.load(repo, repo_type="dataset")
    assert card.data.pretty_name == args.dataset_pretty_name and f"**Config name:** `{name}`" in card.text
    assert name in [c["config_name"] for c in card.data.configs]
    infos = card.data.dataset_info if isinstance(card.data.dataset_info, list) else [card.data.dataset_info]
    assert any(i.get("config_name") == name and i["splits"][0]["num_examples"] == len(pushed) for i in infos)


@pytest.mark.slow
def test_accelerate_launch_two_processes_merge_like_one(tmp_path, pairs_file, tiny_llama_dir):
    """The recipe script, alone and under real data parallelism (two CPU processes, gloo): each process takes its
    pieces, the main one merges in input order, and both runs write the same dataset, summary, parquet and card."""
    accelerate = Path(sys.executable).with_name("accelerate")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCELERATE_")}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false", ACCELERATE_USE_CPU="true")
    with OpenAIServer(Writer()) as server:
        outputs = {}
        for name, launch in (
            ("one", [sys.executable]),
            ("two", [str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1"]),
        ):
            out = tmp_path / name
            cmd = [
                *launch,
                str(ROOT / "recipes" / "synthesize.py"),
                "--dataset_name", str(pairs_file),
                "--map_batch_size", "1",
                "--output_dir", str(out),
                "--generator_backend", "openai",
                "--generator_base_url", server.base_url,
                "--generator_model", "test-model",
                "--search_max_step", "2",
                "--search_min_rollout_tokens", "5",
                "--filter_min_thinking_tokens", "1",
                "--scorer_model", str(tiny_llama_dir),
                "--scorer_dtype", "fp32",
                "--scorer_clip", "false",
                "--scorer_max_length", "4096",
            ]  # fmt: skip
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT, env=env)
            assert proc.returncode == 0, proc.stderr[-3000:]
            if name == "two":  # both ranks searched: each shows its own progress bar
                assert "REER search [1/2]" in proc.stderr and "REER search [2/2]" in proc.stderr
            outputs[name] = load_from_disk(str(out / "dataset")).to_list()
            summary = json.loads((out / "summary.json").read_text())
            assert summary["rows"] == 5 and sum(summary["status"].values()) == 5
            assert (out / "README.md").is_file() and (out / "reer.parquet").is_file()
    assert len(outputs["two"]) == 5
    assert outputs["one"] == outputs["two"]
