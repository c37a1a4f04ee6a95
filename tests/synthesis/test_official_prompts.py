"""The official prompt source: the official code's templates (here a synthetic file of the same layout, pinned by
its digest) filled as that code fills them, with its system turn and edit pre-fill, in the search and the scorer."""

from __future__ import annotations

import dataclasses
import hashlib
import textwrap

import pytest
from openai_server import OpenAIServer
from test_search import (  # noqa: F401  (tiny_scorer is a fixture)
    QUERY,
    Writer,
    filter_config,
    make_searcher,
    prefill_of,
    rows,
    run,
    search_config,
    tiny_scorer,
)

from reer_hf.core import official
from reer_hf.scoring.config import ScorerConfig
from reer_hf.scoring.scorer import Scorer
from reer_hf.synthesis.config import SearchConfig
from reer_hf.synthesis.search import Searcher

SYNTHETIC = textwrap.dedent(
    """\
    default_sys = "Synthetic system turn."
    think_prefix = "<think>\\n"
    templates = {
        "standard_inference_en": "SYNTHETIC INFERENCE for: {}",
        "standard_inference_cn": "合成推理：{}",
        "initial_thinking_en": "SYNTHETIC INITIAL. Request: {}\\nAnswer: {}",
        "initial_thinking_cn": "合成初始：{} {}",
        "segment_edits_en": (
            "SYNTHETIC EDIT. Request: {}\\nAnswer: {}\\nBefore: {}\\n<target>\\n{}\\n</target>\\nAfter: {}\\n"
            "Again: {}"
        ),
        "segment_edits_cn": "合成修改：{} {} {} {} {} {}",
    }


    class RefinementProcessor:
        def _refine_one_step(self, role_suffix):
            pre_trigger = "Synthetic lead-in.\\n" if role_suffix == "_en" else "合成开场\\n"
            return pre_trigger
    """
)


@pytest.fixture
def synthetic_official(tmp_path, monkeypatch):
    """The registry's REER entry pinned to the synthetic file, cached from a local copy (no network)."""
    data = SYNTHETIC.encode()
    monkeypatch.setitem(
        official.SOURCES,
        "reer",
        dataclasses.replace(official.SOURCES["reer"], sha256=hashlib.sha256(data).hexdigest()),
    )
    monkeypatch.setenv("REER_HF_HOME", str(tmp_path / "home"))
    copy = tmp_path / "synthesize.py"
    copy.write_bytes(data)
    official.fetch("reer", file=copy)


def test_the_search_sends_the_official_prompts(synthetic_official, tiny_scorer):  # noqa: F811
    seen: list[dict] = []
    writer = Writer()

    def recording(kind, payload):
        seen.append(payload)
        return writer(kind, payload)

    cfg = search_config(search_max_step=1, search_prompt_source="official")
    with OpenAIServer(recording) as server:
        searcher = make_searcher(server, tiny_scorer, cfg, filter_config())
        out = run(searcher, rows(1))
    initial, edit = seen[0], seen[-1]
    assert initial["messages"][0] == {"role": "system", "content": "Synthetic system turn."}
    (row,) = rows(1)
    assert initial["messages"][1]["content"] == f"SYNTHETIC INITIAL. Request: {row['query']}\nAnswer: {row['answer']}"
    assert prefill_of(initial).startswith("<think>\n")
    assert out[0]["trace"] and out[0]["trace"][0]["candidates"]  # the search ran its edit step
    body = edit["messages"][1]["content"]
    assert body.startswith(f"SYNTHETIC EDIT. Request: {row['query']}\nAnswer: {row['answer']}\n")
    before, rest = body.split("\n<target>\n", 1)
    current = rest.split("\n</target>\n", 1)[0]
    assert body.endswith(f"Again: {current}")  # the target is passed twice, as the official code passes it
    assert prefill_of(edit) == "Synthetic lead-in.\n<analyze>\n"


def test_options_override_the_official_system_turn_and_prefill(synthetic_official, tiny_scorer):  # noqa: F811
    cfg = search_config(search_prompt_source="official", search_system_prompt="", search_edit_prefill="Look. ")
    with OpenAIServer(Writer()) as server:
        searcher: Searcher = make_searcher(server, tiny_scorer, cfg, filter_config())
    assert searcher.system_prompt == "" and searcher._messages("x") == [{"role": "user", "content": "x"}]
    assert searcher._edit_prefill("en") == "Look. "


def test_the_scorer_reads_the_official_inference_prompt(synthetic_official, tiny_tokenizer):
    scorer = Scorer(tiny_tokenizer, ScorerConfig(scorer_prompt_source="official"), backend=lambda rows: [])
    assert "SYNTHETIC INFERENCE for: Write a poem." in scorer.context("Write a poem.")
    assert "合成推理：写一首诗。" in scorer.context("写一首诗。")


def test_official_prompts_refuse_the_reflection_ablation():
    with pytest.raises(ValueError, match="official templates cannot be edited"):
        SearchConfig(search_prompt_source="official", search_reflection=False)
    with pytest.raises(ValueError, match="official one cannot be edited"):
        ScorerConfig(scorer_prompt_source="official", scorer_reflection=False)
