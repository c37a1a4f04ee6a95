"""The paper's mixture: public reasoning data (OpenThoughts' shape) in our output format, a seeded sample of it that
converts only the rows it takes, and the mix with the REER rows by count or ratio."""

from __future__ import annotations

import numpy as np
import pytest
from sft_rows import args_for, file_dataset, openthoughts_rows, synthesis_rows
from testing_utils import write_jsonl

import reer_hf.sft.mixture as mixture
from reer_hf.core.formats import ASSISTANT_FORMAT, to_messages
from reer_hf.sft.config import SFTScriptArguments
from reer_hf.sft.data import build_sft_dataset
from reer_hf.sft.mixture import mix_datasets, public_to_messages, public_wanted, sample_public


def test_public_openthoughts_rows_become_messages_in_our_format(tmp_path):
    ds = file_dataset(tmp_path, "ot", openthoughts_rows())
    msgs, drops = public_to_messages(ds, "You are a helpful assistant.", ASSISTANT_FORMAT)
    assert len(msgs) == 12 and drops == {"no_assistant_turn": 1}
    system, user, assistant = msgs[3]["messages"]
    assert system == {"role": "system", "content": "You are a helpful assistant."}
    assert user == {"role": "user", "content": "What is 3 + 3?"}
    assert assistant["content"] == "<think>\nAdd 3 and 3. Wait, check the sum.\n</think>\n<answer>\n6\n</answer>"
    with pytest.raises(ValueError, match=r"public reasoning data .* its columns are \['text'\]"):
        public_to_messages(file_dataset(tmp_path, "text", [{"text": "x"}]), None, ASSISTANT_FORMAT)


def test_public_chats_keep_plain_replies_and_drop_unfinished_thinking(tmp_path):
    def chat(reply: str) -> dict:
        return {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": reply}]}

    rows = [chat("a plain reply"), chat("<think>\nt\n</think>\na"), chat("<|begin_of_thought|>\nnever closed")]
    msgs, drops = public_to_messages(file_dataset(tmp_path, "chats", rows), None, ASSISTANT_FORMAT)
    assert drops == {"unfinished_thinking": 1}
    assert [m[-1]["content"] for m in msgs["messages"]] == ["a plain reply", to_messages("q", "t", "a")[-1]["content"]]


def test_public_data_of_a_reer_shape_goes_through_the_trajectories(tmp_path):
    rows = [{"question": "q1", "solution": "<think>t</think>a"}, {"question": "q2", "solution": "<think>cut"}]
    msgs, drops = public_to_messages(file_dataset(tmp_path, "qs", rows), None, ASSISTANT_FORMAT)
    assert msgs["messages"] == [to_messages("q1", "t", "a")] and drops == {"unfinished_thinking": 1}


def question_rows(n: int, unanswered_every: int = 3) -> list[dict]:
    """OpenThoughts-shaped rows ``What is i + i?``; every ``unanswered_every``-th one has no assistant turn."""
    rows = []
    for i in range(n):
        turns = [{"from": "user", "value": f"What is {i} + {i}?"}]
        if i % unanswered_every:
            turns.append({"from": "assistant", "value": f"<think>add</think>{2 * i}"})
        rows.append({"conversations": turns})
    return rows


def question_numbers(ds) -> list[int]:
    return [int(m[0]["content"].split()[2]) for m in ds["messages"]]


def count_converted_rows(monkeypatch) -> list[int]:
    """Count the rows the chat converter sees."""
    seen: list[int] = []
    convert = mixture._chat_batch

    def counted(batch, column, *args, **kwargs):
        seen.append(len(batch[column]))
        return convert(batch, column, *args, **kwargs)

    monkeypatch.setattr(mixture, "_chat_batch", counted)
    return seen


def test_sample_public_converts_only_the_sample_and_tops_up_to_the_count(monkeypatch, tmp_path):
    raw = file_dataset(tmp_path, "ot", question_rows(60))  # 40 answered rows
    seen = count_converted_rows(monkeypatch)
    public, info = sample_public(raw, 20, 7, None, ASSISTANT_FORMAT)
    order = [int(i) for i in np.random.default_rng(7).permutation(60)]
    answered = [i for i in order if i % 3]
    assert question_numbers(public) == answered[:20]  # the first 20 answered rows of the seeded order
    assert 20 < info["converted"] == sum(seen) < 60  # a top-up, and no map over the whole table
    unanswered = sum(1 for i in order[: info["converted"]] if i % 3 == 0)
    assert info["kept"] == 20 and info["dropped"] == {"no_assistant_turn": unanswered}
    again, _ = sample_public(raw, 20, 7, None, ASSISTANT_FORMAT)
    assert again["messages"] == public["messages"]
    assert question_numbers(sample_public(raw, 20, 8, None, ASSISTANT_FORMAT)[0]) != answered[:20]


def test_sample_public_stops_when_the_data_runs_out(tmp_path):
    raw = file_dataset(tmp_path, "ot", question_rows(30))  # 20 answered rows
    public, info = sample_public(raw, 25, 0, None, ASSISTANT_FORMAT)
    assert len(public) == 20 and info == {
        "rows": 30,
        "wanted": 25,
        "converted": 30,
        "dropped": {"no_assistant_turn": 10},
        "kept": 20,
    }
    everything, info = sample_public(raw, None, 0, None, ASSISTANT_FORMAT)
    assert question_numbers(everything) == [i for i in range(30) if i % 3] and info["converted"] == 30
    with pytest.raises(ValueError, match="at least 1"):
        sample_public(raw, 0, 0, None, ASSISTANT_FORMAT)


def test_public_wanted_and_the_mix(tmp_path):
    assert public_wanted(6, count=4) == 4 and public_wanted(6, ratio=0.25) == 2 and public_wanted(6) is None
    reer = file_dataset(tmp_path, "reer", [{"messages": to_messages(f"q{i}", "t", "a")} for i in range(6)])
    public = file_dataset(tmp_path, "public", [{"messages": to_messages(f"p{i}", "t", "a")} for i in range(2)])
    mixed, info = mix_datasets(reer, public, 2)
    assert list(mixed["messages"]) == list(reer["messages"]) + list(public["messages"])
    assert info == {"reer": 6, "public": 2, "public_wanted": 2, "public_share": 0.25}
    assert mix_datasets(reer, public, 5)[1]["public_wanted"] == 5 and mix_datasets(reer, public)[1]["public"] == 2
    only, info = mix_datasets(None, public)
    assert len(only) == 2 and info["reer"] == 0


def test_no_synthetic_data_trains_on_the_public_rows_only(tmp_path):
    public = write_jsonl(tmp_path / "ot.jsonl", openthoughts_rows())
    ds, report = build_sft_dataset(
        SFTScriptArguments(ablation_no_synthetic=True, mix_dataset_name=str(public), mix_count=5)
    )
    assert len(ds) == 5 and report.shape is None and report.mix["reer"] == 0
    assert all(m[1]["content"].startswith("What is") for m in ds["messages"])


def test_full_mix_counts(tmp_path):
    reer = write_jsonl(tmp_path / "syn.jsonl", synthesis_rows())
    public = write_jsonl(tmp_path / "ot.jsonl", openthoughts_rows())
    ds, report = build_sft_dataset(args_for(reer, mix_dataset_name=str(public), mix_ratio=0.5))
    assert len(ds) == 14 and report.mix == {"reer": 7, "public": 7, "public_wanted": 7, "public_share": 0.5}
    steps = [(s["step"], s["before"], s["after"]) for s in report.steps]
    assert steps == [
        ("load REER data", 8, 8),
        ("trajectories", 8, 7),
        ("load public data", 13, 13),
        ("public rows", 13, 7),
        ("mix", 14, 14),
    ]
    assert report.steps[3]["detail"].startswith("seeded sample of 7 (seed 42): ")


def test_a_ratio_that_asks_for_no_public_row_trains_on_the_reer_rows(tmp_path):
    reer = write_jsonl(tmp_path / "syn.jsonl", synthesis_rows())
    public = write_jsonl(tmp_path / "ot.jsonl", openthoughts_rows())
    ds, report = build_sft_dataset(args_for(reer, mix_dataset_name=str(public), mix_ratio=0.05))
    assert len(ds) == 7 and report.mix == {"reer": 7, "public": 0, "public_wanted": 0, "public_share": 0.0}
    assert report.steps[-1] == {
        "step": "public rows",
        "before": 13,
        "after": 0,
        "detail": "mix_ratio=0.05 of 7 REER rows is none",
    }
