"""The SFT data of a launch: global rank 0 converts it once and sends its cache entry's path to the other ranks,
which load that entry without loading the sources, or build their own when they cannot read it (another node's
disk). In-process tests stand in for the other ranks; a two-process gloo launch on CPU runs the real thing."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys

import pytest
from sft_rows import args_for, synthesis_rows
from testing_utils import REPO_ROOT, write_jsonl

import reer_hf.sft.data as sft_data
from reer_hf.sft.data import build_sft_dataset, build_sft_dataset_on_ranks
from reer_hf.sft.end_of_turn import Truncation


class FakeTrainingArgs:
    """The parts of ``TrainingArguments`` the data step uses, for one rank of a launch whose waits are over."""

    max_length, truncation_mode, packing, packing_strategy, assistant_only_loss = (
        None,
        "keep_start",
        False,
        "bfd",
        True,
    )

    def __init__(self, process_index: int):
        self.process_index = process_index
        self.waits: list[bool] = []

    @contextlib.contextmanager
    def main_process_first(self, local: bool = True, desc: str = "work"):
        self.waits.append(local)
        yield


#: What build_sft_dataset_on_ranks gets from the fake's SFTConfig fields.
TRUNCATION = Truncation.of(FakeTrainingArgs(0))


def record(monkeypatch, *names: str) -> list[str]:
    """Wrap the functions ``names`` of ``reer_hf.sft.data`` to list their calls."""
    calls: list[str] = []
    for name in names:
        original = getattr(sft_data, name)

        def wrapped(*args, _original=original, _name=name, **kwargs):
            calls.append(_name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(sft_data, name, wrapped)
    return calls


@pytest.fixture
def cached_args(tmp_path):
    return args_for(write_jsonl(tmp_path / "syn.jsonl", synthesis_rows()), reer_data_cache_dir=str(tmp_path / "cache"))


def test_one_process_builds_as_build_sft_dataset(monkeypatch, tmp_path, tiny_tokenizer, cached_args):
    calls = record(monkeypatch, "_load_sources", "_build", "_broadcast_entry")
    training_args = FakeTrainingArgs(0)
    dataset, report = build_sft_dataset_on_ranks(cached_args, tiny_tokenizer, training_args)
    assert calls == ["_load_sources", "_build", "_broadcast_entry"] and training_args.waits == [False, True]
    same, same_report = build_sft_dataset(
        cached_args, tiny_tokenizer, cache_dir=tmp_path / "cache", truncation=TRUNCATION
    )
    assert dataset["messages"] == same["messages"] and report.state() == same_report.state()
    assert len(report.thinking_tokens) == 7
    no_cache = args_for(cached_args.dataset_name, reer_data_cache=False)
    dataset, report = build_sft_dataset_on_ranks(no_cache, tiny_tokenizer, FakeTrainingArgs(0))
    assert dataset["messages"] == same["messages"] and len(report.thinking_tokens) == 7  # rank 0 measures


def test_a_rank_that_reads_rank_0s_entry_loads_no_source(monkeypatch, tmp_path, tiny_tokenizer, cached_args):
    built, report = build_sft_dataset(cached_args, tiny_tokenizer, cache_dir=tmp_path / "cache", truncation=TRUNCATION)
    entry = next((tmp_path / "cache").iterdir())
    monkeypatch.setattr(sft_data, "_broadcast_entry", lambda _: entry)
    calls = record(monkeypatch, "_load_sources", "_build", "_load_entry")
    dataset, loaded_report = build_sft_dataset_on_ranks(cached_args, tiny_tokenizer, FakeTrainingArgs(1))
    assert calls == ["_load_entry"]
    assert dataset["messages"] == built["messages"] and loaded_report.state() == report.state()


def test_a_rank_that_cannot_read_it_builds_its_own(monkeypatch, tmp_path, tiny_tokenizer, cached_args):
    """Rank 0's entry on another node's disk, or none (its save failed): the keyed lookup, else a build, here."""
    built, _ = build_sft_dataset(cached_args, tiny_tokenizer, cache_dir=tmp_path / "cache", truncation=TRUNCATION)
    for elsewhere in (tmp_path / "other-node" / "cache" / "0123abcd", None):
        monkeypatch.setattr(sft_data, "_broadcast_entry", lambda _, e=elsewhere: e)
        calls = record(monkeypatch, "_load_sources", "_build")
        dataset, _ = build_sft_dataset_on_ranks(cached_args, tiny_tokenizer, FakeTrainingArgs(1))
        assert calls == ["_load_sources"] and dataset["messages"] == built["messages"]  # a hit of its own cache
        monkeypatch.undo()


def test_rank_0s_failure_reaches_every_rank(monkeypatch, tmp_path, tiny_tokenizer):
    """Rank 0 raises after the broadcast, inside the local wait, so no rank waits for it forever."""
    args = args_for(write_jsonl(tmp_path / "syn.jsonl", synthesis_rows()), reer_keep_status="none-such")
    broadcasts = record(monkeypatch, "_broadcast_entry")
    training_args = FakeTrainingArgs(0)
    with pytest.raises(ValueError, match="No REER rows left"):
        build_sft_dataset_on_ranks(args, tiny_tokenizer, training_args)
    assert broadcasts == ["_broadcast_entry"] and training_args.waits == [False, True]


# ----------------------------------------------------------------------------------------------------------------
# A two-process launch (torch.distributed, gloo on CPU)

LAUNCHED = """
import json, os, sys
from pathlib import Path

import torch.distributed as dist
from sft_rows import args_for
from trl import ModelConfig, SFTConfig

import reer_hf.sft.data as sft_data
from reer_hf.sft import train

tmp = Path(sys.argv[1])
calls = []
for name in ("_load_sources", "_build", "_load_entry"):
    def wrapped(*args, _original=getattr(sft_data, name), _name=name, **kwargs):
        calls.append(_name)
        return _original(*args, **kwargs)
    setattr(sft_data, name, wrapped)
rows = []
step = train.build_sft_dataset_on_ranks
def recorded(*args, **kwargs):
    dataset, report = step(*args, **kwargs)
    rows.extend(dataset["messages"])
    return dataset, report
train.build_sft_dataset_on_ranks = recorded

script_args = args_for(tmp / "syn.jsonl", dry_run=True, reer_data_cache_dir=str(tmp / "cache"))
training_args = SFTConfig(output_dir=str(tmp / "out"), use_cpu=True, report_to="none", max_length=1024)
report = train.run_sft(script_args, training_args, ModelConfig(model_name_or_path=str(tmp / "tokenizer")))
world = dist.get_world_size() if dist.is_initialized() else 1
out = {"calls": calls, "rows": rows, "report": report, "world": world}
(tmp / f"rank{os.environ['RANK']}.json").write_text(json.dumps(out))
"""


@pytest.mark.slow
def test_two_ranks_convert_once_and_train_on_the_same_rows(tmp_path, tiny_tokenizer):
    write_jsonl(tmp_path / "syn.jsonl", synthesis_rows())
    tiny_tokenizer.save_pretrained(tmp_path / "tokenizer")
    script = tmp_path / "launched.py"
    script.write_text(LAUNCHED, encoding="utf-8")
    tests = REPO_ROOT / "tests"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tests / "sft"), str(tests), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
        "HF_DATASETS_CACHE": str(tmp_path / "datasets-cache"),
    }
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script)]
    try:  # a rank stuck on a collective must fail the test, not hang it
        done = subprocess.run(
            [*command, str(tmp_path)], env=env, capture_output=True, text=True, timeout=150, cwd=tmp_path
        )
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"the launch hung:\n{err.stdout}\n{err.stderr}")
    assert done.returncode == 0, done.stderr[-4000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world"] for r in ranks] == [2, 2]
    assert ranks[0]["calls"].count("_build") == 1 and ranks[0]["calls"].count("_load_sources") == 1
    assert ranks[1]["calls"] == ["_load_entry"]  # rank 0's entry, read straight from the shared folder
    assert ranks[0]["rows"] == ranks[1]["rows"] and len(ranks[0]["rows"]) == 7
    reports = [r["report"] for r in ranks]
    # the saved report, thinking and conversation lengths included (the end-of-turn step measured the latter)
    assert reports[0] == reports[1] and reports[0]["thinking_tokens"]["n"] == 7
    assert reports[0]["conversation_tokens"]["n"] == 7 and reports[0]["end_of_turn"]["cut"] == 0
    assert len(list((tmp_path / "cache").iterdir())) == 1
