"""Crafted SFT data the tests in this folder share: rows shaped like the synthesis output, DeepWriting-20K and
OpenThoughts, built from the bundled pairs so the expected values are computed, not copied."""

from __future__ import annotations

from pathlib import Path

from testing_utils import write_jsonl

from reer_hf.core.data import demo_pairs
from reer_hf.sft.config import SFTScriptArguments
from reer_hf.sft.trajectories import load_table


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


def write_parquet(path: Path, rows: list[dict]) -> Path:
    """``rows`` as a parquet file at ``path``, as the Hub publishes DeepWriting-20K (pyarrow directly, so no
    in-memory dataset needs a fingerprint)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    pq.write_table(pa.Table.from_pylist(rows), path)
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
