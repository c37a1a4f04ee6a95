"""The DeepWriter SFT recipe: data shapes and ablation transforms on crafted rows, the label mask of the chat templates
we ship, real training steps on a tiny model (parameters change, resume), the CLI (full, LoRA, ZeRO-3 on CPU), the
dry run, and the model card."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from reer_hf.core.data import demo_pairs
from reer_hf.core.formats import ASSISTANT_FORMAT, format_assistant, to_messages
from reer_hf.core.models import TEMPLATES_DIR
from reer_hf.core.reflection import find_reflections
from reer_hf.sft.config import SFTScriptArguments
from reer_hf.sft.data import (
    build_sft_dataset,
    detect_shape,
    downsample_by_length,
    length_histogram,
    load_table,
    mix_datasets,
    public_to_messages,
    remove_reflections,
    split_thinking,
    to_trajectories,
)

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes"
DEMO_RECIPE = RECIPES / "demo" / "sft.yaml"
CHATML = TEMPLATES_DIR / "chatml.jinja"

# ----------------------------------------------------------------------------------------------------------------
# Crafted data


def thinking_of(i: int, words: int) -> str:
    """A reflection-rich trajectory of about ``words`` words (so rows differ in length by design)."""
    body = " ".join(f"plan{i}-{k}" for k in range(words))
    return f"Hmm, the reader wants a scene. Let me think about the voice.\n\nThe plan is {body}.\n\nBut wait, the end."


def synthesis_rows() -> list[dict]:
    """Rows shaped like the output of recipes/synthesize.py: z0 and z_star, statuses, a category column."""
    rows = []
    for i, pair in enumerate(demo_pairs()):
        rows.append(
            {
                "query": pair["query"][:160],
                "answer": "Hmm, said the dog. " + pair["answer"][:200],  # a reflection word inside an answer stays
                "z0": f"Initial plan {i}. Wait, no, it is rough.",
                "z_star": thinking_of(i, 5 + 10 * i),
                "status": "ok" if i != 3 else "dropped",
                "category": "Artistic" if i % 2 == 0 else "Education",
                "language": "en",
            }
        )
    return rows


def deepwriting_rows() -> list[dict]:
    """Rows shaped like m-a-p/DeepWriting-20K: a prompt chat list and a solution with <think>...</think>."""
    rows = []
    for i, pair in enumerate(demo_pairs()):
        solution = f"<think>\n{thinking_of(i, 5 + 10 * i)}\n</think>\n<answer>\n{pair['answer'][:200]}\n</answer>"
        rows.append({"prompt": [{"role": "user", "content": pair["query"][:160]}], "solution": solution})
    rows.append({"prompt": [{"role": "user", "content": "No thinking here."}], "solution": "Just an answer."})
    return rows


def openthoughts_rows(n: int = 12) -> list[dict]:
    """Rows shaped like open-thoughts/OpenThoughts-114k: a system prompt and from/value conversations."""
    rows = []
    for i in range(n):
        reply = (
            f"<|begin_of_thought|>\n\nAdd {i} and {i}. Wait, check the sum.\n\n<|end_of_thought|>\n\n"
            f"<|begin_of_solution|>\n\n{2 * i}\n\n<|end_of_solution|>"
        )
        conversation = [{"from": "user", "value": f"What is {i} + {i}?"}, {"from": "assistant", "value": reply}]
        rows.append({"system": "Your role as an assistant involves ...", "conversations": conversation})
    rows.append({"system": "x", "conversations": [{"from": "user", "value": "unanswered"}]})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


def file_dataset(tmp_path: Path, name: str, rows: list[dict]):
    """``rows`` as a file-backed dataset, as the recipe loads them. (``Dataset.from_list`` cannot fingerprint its
    in-memory table on the GPU image's Python 3.12 stack: dill fails on pyarrow's MonthDayNano.)"""
    return load_table(str(write_jsonl(tmp_path / f"{name}.jsonl", rows)))


def assistant_turns(ds) -> list[str]:
    return [m[-1]["content"] for m in ds["messages"]]


def thinking_in(content: str) -> str:
    return content.split("<think>\n", 1)[1].split("\n</think>", 1)[0]


def args_for(path: Path, **kwargs) -> SFTScriptArguments:
    return SFTScriptArguments(dataset_name=str(path), **kwargs)


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


def test_split_thinking_and_answer_wrappers():
    assert split_thinking("<think>\nplan\n</think>\n<answer>\nthe piece\n</answer>") == ("plan", "the piece", True)
    assert split_thinking("<think>a</think>\n\nthe piece") == ("a", "the piece", True)
    assert split_thinking("plan only closed</think>piece") == ("plan only closed", "piece", True)
    opent = "<|begin_of_thought|>\nt\n<|end_of_thought|>\n<|begin_of_solution|>\n42\n<|end_of_solution|>"
    assert split_thinking(opent) == ("t", "42", True)
    assert split_thinking("no thinking at all") == (None, "no thinking at all", True)


def test_format_assistant_keeps_literal_placeholders_in_the_thinking():
    content = format_assistant(ASSISTANT_FORMAT, " f'{answer}' in code ", " 42 ")
    assert content == "<think>\nf'{answer}' in code\n</think>\n<answer>\n42\n</answer>"
    assert to_messages("q", "t", "a", None)[-1]["content"] == "<think>\nt\n</think>\n<answer>\na\n</answer>"


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


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hmm, maybe I should start with the reader.", "I should start with the reader."),
        ("Hmm... Alternatively, maybe I should open with a storm.", "I should open with a storm."),
        ("Wait, no, the opening comes first.", "The opening comes first."),
        ("But wait, that's a bit flat.", "That's a bit flat."),
        ("Let me think. The reader is young.", "The reader is young."),
        ("Let me think about the reader.", "I think about the reader."),
        ("Let me see how the ending lands.", "I check how the ending lands."),
        ("I could write a poem, or maybe a story.", "I could write a poem, or a story."),
        ("The ending works, hmm. Then the middle.", "The ending works. Then the middle."),
        ("The storm, hmm, might be too loud.", "The storm might be too loud."),
        ("Wait a second, the title is wrong.", "The title is wrong."),
        ("On second thought, it is quiet. Then again, quiet can bore.", "It is quiet. Quiet can bore."),
        ("Hold on, scratch that. The dog stays.", "The dog stays."),
        ("Actually, no, the dog goes.", "The dog goes."),
        ("A calm opening.\n\nHmm.\n\nA loud ending.", "A calm opening.\n\nA loud ending."),
        ("Hmm...\n\nThe plan.", "The plan."),
        ("嗯，也许可以从一个故事开始。", "可以从一个故事开始。"),
        ("让我想想，这篇文章的读者是谁？", "这篇文章的读者是谁？"),
        ("等等，不对，开头应该更短。", "开头应该更短。"),
        ("换个角度来看，读者更关心结局。", "读者更关心结局。"),
        ("这个开头，嗯，不够好。", "这个开头不够好。"),
    ],
)
def test_remove_reflections_rules(text, expected):
    out = remove_reflections(text)
    assert out == expected
    assert find_reflections(out, "en") == [] and find_reflections(out, "zh") == []


@pytest.mark.parametrize(
    "text",
    [
        "She has to sit and wait for news. Wait for the reader to catch up.",  # "wait" as a verb is content
        "苹果、香蕉等等都可以写成诗或者散文。",  # 等等 "etc." and 或者 "or" in running prose
        "The awaited waiter, the hmmingbird and the thematic core.\n\n  Indented, trailing spaces.  \n",
    ],
)
def test_remove_reflections_leaves_other_text_alone(text):
    assert remove_reflections(text) == text


def test_remove_reflections_changes_nothing_else_on_real_prose():
    """Phrases inserted into the bundled prose come out again, and the prose itself is byte for byte the same."""
    openers = ["Hmm, ", "But wait, ", "Let me think. ", "Alternatively, ", "On second thought, "]
    for pair in demo_pairs():
        prose = pair["answer"]
        assert remove_reflections(prose) == prose
        sentences = re.split(r"(?<=\.) (?=[A-Z])", prose)
        inserted = " ".join(
            openers[i % len(openers)] + s[0].lower() + s[1:] if i % 2 == 0 and not s.startswith("I ") else s
            for i, s in enumerate(sentences)
        )
        assert inserted != prose and " ".join(sentences) == prose
        assert remove_reflections(inserted) == prose


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


def test_length_ablation_on_data_measures_thinking_tokens(tmp_path, tiny_tokenizer):
    path = write_jsonl(tmp_path / "syn.jsonl", synthesis_rows())
    base, base_report = build_sft_dataset(args_for(path), tiny_tokenizer)
    lengths = base_report.thinking_tokens
    assert lengths == sorted(lengths) and len(set(lengths)) == 7  # the crafted rows grow with their index
    cutoff = lengths[3]
    ds, report = build_sft_dataset(
        args_for(path, ablation_length="fewer_long", ablation_length_cutoff=cutoff, ablation_length_keep_fraction=0.5),
        tiny_tokenizer,
    )
    assert report.steps[-1]["before"] == 7 and report.steps[-1]["after"] == 6  # 4 short + round(0.5 * 3) long
    kept = [thinking_in(c) for c in assistant_turns(ds)]
    base_thinking = [thinking_in(c) for c in assistant_turns(base)]
    assert kept[:4] == base_thinking[:4] and set(kept) < set(base_thinking)  # every short row, in order
    assert report.thinking_tokens == [tiny_len(t, tiny_tokenizer) for t in kept]
    assert sum(n > cutoff for n in report.thinking_tokens) == 2
    again, _ = build_sft_dataset(
        args_for(path, ablation_length="fewer_long", ablation_length_cutoff=cutoff, ablation_length_keep_fraction=0.5),
        tiny_tokenizer,
    )
    assert again["messages"] == ds["messages"]
    with pytest.raises(ValueError, match="tokenizer"):
        build_sft_dataset(args_for(path, ablation_length="fewer_short"))


def tiny_len(text: str, tokenizer) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


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


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mix_dataset_name": "x", "mix_count": 3, "mix_ratio": 0.5}, "not both"),
        ({"mix_ratio": 1.0, "mix_dataset_name": "x"}, r"in \(0, 1\)"),
        ({"ablation_no_synthetic": True}, "set mix_dataset_name"),
        ({"ablation_no_synthetic": True, "mix_dataset_name": "x", "ablation_no_search": True}, "unset them"),
        ({"reer_assistant_format": "{answer}"}, "thinking"),
        ({"ablation_length_keep_fraction": 1.5}, r"\[0, 1\]"),
        ({"dataset_name": None}, "dataset_name"),
    ],
)
def test_script_arguments_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SFTScriptArguments(**kwargs)


def test_length_histogram_table():
    table = length_histogram([100, 300, 300], [300, 700, 5000, 40000])
    lines = table.splitlines()
    assert lines[0].split("|")[1].strip() == "thinking"
    rows = {line.split("|")[0].strip(): [c.strip() for c in line.split("|")[1:3]] for line in lines[2:]}
    assert rows["0-255"] == ["1", "0"] and rows["256-511"] == ["2", "1"] and rows[">=32768"] == ["0", "1"]


# ----------------------------------------------------------------------------------------------------------------
# Label mask of the chat templates we ship, through TRL's own preprocessing


def sft_config(output_dir: Path, **kwargs):
    from trl import SFTConfig

    defaults = dict(
        output_dir=str(output_dir),
        use_cpu=True,
        bf16=False,
        report_to="none",
        assistant_only_loss=True,
        max_length=None,
        gradient_checkpointing=False,
        disable_tqdm=True,
        dataloader_pin_memory=False,
    )
    return SFTConfig(**{**defaults, **kwargs})


@pytest.mark.parametrize("which", ["tiny", "demo"])
def test_label_mask_trains_the_assistant_turn_only(which, tiny_llama_dir, tmp_path, request):
    """System and user tokens are -100; the <think> span, the answer and the end-of-turn token are trained."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTTrainer

    if which == "tiny":
        tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)  # its own ChatML template with generation markers
        template = None
    else:  # the demo model's tokenizer, with reer_hf/templates/chatml.jinja applied by TRL as the recipes do
        tokenizer = AutoTokenizer.from_pretrained(request.getfixturevalue("demo_model_dir"))
        tokenizer.chat_template = None
        template = str(CHATML)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)  # preprocessing never runs it
    assistant = format_assistant(ASSISTANT_FORMAT, "The reader is young.", "A short story.")
    messages = to_messages(
        "Write a story.",
        "The reader is young.",
        "A short story.",
        "You are a helpful writer.",
        ASSISTANT_FORMAT,
    )
    args = sft_config(tmp_path, chat_template_path=template, eos_token="<|im_end|>")
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=file_dataset(tmp_path, "chat", [{"messages": messages}]),
        processing_class=tokenizer,
    )
    row = trainer.train_dataset[0]
    ids, labels = row["input_ids"], row["labels"]
    trained = [i for i, label in enumerate(labels) if label != -100]
    assert trained == list(range(trained[0], trained[-1] + 1)), "one contiguous trained span"
    assert [labels[i] for i in trained] == [ids[i] for i in trained]
    decode = trainer.processing_class.decode
    assert decode([ids[i] for i in trained]) == assistant + "<|im_end|>"
    prefix = decode(ids[: trained[0]])
    assert prefix.endswith("<|im_start|>assistant\n") and "You are a helpful writer." in prefix
    assert "Write a story." in prefix
    assert ids[trained[-1]] == trainer.processing_class.convert_tokens_to_ids("<|im_end|>")
    assert all(label == -100 for label in labels[trained[-1] + 1 :])  # the newline after the turn


# ----------------------------------------------------------------------------------------------------------------
# Real training through the recipe's entry point


def load_recipe_module():
    spec = importlib.util.spec_from_file_location("recipe_sft", RECIPES / "sft.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse(cli: list[str]):
    return load_recipe_module().make_parser().parse_args_and_config(["--config", str(DEMO_RECIPE), *cli])


def tiny_cli(model_dir: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--model_name_or_path",
        str(model_dir),
        "--dataset_name",
        str(data),
        "--output_dir",
        str(out),
        "--learning_rate",
        "1e-3",
        "--max_length",
        "256",
        *extra,
    ]


def test_dry_run_prints_the_report_and_loads_no_model(tiny_llama_dir, tmp_path, capsys, monkeypatch):
    data = write_jsonl(tmp_path / "syn.jsonl", synthesis_rows())
    public = write_jsonl(tmp_path / "ot.jsonl", openthoughts_rows())
    out = tmp_path / "out"
    cli = tiny_cli(tiny_llama_dir, data, out, "--mix_dataset_name", str(public), "--mix_count", "3")
    script_args, training_args, model_args = parse([*cli, "--ablation_no_reflection", "--dry_run"])

    def no_model(*args, **kwargs):
        raise AssertionError("the dry run loaded a model")

    monkeypatch.setattr("transformers.AutoModelForCausalLM.from_pretrained", no_model)
    report = load_recipe_module().main(script_args, training_args, model_args)
    printed = capsys.readouterr().out
    assert "rows per step:" in printed and "ablation_no_reflection" in printed
    assert re.search(r"mix\s+19 ->\s+10\s+7 REER \+ 3 public", printed)
    assert "      tokens | thinking | conversation |" in printed
    assert "sample (row 0):" in printed and "--- assistant ---" in printed
    assert "conversations over max_length=256" in printed
    assert report["mix"]["public"] == 3 and not out.exists()


def saved_state(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


def test_two_steps_change_every_parameter_save_the_card_and_resume(tiny_llama_dir, tmp_path, caplog):
    data = write_jsonl(tmp_path / "dw.jsonl", deepwriting_rows())
    out = tmp_path / "out"
    recipe = load_recipe_module()
    cli = tiny_cli(tiny_llama_dir, data, out, "--max_steps", "2", "--save_strategy", "steps", "--save_steps", "1")
    script_args, training_args, model_args = parse(cli)
    script_args.reer_recipe_path = str(DEMO_RECIPE)
    metrics = recipe.main(script_args, training_args, model_args)
    assert metrics["train_samples"] == 8

    before, after = saved_state(tiny_llama_dir), saved_state(out)
    assert before.keys() == after.keys()
    unchanged = [name for name in before if torch.equal(before[name], after[name])]
    assert not unchanged, f"parameters not updated by two steps: {unchanged}"
    state = json.loads((out / "trainer_state.json").read_text())
    losses = [e["loss"] for e in state["log_history"] if "loss" in e]
    assert len(losses) == 2 and all(loss > 0 for loss in losses)

    card = (out / "README.md").read_text()
    assert DEMO_RECIPE.read_text().strip() in card  # the recipe, verbatim
    assert "| trajectories | 9 | 8 |" in card and "train_loss" in card and "- trl: " in card
    assert json.loads((out / "sft_data_report.json").read_text())["shape"] == "prompt_solution"
    saved_template = (out / "chat_template.jinja").read_text()
    assert "{% generation %}" in saved_template or "{%- generation %}" in saved_template

    # Started again with a higher max_steps (and another learning rate, so that a fresh start would log another
    # step-2 loss), the run resumes from checkpoint-2: the first two logged losses are the first run's, read back from
    # the checkpoint, and only step 3 is trained.
    assert (out / "checkpoint-2").is_dir()
    again = [*cli[:-6], "--max_steps", "3", "--save_strategy", "no", "--learning_rate", "3e-4"]
    with caplog.at_level(logging.INFO, logger="reer_hf.sft.train"):
        metrics = recipe.main(*parse(again))
    assert f"Resuming from {out / 'checkpoint-2'}" in caplog.text
    resumed = json.loads((out / "trainer_state.json").read_text())
    assert resumed["global_step"] == 3
    assert [e["loss"] for e in resumed["log_history"] if "loss" in e][:2] == losses


# ----------------------------------------------------------------------------------------------------------------
# Model card


def test_model_card_renders_with_the_recipe():
    from reer_hf.core.cards import render_model_card
    from reer_hf.sft.train import PAPER_RESULTS, framework_versions

    recipe = (RECIPES / "DeepWriter-8B" / "sft" / "config_no_search.yaml").read_text()
    card = render_model_card(
        base_model="Qwen/Qwen3-8B-Base",
        run={"name": "no iterative search", "lora": False, **PAPER_RESULTS["no iterative search"]},
        data={
            "dataset_name": "outputs/DeepWriting-20K/synthesis/reer.parquet",
            "mix_dataset_name": "open-thoughts/OpenThoughts-114k",
            "report": {"shape": "synthesis", "steps": [{"step": "mix", "before": 1, "after": 1, "detail": "a|b"}]},
            "assistant_format": ASSISTANT_FORMAT,
            "system_prompt": "You are a helpful assistant.",
        },
        hyperparameters={"learning_rate": 2e-5, "global_batch_size": 96},
        versions=framework_versions(),
        metrics={"train_loss": 1.23},
        log_history=[{"step": s, "epoch": s / 10, "loss": 2.0 - s / 100, "learning_rate": 2e-5} for s in range(1, 51)],
        recipe_yaml=recipe,
        recipe_path="recipes/DeepWriter-8B/sft/config_no_search.yaml",
        command="recipes/sft.py --config recipes/DeepWriter-8B/sft/config_no_search.yaml",
        repo_id="me/DeepWriter-8B-no-search",
    )
    text = str(card)
    assert recipe.strip() in text
    assert card.data.base_model == "Qwen/Qwen3-8B-Base"
    assert card.data.datasets == ["open-thoughts/OpenThoughts-114k"]  # a local path is no Hub dataset
    assert "| HelloBench B | 84.4 |" in text and "| WritingBench D | 65.6 |" in text
    assert "- transformers: " in text and "- trl: " in text and "@inproceedings{reer2026" in text
    assert "## Intended use and limits" in text and 'model_id = "me/DeepWriter-8B-no-search"' in text
    assert "| mix | 1 | 1 | a/b |" in text
    loss_rows = [line for line in text.splitlines() if re.match(r"\| \d+ \| [\d.]+ \| [\d.]+ \|", line)]
    assert 10 <= len(loss_rows) <= 21 and loss_rows[-1].startswith("| 50 |")


# ----------------------------------------------------------------------------------------------------------------
# CLI smoke: full, LoRA, and DeepSpeed ZeRO-3 under accelerate launch on CPU


def run_cli(cmd: list[str], timeout: int = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCELERATE_")}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"exit code {proc.returncode}\n{proc.stderr[-4000:]}"
    return proc


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["full", "lora"])
def test_sft_cli_on_a_tiny_model(variant, tiny_llama_dir, tmp_path):
    data = write_jsonl(tmp_path / "syn.jsonl", synthesis_rows())
    public = write_jsonl(tmp_path / "ot.jsonl", openthoughts_rows())
    out = tmp_path / "out"
    lora = ["--use_peft", "true", "--lora_r", "8", "--lora_alpha", "16", "--lora_target_modules", "all-linear"]
    cli = tiny_cli(
        tiny_llama_dir, data, out, "--max_steps", "2", "--mix_dataset_name", str(public), "--mix_count", "4"
    )
    run_cli(
        [sys.executable, "recipes/sft.py", "--config", str(DEMO_RECIPE), *cli, *(lora if variant == "lora" else [])]
    )
    weights = "adapter_model.safetensors" if variant == "lora" else "model.safetensors"
    assert (out / weights).is_file()
    card = (out / "README.md").read_text()
    assert DEMO_RECIPE.read_text().strip() in card and "single process" in card
    assert ("lora" in card.split("---")[1]) == (variant == "lora")  # the card's metadata tags
    report = json.loads((out / "sft_data_report.json").read_text())
    assert report["mix"] == {"reer": 7, "public": 4, "public_wanted": 4, "public_share": 0.3636}


@pytest.mark.slow
def test_sft_cli_under_accelerate_zero3_on_cpu(tiny_llama_dir, tmp_path):
    """One process, fp32, use_cpu false (ENVIRONMENT.md: ZeRO on CPU needs exactly this)."""
    pytest.importorskip("deepspeed")
    data = write_jsonl(tmp_path / "dw.jsonl", deepwriting_rows())
    out = tmp_path / "out"
    accelerate = str(Path(sys.executable).with_name("accelerate"))
    launch = [accelerate, "launch", "--config_file", "accelerate_configs/zero3.yaml"]
    overrides = ["--num_processes", "1", "--mixed_precision", "no"]
    cli = tiny_cli(tiny_llama_dir, data, out, "--max_steps", "2", "--use_cpu", "false")
    run_cli([*launch, *overrides, "recipes/sft.py", "--config", str(DEMO_RECIPE), *cli])
    assert (out / "model.safetensors").is_file()
    card = (out / "README.md").read_text()
    assert "DeepSpeed ZeRO-3 on 1 x " in card  # cpu here, cuda where a GPU is visible
    trained = saved_state(out)
    assert any(not torch.equal(trained[k], v) for k, v in saved_state(tiny_llama_dir).items())


# ----------------------------------------------------------------------------------------------------------------
# GPU: the demo SFT, 20 steps in bf16 under the ZeRO-3 config


def demo_data(tmp_path: Path) -> Path:
    """The search demo's output when it is there, else rows of the same shape built from the bundled pairs."""
    real = ROOT / "outputs" / "synthesis-demo" / "reer.parquet"
    if real.is_file():
        return real
    return write_jsonl(tmp_path / "demo.jsonl", synthesis_rows())


@pytest.mark.gpu
def test_demo_sft_zero3_bf16_on_gpu(tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    pytest.importorskip("deepspeed")
    model = os.environ.get("REER_SFT_GPU_MODEL", "builtin:smollm2-135m")  # a local copy where the Hub is unreachable
    out = tmp_path / "out"
    accelerate = str(Path(sys.executable).with_name("accelerate"))
    launch = [accelerate, "launch", "--config_file", "accelerate_configs/zero3.yaml", "--num_processes", "1"]
    cli = ["--model_name_or_path", model, "--dataset_name", str(demo_data(tmp_path)), "--output_dir", str(out)]
    gpu = ["--use_cpu", "false", "--bf16", "true", "--dtype", "bfloat16", "--max_steps", "20"]
    run_cli([*launch, "recipes/sft.py", "--config", str(DEMO_RECIPE), *cli, *gpu], timeout=900)
    state = json.loads((out / "trainer_state.json").read_text())
    losses = [e["loss"] for e in state["log_history"] if "loss" in e]
    assert state["global_step"] == 20 and len(losses) == 20
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5, losses
    card = (out / "README.md").read_text()
    assert "DeepSpeed ZeRO-3 on 1 x cuda, mixed precision bf16" in card
    assert (out / "model.safetensors").is_file()
