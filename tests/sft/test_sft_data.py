"""The SFT data pipeline on crafted rows: shapes and their conversion to messages, the drops and their reasons, the
paper's ablations as transforms, the option checks and the dry-run report."""

from __future__ import annotations

import pytest
from sft_rows import (
    args_for,
    assistant_turns,
    deepwriting_rows,
    file_dataset,
    synthesis_rows,
    thinking_in,
    thinking_of,
)
from testing_utils import write_jsonl

from reer_hf.core.data import demo_pairs
from reer_hf.core.formats import ASSISTANT_FORMAT
from reer_hf.core.reflection import find_reflections, remove_reflections
from reer_hf.sft.config import SFTScriptArguments
from reer_hf.sft.data import build_sft_dataset, downsample_by_length
from reer_hf.sft.report import SFTDataReport, length_histogram
from reer_hf.sft.trajectories import detect_shape, to_trajectories

# ----------------------------------------------------------------------------------------------------------------
# Shapes and conversion


def test_detect_shape_accepts_the_known_shapes_and_names_the_columns_otherwise():
    assert detect_shape(["query", "answer", "z0", "z_star", "status", "messages"]) == "synthesis"
    assert detect_shape(["prompt", "solution", "category"]) == "prompt_solution"
    assert detect_shape(["question", "solution"]) == "question_solution"
    with pytest.raises(ValueError) as err:
        detect_shape(["title", "text"])
    assert "['text', 'title']" in str(err.value)
    assert "prompt, solution" in str(err.value) and "query, answer, z_star" in str(err.value)


def test_synthesis_output_keeps_ok_rows_and_takes_z_star_or_z0(tmp_path):
    ds = file_dataset(tmp_path, "syn", synthesis_rows())
    refined, drops = to_trajectories(ds, "synthesis", category_column="category")
    assert len(refined) == 7 and drops == {"status=dropped": 1}
    assert refined["thinking"][0] == synthesis_rows()[0]["z_star"]
    assert refined["category"][:2] == ["Artistic", "Education"]
    initial, _ = to_trajectories(ds, "synthesis", no_search=True)
    assert initial["thinking"] == [r["z0"] for r in synthesis_rows() if r["status"] == "ok"]
    everything, drops = to_trajectories(ds, "synthesis", keep_status=None)
    assert len(everything) == 8 and not drops


def test_rows_whose_thinking_never_closes_are_dropped_with_their_reason(tmp_path):
    def row(query: str, solution: str) -> dict:
        return {"prompt": [{"role": "user", "content": query}], "solution": solution}

    rows = [
        row("kept", "<think>\nplan\n</think>\n<answer>\npiece\n</answer>"),
        row("cut", "<think>\na plan cut by the token limit"),
        row("plain", "an answer without thinking"),
        row("no answer", "<think>\nplan\n</think>\n"),
    ]
    ds, drops = to_trajectories(file_dataset(tmp_path, "dw", rows), "prompt_solution")
    assert ds["query"] == ["kept"] and ds["thinking"] == ["plan"] and ds["answer"] == ["piece"]
    assert drops == {"unfinished_thinking": 1, "no_thinking": 1, "empty_answer": 1}
    chats = [
        {
            "messages": [
                {"role": "user", "content": r["prompt"][0]["content"]},
                {"role": "assistant", "content": r["solution"]},
            ]
        }
        for r in rows
    ]
    ds, drops = to_trajectories(file_dataset(tmp_path, "chats", chats), "messages")
    assert len(ds) == 1 and drops["unfinished_thinking"] == 1


def test_no_search_fails_clearly_on_data_with_the_refined_trajectory_only(tmp_path):
    path = write_jsonl(tmp_path / "dw.jsonl", deepwriting_rows())
    with pytest.raises(ValueError, match=r"z0.*only the refined one.*recipes/synthesize.py"):
        build_sft_dataset(args_for(path, ablation_no_search=True))


def test_deepwriting_shape_to_messages(tmp_path):
    path = write_jsonl(tmp_path / "dw.jsonl", deepwriting_rows())
    ds, report = build_sft_dataset(args_for(path))
    assert report.shape == "prompt_solution"
    assert [(s["step"], s["before"], s["after"]) for s in report.steps] == [
        ("load REER data", 9, 9),
        ("trajectories", 9, 8),
    ]
    assert "no_thinking" in report.steps[1]["detail"]
    first = ds[0]["messages"]
    assert [m["role"] for m in first] == ["system", "user", "assistant"]
    assert first[0]["content"] == "You are a helpful assistant."
    assert first[1]["content"] == demo_pairs()[0]["query"][:160]
    expected = ASSISTANT_FORMAT.format(thinking=thinking_of(0, 5), answer=demo_pairs()[0]["answer"][:200])
    assert first[2]["content"] == expected


def test_user_template_wraps_the_query(tmp_path):
    path = write_jsonl(tmp_path / "dw.jsonl", deepwriting_rows())
    ds, _ = build_sft_dataset(args_for(path, reer_user_template="inference", reer_system_prompt=None))
    user = ds[0]["messages"][0]
    assert user["role"] == "user" and user["content"].endswith(demo_pairs()[0]["query"][:160])
    assert "<think></think>" in user["content"]


def test_reer_max_rows_takes_the_first_rows(tmp_path):
    path = write_jsonl(tmp_path / "syn.jsonl", synthesis_rows())
    ds, report = build_sft_dataset(args_for(path, reer_max_rows=3))
    assert report.steps[1] == {"step": "reer_max_rows", "before": 8, "after": 3, "detail": ""}
    assert [m[1]["content"] for m in ds["messages"]] == [r["query"] for r in synthesis_rows()[:3]]


# ----------------------------------------------------------------------------------------------------------------
# Ablations on crafted rows


def test_exclude_categories_keeps_the_other_rows(tmp_path):
    path = write_jsonl(tmp_path / "syn.jsonl", synthesis_rows())
    ds, report = build_sft_dataset(args_for(path, ablation_exclude_categories=["artistic"]))  # case-insensitive
    kept = [r["query"] for r in synthesis_rows() if r["category"] == "Education" and r["status"] == "ok"]
    assert [m[1]["content"] for m in ds["messages"]] == kept and len(kept) == 3
    assert report.steps[-1] == {"step": "ablation_exclude_categories", "before": 7, "after": 3, "detail": "artistic"}
    assert report.categories == {"Artistic": 4, "Education": 3}
    no_column = write_jsonl(tmp_path / "dw.jsonl", deepwriting_rows())
    with pytest.raises(ValueError, match=r"'category' is not among \['prompt', 'solution'\]"):
        build_sft_dataset(args_for(no_column, ablation_exclude_categories=["Artistic"]))


def test_no_reflection_ablation_changes_only_the_thinking(tmp_path):
    path = write_jsonl(tmp_path / "syn.jsonl", synthesis_rows())
    base, _ = build_sft_dataset(args_for(path))
    ablated, report = build_sft_dataset(args_for(path, ablation_no_reflection=True))
    assert len(ablated) == len(base) == 7
    assert report.steps[-1]["step"] == "ablation_no_reflection" and report.steps[-1]["detail"] == "7 thinkings changed"
    for before, after in zip(base["messages"], ablated["messages"], strict=True):
        assert before[:2] == after[:2]  # system and user turns untouched
        old, new = thinking_in(before[2]["content"]), thinking_in(after[2]["content"])
        assert find_reflections(old, "en") and not find_reflections(new, "en")
        assert new == remove_reflections(old)
        assert new.startswith("The reader wants a scene. I think about the voice.\n\nThe plan is plan")
        assert new.endswith(".\n\nThe end.")
        # the answer (with its own "Hmm") is untouched
        assert before[2]["content"].split("</think>", 1)[1] == after[2]["content"].split("</think>", 1)[1]


def test_downsample_by_length_is_seeded_and_touches_one_side_only():
    lengths = [10, 500, 20, 600, 30, 700, 40, 800, 50, 900]
    kept, info = downsample_by_length(lengths, "fewer_long", cutoff=100, keep_fraction=0.4, seed=1)
    assert info == {"cutoff": 100, "sampled_side": 5, "kept_of_side": 2}
    assert [lengths[i] for i in kept if lengths[i] <= 100] == [10, 20, 30, 40, 50]
    assert len(kept) == 7 and kept == sorted(kept)
    assert downsample_by_length(lengths, "fewer_long", 100, 0.4, seed=1)[0] == kept
    samples = {tuple(downsample_by_length(lengths, "fewer_long", 100, 0.4, seed=s)[0]) for s in range(10)}
    assert len(samples) > 1  # the seed picks which long rows stay
    kept, info = downsample_by_length(lengths, "fewer_short", cutoff=None, keep_fraction=0.0)
    assert info["cutoff"] == 275 and [lengths[i] for i in kept] == [500, 600, 700, 800, 900]


def tiny_len(text: str, tokenizer) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def test_length_ablation_on_data_measures_thinking_tokens(tmp_path, tiny_tokenizer):
    path = write_jsonl(tmp_path / "syn.jsonl", synthesis_rows())
    base, base_report = build_sft_dataset(args_for(path), tiny_tokenizer, measure_lengths=True)
    lengths = base_report.thinking_tokens
    assert lengths == sorted(lengths) and len(set(lengths)) == 7  # the crafted rows grow with their index
    cutoff = lengths[3]
    ablation = {
        "ablation_length": "fewer_long",
        "ablation_length_cutoff": cutoff,
        "ablation_length_keep_fraction": 0.5,
    }
    ds, report = build_sft_dataset(args_for(path, **ablation), tiny_tokenizer)
    assert report.steps[-1]["before"] == 7 and report.steps[-1]["after"] == 6  # 4 short + round(0.5 * 3) long
    kept = [thinking_in(c) for c in assistant_turns(ds)]
    base_thinking = [thinking_in(c) for c in assistant_turns(base)]
    assert kept[:4] == base_thinking[:4] and set(kept) < set(base_thinking)  # every short row, in order
    assert report.thinking_tokens == [tiny_len(t, tiny_tokenizer) for t in kept]
    assert sum(n > cutoff for n in report.thinking_tokens) == 2
    again, _ = build_sft_dataset(args_for(path, **ablation), tiny_tokenizer)
    assert again["messages"] == ds["messages"]
    with pytest.raises(ValueError, match="tokenizer"):
        build_sft_dataset(args_for(path, ablation_length="fewer_short"))


# ----------------------------------------------------------------------------------------------------------------
# Options


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mix_dataset_name": "x", "mix_count": 3, "mix_ratio": 0.5}, "not both"),
        ({"mix_ratio": 1.0, "mix_dataset_name": "x"}, r"in \(0, 1\)"),
        ({"ablation_no_synthetic": True}, "set mix_dataset_name"),
        ({"ablation_no_synthetic": True, "mix_dataset_name": "x", "ablation_no_search": True}, "unset them"),
        ({"reer_assistant_format": "{answer}"}, "thinking"),
        ({"ablation_length_keep_fraction": 1.5}, r"\[0, 1\]"),
        ({"ablation_length": "fewer"}, "ablation_length must be one of none, fewer_long, fewer_short; got 'fewer'"),
        ({"dataset_name": None}, "dataset_name"),
    ],
)
def test_script_arguments_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SFTScriptArguments(**kwargs)


# ----------------------------------------------------------------------------------------------------------------
# The dry-run report


def test_length_histogram_table():
    table = length_histogram([100, 300, 300], [300, 700, 5000, 40000])
    lines = table.splitlines()
    assert lines[0].split("|")[1].strip() == "thinking"
    rows = {line.split("|")[0].strip(): [c.strip() for c in line.split("|")[1:3]] for line in lines[2:]}
    assert rows["0-255"] == ["1", "0"] and rows["256-511"] == ["2", "1"] and rows[">=32768"] == ["0", "1"]


def test_report_formats_steps_lengths_and_a_shortened_sample():
    report = SFTDataReport(shape="synthesis", thinking_tokens=[10, 20, 30], conversation_tokens=[100, 300])
    report.add("trajectories", 8, 7, "refined thinking")
    report.sample = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "x" * 5000}]
    text = report.format(max_length=200, sample_chars=300)
    assert "  trajectories  " in text and "8 ->       7  refined thinking" in text
    assert "thinking (REER rows) tokens: min 10, median 20, p90 30, max 30" in text
    assert "conversations over max_length=200: 1" in text
    assert "[... 4700 characters ...]" in text and "--- assistant ---" in text
    assert report.to_dict()["conversation_tokens"] == {
        "n": 2,
        "min": 100,
        "median": 200,
        "p90": 300,
        "max": 300,
        "mean": 200.0,
    }
