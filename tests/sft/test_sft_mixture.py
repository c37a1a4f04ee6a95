"""The paper's mixture: public reasoning data (OpenThoughts' shape) in our output format, and the seeded mix with the
REER rows by count or ratio."""

from __future__ import annotations

import pytest
from sft_rows import args_for, file_dataset, openthoughts_rows, synthesis_rows
from testing_utils import write_jsonl

from reer_hf.core.formats import ASSISTANT_FORMAT, to_messages
from reer_hf.sft.config import SFTScriptArguments
from reer_hf.sft.data import build_sft_dataset
from reer_hf.sft.mixture import mix_datasets, public_to_messages


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


def test_mix_by_count_and_ratio_is_seeded(tmp_path):
    reer = file_dataset(tmp_path, "reer", [{"messages": to_messages(f"q{i}", "t", "a")} for i in range(6)])
    public = file_dataset(tmp_path, "public", [{"messages": to_messages(f"p{i}", "t", "a")} for i in range(30)])
    mixed, info = mix_datasets(reer, public, count=4, seed=0)
    assert len(mixed) == 10 and info["public"] == 4 and mixed["messages"][:6] == reer["messages"]
    assert mix_datasets(reer, public, count=4, seed=0)[0]["messages"] == mixed["messages"]
    assert mix_datasets(reer, public, count=4, seed=1)[0]["messages"] != mixed["messages"]
    mixed, info = mix_datasets(reer, public, ratio=0.25, seed=0)  # 2 public rows make a quarter of 8
    assert (len(mixed), info["public"], info["public_share"]) == (8, 2, 0.25)
    mixed, info = mix_datasets(reer, public, count=100)
    assert (info["public"], info["public_wanted"]) == (30, 100)
    only, info = mix_datasets(None, public, count=5)
    assert len(only) == 5 and info["reer"] == 0


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
    assert [s["step"] for s in report.steps] == ["load REER data", "trajectories", "load public data", "mix"]
