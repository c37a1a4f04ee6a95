"""Every Python block of README.md and docs/*.md runs as written, offline.

Each block runs on its own, in a fresh namespace, with two documented substitutions and nothing else: the scorer's Hub
id (``Qwen/Qwen3-8B-Base``) becomes a tiny model saved here (same tokenizer layout, random weights), and the
generator's ``http://localhost:8000/v1`` becomes a loopback OpenAI-compatible server (``tests/openai_server.py``)
serving ``Qwen/Qwen2.5-32B-Instruct`` with scripted replies. A block may also name the built-in demo model
(``builtin:demo``), which then runs for real.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from openai_server import OpenAIServer

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SERVED = "Qwen/Qwen2.5-32B-Instruct"
LOCAL_HUB_IDS = ("Qwen/Qwen3-8B-Base",)
ENDPOINT = "http://localhost:8000/v1"
THINKING = [
    "Alright, the reader wants a short scene set in a quiet house, so I start from the people in it and what they "
    "want from each other.",
    "Hmm, the voice should stay plain and close to the characters, with long sentences that circle back on "
    "themselves the way the answer's do.",
    "Then the ending: nothing is resolved, the last lines return to the house and the weather, and the tone stays "
    "gentle.",
    "Wait, the middle needs one small event, a visit or a letter, so that the quiet has something to press against "
    "before the close; I keep it short and let the repetition carry it.",
]


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), re.DOTALL)


BLOCKS = [(path, i, block) for path in DOCS for i, block in enumerate(python_blocks(path))]


def writer(kind: str, payload: dict) -> list[str]:
    """Scripted generator replies: a thinking of three paragraphs for an initial request (its reply pre-filled with
    the thinking tag), rewrites of the target paragraph for an edit."""
    last = payload["messages"][-1]
    if last["role"] == "assistant" and last["content"].startswith("<think>"):
        return ["\n\n".join(THINKING)]
    user = next(m["content"] for m in payload["messages"] if m["role"] == "user")
    target = re.search(r"<target>\n(.*?)\n</target>", user, re.S)
    rewrite = (target.group(1) if target else THINKING[0]) + " The details stay concrete."
    return [f"It keeps the plan.\n</analyze>\n<refine>\n{rewrite}\n</refine>"] * payload.get("n", 1)


def test_the_docs_hold_python_blocks():
    assert len(BLOCKS) >= 3 and any(path.name == "README.md" for path, _, _ in BLOCKS)


@pytest.mark.slow  # models, maps and runs, as a reader would run them
@pytest.mark.parametrize(("path", "index", "block"), BLOCKS, ids=[f"{p.relative_to(ROOT)}:{i}" for p, i, _ in BLOCKS])
def test_the_block_runs_as_written(path, index, block, tiny_llama_dir, monkeypatch, capsys):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    for hub_id in LOCAL_HUB_IDS:
        block = block.replace(f'"{hub_id}"', repr(str(tiny_llama_dir)))
    with OpenAIServer(writer, model=SERVED) as server:
        code = compile(block.replace(ENDPOINT, server.base_url), f"{path.name}:python block {index}", "exec")
        exec(code, {"__name__": "__doc_snippet__"})
    if "print(" in block:
        assert capsys.readouterr().out.strip(), "the block prints nothing"
    if "Searcher(" in block:  # the scripted trajectories are worth searching: segments were sent to be rewritten
        assert any("<target>" in str(request["messages"]) for request in server.requests), "no segment was edited"


def test_the_readme_says_what_push_to_hub_sends():
    """``hub/`` is the local image of the push, not the exact upload: Dataset.push_to_hub writes the rows again and the
    Hub's card keeps the configs pushed before; the files beside the rows are the ones the push adds."""
    from reer_hf.core.cards import LICENSE_FILE
    from reer_hf.synthesis.outputs import RUN_FILES

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("and `hub/`, the local image of what `--push_to_hub --hub_dataset_id")
    paragraph = text[start : text.index("\n- ", start)]
    for name in (*RUN_FILES, LICENSE_FILE):
        assert f"`{name}`" in paragraph, name
    assert "Dataset.push_to_hub" in paragraph and "exact folder" not in text
