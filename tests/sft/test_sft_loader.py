"""Loading the SFT data as the real run meets it: chats stored as JSON strings, data_files and revisions passed to
``load_dataset``, ``hf://`` paths, a clear error when no row survives, and the data cache the ranks share."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pytest
from sft_rows import args_for, deepwriting_rows, file_dataset, openthoughts_rows, synthesis_rows, write_parquet
from testing_utils import write_jsonl

import reer_hf.sft.data as sft_data
from reer_hf.core.formats import ASSISTANT_FORMAT, to_messages
from reer_hf.sft.config import SFTScriptArguments
from reer_hf.sft.data import build_sft_dataset, data_cache_dir
from reer_hf.sft.mixture import public_to_messages
from reer_hf.sft.trajectories import as_chat, load_table

# ----------------------------------------------------------------------------------------------------------------
# Chats stored as JSON strings


def json_prompt_rows() -> list[dict]:
    """DeepWriting-20K as published: the prompt column holds the JSON text of the chat list."""
    return [
        {
            "prompt": json.dumps([{"role": "user", "content": f"Write poem {i} about the sea."}]),
            "solution": f"<think>\nplan {i}\n</think>\nPoem {i}.",
        }
        for i in range(3)
    ]


def test_a_json_string_prompt_becomes_its_user_turn(tmp_path):
    path = write_parquet(tmp_path / "deepwriting20k.parquet", json_prompt_rows())
    ds, report = build_sft_dataset(args_for(path, reer_system_prompt=None))
    assert report.shape == "prompt_solution" and len(ds) == 3
    assert ds[1]["messages"] == to_messages("Write poem 1 about the sea.", "plan 1", "Poem 1.")


def test_only_a_json_chat_list_is_decoded():
    chat = [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}]
    assert as_chat(json.dumps(chat)) == chat
    assert as_chat(" " + json.dumps([{"from": "human", "value": "q"}])) == [{"from": "human", "value": "q"}]
    for text in ("[Draft] a poem about the sea", "[1, 2]", "[]", '[{"role": "user"}]', "[not json", "plain"):
        assert as_chat(text) is None, text


def test_text_that_merely_starts_with_a_bracket_stays_the_query(tmp_path):
    rows = [{"prompt": "[Draft] Write a poem.", "solution": "<think>t</think>a"}, *json_prompt_rows()[:1]]
    ds, _ = build_sft_dataset(args_for(write_parquet(tmp_path / "dw.parquet", rows), reer_system_prompt=None))
    assert [m[0]["content"] for m in ds["messages"]] == ["[Draft] Write a poem.", "Write poem 0 about the sea."]


def test_json_string_chats_of_the_messages_and_conversations_shapes(tmp_path):
    reer = [
        {
            "messages": json.dumps(
                [{"role": "user", "content": "q"}, {"role": "assistant", "content": "<think>t</think>a"}]
            )
        },
        {"messages": "not a chat"},
    ]
    ds, report = build_sft_dataset(args_for(write_parquet(tmp_path / "chats.parquet", reer), reer_system_prompt=None))
    assert ds["messages"] == [to_messages("q", "t", "a")]
    assert report.steps[-1]["detail"] == "refined thinking; dropped {'not_a_chat': 1}"
    public = [{**r, "conversations": json.dumps(r["conversations"])} for r in openthoughts_rows(3)]
    msgs, drops = public_to_messages(file_dataset(tmp_path, "ot", public), None, ASSISTANT_FORMAT)
    assert len(msgs) == 3 and drops == {"no_assistant_turn": 1}  # the unanswered row
    assert msgs[2]["messages"][0] == {"role": "user", "content": "What is 2 + 2?"}
    assert msgs[2]["messages"][1]["content"].endswith("<answer>\n4\n</answer>")


# ----------------------------------------------------------------------------------------------------------------
# data_files, revision and hf:// paths


def test_data_files_pick_the_files_of_a_local_folder(tmp_path):
    folder = tmp_path / "repo"
    folder.mkdir()
    rows = json_prompt_rows()
    write_parquet(folder / "part-0.parquet", rows[:1])
    write_parquet(folder / "part-1.parquet", rows[1:2])
    write_parquet(folder / "other.parquet", rows[2:])
    args = SFTScriptArguments(dataset_name=str(folder), dataset_data_files=["part-*.parquet"], reer_system_prompt=None)
    ds, report = build_sft_dataset(args)
    assert sorted(m[0]["content"] for m in ds["messages"]) == [
        "Write poem 0 about the sea.",
        "Write poem 1 about the sea.",
    ]
    assert report.steps[0]["detail"] == f"{folder} [part-*.parquet]"
    assert SFTScriptArguments(dataset_data_files="a.parquet").dataset_data_files == ["a.parquet"]  # a YAML scalar


def record_load_dataset(monkeypatch, tmp_path) -> list[tuple]:
    """Replace ``datasets.load_dataset`` by a recorder that answers with local rows of the asked kind."""
    reer, public = file_dataset(tmp_path, "dw", deepwriting_rows()), file_dataset(tmp_path, "ot", openthoughts_rows())
    calls: list[tuple] = []

    def fake(path, name=None, **kwargs):
        calls.append((path, name, kwargs))
        return public if "OpenThoughts" in path or "ot." in str(kwargs.get("data_files")) else reer

    monkeypatch.setattr(datasets, "load_dataset", fake)
    return calls


def test_revision_and_data_files_reach_load_dataset(monkeypatch, tmp_path):
    calls = record_load_dataset(monkeypatch, tmp_path)
    args = SFTScriptArguments(
        dataset_data_files=["deepwriting20k.parquet"],
        dataset_revision="4f2c1e0",
        mix_dataset_name="open-thoughts/OpenThoughts-114k",
        mix_dataset_data_files=["data/train-0000*.parquet"],
        mix_dataset_revision="v2",
        mix_count=4,
    )
    ds, report = build_sft_dataset(args)
    assert calls == [
        (
            "m-a-p/DeepWriting-20K",
            None,
            {"data_files": {"train": ["deepwriting20k.parquet"]}, "revision": "4f2c1e0", "split": "train"},
        ),
        (
            "open-thoughts/OpenThoughts-114k",
            None,
            {"data_files": {"train": ["data/train-0000*.parquet"]}, "revision": "v2", "split": "train"},
        ),
    ]
    assert len(ds) == 8 + 4 and report.steps[0]["detail"] == "m-a-p/DeepWriting-20K@4f2c1e0 [deepwriting20k.parquet]"


@pytest.mark.parametrize(
    ("source", "revision", "builder", "data_files"),
    [
        ("hf://datasets/m-a-p/DeepWriting-20K/deepwriting20k.parquet", None, "parquet", None),
        (
            "hf://datasets/m-a-p/DeepWriting-20K/deepwriting20k.parquet",
            "v1.0",
            "parquet",
            "hf://datasets/m-a-p/DeepWriting-20K@v1.0/deepwriting20k.parquet",
        ),
        (
            "hf://datasets/org/data/sub/part-*.jsonl",
            "refs/pr/3",
            "json",
            "hf://datasets/org/data@refs%2Fpr%2F3/sub/part-*.jsonl",
        ),
        ("hf://datasets/org/data@main/rows.json", None, "json", None),
    ],
)
def test_hf_paths_go_to_the_file_builder(monkeypatch, tmp_path, source, revision, builder, data_files):
    calls = record_load_dataset(monkeypatch, tmp_path)
    load_table(source, revision=revision)
    assert calls == [(builder, None, {"data_files": data_files or source, "split": "train"})]


def test_sources_refuse_options_they_would_ignore(monkeypatch, tmp_path):
    record_load_dataset(monkeypatch, tmp_path)
    with pytest.raises(ValueError, match=r"must name a \.parquet, \.jsonl or \.json file"):
        load_table("hf://datasets/m-a-p/DeepWriting-20K")
    with pytest.raises(ValueError, match="unset data_files"):
        load_table("hf://datasets/o/d/x.parquet", data_files=["y.parquet"])
    with pytest.raises(ValueError, match="already names a revision"):
        load_table("hf://datasets/o/d@main/x.parquet", revision="v2")
    local = write_jsonl(tmp_path / "dw.jsonl", deepwriting_rows())
    with pytest.raises(ValueError, match="a single file, which would ignore revision: unset it"):
        load_table(str(local), revision="v2")


# ----------------------------------------------------------------------------------------------------------------
# No surviving rows


def test_no_surviving_reer_row_names_every_step(tmp_path):
    rows = [{"prompt": json.dumps([{"role": "user", "content": f"q{i}"}]), "solution": "no markers"} for i in range(3)]
    rows.append({"prompt": "q", "solution": "<think>cut by the limit"})
    with pytest.raises(ValueError) as err:
        build_sft_dataset(args_for(write_parquet(tmp_path / "dw.parquet", rows)))
    message = str(err.value)
    assert message.startswith("No REER rows left after 'trajectories'. Rows per step:")
    assert f"  load REER data: 4 -> 4 ({tmp_path / 'dw.parquet'})" in message
    assert "  trajectories: 4 -> 0 (refined thinking; dropped {'no_thinking': 3, 'unfinished_thinking': 1})" in message
    syn = write_jsonl(tmp_path / "syn.jsonl", synthesis_rows())
    with pytest.raises(
        ValueError, match=r"after 'ablation_exclude_categories'(.|\n)*: 7 -> 0 \(artistic, education\)"
    ):
        build_sft_dataset(args_for(syn, ablation_exclude_categories=["artistic", "education"]))


def test_no_surviving_public_row_names_every_step(tmp_path):
    reer = write_jsonl(tmp_path / "dw.jsonl", deepwriting_rows())
    public = write_jsonl(tmp_path / "ot.jsonl", [r for r in openthoughts_rows() if len(r["conversations"]) == 1] * 3)
    with pytest.raises(ValueError) as err:
        build_sft_dataset(args_for(reer, mix_dataset_name=str(public), mix_count=2))
    message = str(err.value)
    assert message.startswith("No public rows left after 'public rows'.")
    assert "  trajectories: 9 -> 8 " in message and "  load public data: 3 -> 3 " in message
    assert "  public rows: 3 -> 0 (seeded sample of 2 (seed 42): 3 rows converted, " in message
    assert "dropped {'no_assistant_turn': 3})" in message


# ----------------------------------------------------------------------------------------------------------------
# Thinking lengths and the data cache


def count_builds(monkeypatch) -> list[int]:
    calls: list[int] = []
    build = sft_data._build

    def counted(*args, **kwargs):
        calls.append(1)
        return build(*args, **kwargs)

    monkeypatch.setattr(sft_data, "_build", counted)
    return calls


def test_thinking_is_tokenised_only_when_needed(monkeypatch, tmp_path, tiny_tokenizer):
    path = write_jsonl(tmp_path / "syn.jsonl", synthesis_rows())

    def refuse(*args, **kwargs):
        raise AssertionError("thinking tokenised")

    plain, report = build_sft_dataset(args_for(path), tiny_tokenizer)
    assert report.thinking_tokens == []
    measured, report = build_sft_dataset(args_for(path), tiny_tokenizer, measure_lengths=True)
    assert len(report.thinking_tokens) == 7 and measured["messages"] == plain["messages"]
    monkeypatch.setattr(sft_data, "_thinking_tokens_batch", refuse)
    build_sft_dataset(args_for(path), tiny_tokenizer)


def test_the_cache_serves_a_second_build_and_misses_on_any_change(monkeypatch, tmp_path, tiny_tokenizer):
    reer = write_jsonl(tmp_path / "syn.jsonl", synthesis_rows())
    public = write_jsonl(tmp_path / "ot.jsonl", openthoughts_rows())
    cache = tmp_path / "cache"
    builds = count_builds(monkeypatch)
    args = args_for(reer, mix_dataset_name=str(public), mix_count=3, reer_data_cache_dir=str(cache))
    assert data_cache_dir(args) == cache

    def build(a=args, tokenizer=tiny_tokenizer):
        return build_sft_dataset(a, tokenizer, cache_dir=data_cache_dir(a))

    first, report = build()
    assert len(builds) == 1 and len(report.thinking_tokens) == 7  # a built entry carries the lengths for any reader
    entry = next(cache.iterdir())
    assert {p.name for p in entry.iterdir()} == {"dataset", "report.json", "key.json"}
    assert Path(first.cache_files[0]["filename"]).is_relative_to(entry)  # every process trains on the saved copy
    again, report_again = build()
    assert len(builds) == 1 and again["messages"] == first["messages"] and report_again.state() == report.state()

    build(args_for(reer, mix_dataset_name=str(public), mix_count=4, reer_data_cache_dir=str(cache)))
    assert len(builds) == 2
    build(tokenizer=None)
    assert len(builds) == 3
    write_jsonl(reer, synthesis_rows()[:5])  # the source changed on disk
    assert len(build()[0]) == 4 + 3 and len(builds) == 4
    assert len(list(cache.iterdir())) == 4 and not list(cache.glob(".*"))  # no temporary folder left behind
    assert data_cache_dir(args_for(reer, reer_data_cache=False)) is None


def test_a_cache_that_cannot_be_written_leaves_no_entry(monkeypatch, tmp_path):
    def full_disk(self, path, **kwargs):
        Path(path).mkdir(parents=True)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(datasets.Dataset, "save_to_disk", full_disk)
    cache = tmp_path / "cache"
    ds, report = build_sft_dataset(args_for(write_jsonl(tmp_path / "dw.jsonl", deepwriting_rows())), cache_dir=cache)
    assert len(ds) == 8 and report.steps[-1]["after"] == 8
    assert list(cache.iterdir()) == []


def test_dry_runs_of_the_recipe_share_the_cache(monkeypatch, tmp_path, tiny_tokenizer, capsys):
    from trl import ModelConfig, SFTConfig

    from reer_hf.sft.train import run_sft

    model_dir = tmp_path / "tokenizer-only"
    tiny_tokenizer.save_pretrained(model_dir)
    data = write_jsonl(tmp_path / "syn.jsonl", synthesis_rows())
    builds = count_builds(monkeypatch)
    script_args = args_for(data, dry_run=True, reer_data_cache_dir=str(tmp_path / "cache"))
    training_args = SFTConfig(output_dir=str(tmp_path / "out"), use_cpu=True, report_to="none", max_length=1024)
    model_args = ModelConfig(model_name_or_path=str(model_dir))
    first = run_sft(script_args, training_args, model_args)
    second = run_sft(script_args, training_args, model_args)
    assert len(builds) == 1 and first == second and first["thinking_tokens"]["n"] == 7
    assert capsys.readouterr().out.count("rows per step:") == 2


def test_a_damaged_entry_is_rebuilt_around(monkeypatch, tmp_path, caplog):
    import shutil

    args = args_for(write_jsonl(tmp_path / "dw.jsonl", deepwriting_rows()))
    cache = tmp_path / "cache"
    first, _ = build_sft_dataset(args, cache_dir=cache)
    entry = next(cache.iterdir())
    shutil.rmtree(entry / "dataset")  # removed by hand
    builds = count_builds(monkeypatch)
    again, report = build_sft_dataset(args, cache_dir=cache)
    assert len(builds) == 1 and list(again["messages"]) == list(first["messages"]) and report.steps[-1]["after"] == 8
    assert f"Ignoring the damaged SFT data cache {entry}" in caplog.text


def test_every_option_is_hashed_or_declared_not_to_shape_the_data(tmp_path):
    """A new field of SFTScriptArguments must join DATA_OPTIONS (the cache key) or SCRIPT_OPTIONS (left out)."""
    import dataclasses

    fields = {f.name for f in dataclasses.fields(SFTScriptArguments)}
    assert not sft_data.DATA_OPTIONS & sft_data.SCRIPT_OPTIONS
    assert fields - sft_data.DATA_OPTIONS - sft_data.SCRIPT_OPTIONS == set(), "classify the new options"
    assert (sft_data.DATA_OPTIONS | sft_data.SCRIPT_OPTIONS) - fields == set(), "drop the removed options"
    source = file_dataset(tmp_path, "dw", deepwriting_rows())
    path = tmp_path / "dw.jsonl"

    def key(**kwargs):
        return sft_data.data_cache_key(args_for(path, **kwargs), None, (source, None))[0]

    script = dict(dry_run=True, reer_model_license="mit", reer_project_url="https://x", reer_data_cache_dir="/d")
    assert key() == key(**script) and key() != key(reer_seed=7)


def test_a_second_save_of_the_same_key_keeps_the_first(tmp_path):
    """Two processes that built the same data: the later rename fails on the published entry, which stays intact."""
    args = args_for(write_jsonl(tmp_path / "dw.jsonl", deepwriting_rows()))
    cache = tmp_path / "cache"
    first, report = build_sft_dataset(args, cache_dir=cache)
    entry = next(cache.iterdir())
    before = {p.relative_to(entry): p.read_bytes() for p in entry.rglob("*") if p.is_file()}
    other, other_report = build_sft_dataset(args_for(args.dataset_name, reer_max_rows=2))
    assert sft_data._save_entry(entry, other, other_report, {"key": "same"})
    assert {p.relative_to(entry): p.read_bytes() for p in entry.rglob("*") if p.is_file()} == before
    assert [p.name for p in cache.iterdir()] == [entry.name]  # no temporary folder left behind
    again, again_report = build_sft_dataset(args, cache_dir=cache)
    assert list(again["messages"]) == list(first["messages"]) and again_report.state() == report.state()


def test_an_entry_gone_after_its_save_leaves_the_rows_built(monkeypatch, tmp_path):
    monkeypatch.setattr(sft_data, "_load_entry", lambda entry: None)  # removed by another process meanwhile
    args = args_for(write_jsonl(tmp_path / "dw.jsonl", deepwriting_rows()))
    ds, report = build_sft_dataset(args, cache_dir=tmp_path / "cache")
    assert len(ds) == 8 and report.steps[-1]["after"] == 8


def test_the_cache_key_covers_every_module_the_conversion_imports():
    """The cache's code digest reads whole package folders: every reer_hf module that building the SFT data imports
    must live in one of them, or a change to it would leave stale cached data."""
    import subprocess
    import sys

    from reer_hf.sft.data import _CONVERSION_FOLDERS

    listing = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, reer_hf.sft.data, reer_hf.sft.config; "
            "print('\\n'.join(m for m in sys.modules if m.startswith('reer_hf.')))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    outside = [m for m in listing if m.split(".")[1] not in _CONVERSION_FOLDERS]
    assert "reer_hf.core.data" in listing and not outside, outside
