"""What the SFT data pipeline did, for ``--dry_run``, the saved ``sft_data_report.json`` and the model card: the rows
each step kept, how many conversations ``max_length`` would cut before their end-of-turn token, token length
statistics and a histogram, and one sample conversation."""

from __future__ import annotations

import dataclasses
import logging
import math
import statistics
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedTokenizerBase

__all__ = ["HISTOGRAM_EDGES", "SFTDataReport", "length_histogram", "token_lengths"]

logger = logging.getLogger(__name__)

#: Upper bounds (exclusive) of the histogram's token-length buckets; a last bucket holds everything longer.
HISTOGRAM_EDGES = (256, 512, 1024, 2048, 4096, 8192, 16384, 32768)


def token_lengths(texts: list[str], tokenizer: PreTrainedTokenizerBase, batch_size: int = 512) -> list[int]:
    """Token counts of ``texts`` with ``tokenizer`` (no special tokens)."""
    lengths: list[int] = []
    for i in range(0, len(texts), batch_size):
        ids = tokenizer(texts[i : i + batch_size], add_special_tokens=False)["input_ids"]
        lengths.extend(len(x) for x in ids)
    return lengths


def _stats(values: list[int]) -> dict | None:
    if not values:
        return None
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "min": ordered[0],
        "median": int(statistics.median(ordered)),
        "p90": ordered[min(len(ordered) - 1, math.ceil(0.9 * len(ordered)) - 1)],
        "max": ordered[-1],
        "mean": round(statistics.fmean(ordered), 1),
    }


def length_histogram(
    thinking: list[int], conversations: list[int], edges: tuple[int, ...] = HISTOGRAM_EDGES, bar: int = 30
) -> str:
    """A text table of token lengths per bucket: the REER thinking and the whole conversations, with a bar for the
    conversations (what ``max_length`` truncates)."""
    bounds = [0, *edges, math.inf]
    labels = [f"{lo}-{hi - 1}" if hi != math.inf else f">={lo}" for lo, hi in zip(bounds, bounds[1:], strict=False)]
    count_t = [sum(lo <= n < hi for n in thinking) for lo, hi in zip(bounds, bounds[1:], strict=False)]
    count_c = [sum(lo <= n < hi for n in conversations) for lo, hi in zip(bounds, bounds[1:], strict=False)]
    top = max(count_c, default=0) or 1
    rows = [f"{'tokens':>12} | {'thinking':>8} | {'conversation':>12} |", f"{'-' * 12}-+-{'-' * 8}-+-{'-' * 12}-+"]
    for label, t, c in zip(labels, count_t, count_c, strict=True):
        rows.append(f"{label:>12} | {t:>8} | {c:>12} | {'#' * round(bar * c / top)}")
    return "\n".join(rows)


@dataclass
class SFTDataReport:
    """What the data pipeline did: the row counts of each step, and (after :meth:`describe`) the lengths and a
    sample."""

    steps: list[dict] = field(default_factory=list)
    shape: str | None = None
    categories: dict[str, int] | None = None
    mix: dict | None = None
    thinking_tokens: list[int] = field(default_factory=list)
    conversation_tokens: list[int] = field(default_factory=list)
    sample: list[dict] | None = None
    #: The end-of-turn check (reer_hf.sft.end_of_turn): the token, the truncation, what was done and how many it cut.
    end_of_turn: dict | None = None

    def add(self, step: str, before: int, after: int, detail: str = "") -> None:
        self.steps.append({"step": step, "before": before, "after": after, "detail": detail})
        logger.info("%s: %d -> %d rows %s", step, before, after, detail)

    def no_rows_error(self, what: str) -> ValueError:
        """The error for a step that left no ``what``: every step so far with its counts and details (the drop
        reasons), so the cause shows without a rerun."""
        lines = [f"No {what} left after '{self.steps[-1]['step']}'. Rows per step:" if self.steps else f"No {what}."]
        for s in self.steps:
            lines.append(
                f"  {s['step']}: {s['before']} -> {s['after']}" + (f" ({s['detail']})" if s["detail"] else "")
            )
        lines.append("Check the data and the options; --dry_run prints this report.")
        return ValueError("\n".join(lines))

    def state(self) -> dict:
        """Every field, the full length lists included, as JSON-ready data (:meth:`from_state` reads it back)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_state(cls, state: dict) -> SFTDataReport:
        return cls(**{f.name: state[f.name] for f in dataclasses.fields(cls) if f.name in state})

    def describe(self, ds: Dataset, tokenizer: PreTrainedTokenizerBase) -> None:
        """The first row, and the token lengths of every conversation as the chat template renders it, unless the
        end-of-turn step measured them already (as SFTTrainer tokenizes them)."""
        self.sample = ds[0]["messages"] if len(ds) else None
        if self.end_of_turn is not None and len(self.conversation_tokens) == len(ds):
            return
        self.conversation_tokens = []
        for i in range(0, len(ds), 256):
            texts = tokenizer.apply_chat_template(ds[i : i + 256]["messages"], tokenize=False)
            self.conversation_tokens.extend(token_lengths(texts, tokenizer))

    def to_dict(self) -> dict:
        return {
            "shape": self.shape,
            "steps": self.steps,
            "categories": self.categories,
            "mix": self.mix,
            "thinking_tokens": _stats(self.thinking_tokens),
            "conversation_tokens": _stats(self.conversation_tokens),
            "end_of_turn": self.end_of_turn,
        }

    def format(self, max_length: int | None = None, sample_chars: int = 1200) -> str:
        lines = [f"REER data shape: {self.shape or 'none (public data only)'}", "", "rows per step:"]
        width = max((len(s["step"]) for s in self.steps), default=4)
        for s in self.steps:
            lines.append(f"  {s['step']:<{width}}  {s['before']:>7} -> {s['after']:>7}  {s['detail']}".rstrip())
        if self.mix:
            lines.append(f"  mixture: {self.mix}")
        if self.categories:
            lines.append(f"categories of the REER rows (before any exclusion): {self.categories}")
        lines += ["", length_histogram(self.thinking_tokens, self.conversation_tokens)]
        for name, values in (
            ("thinking (REER rows)", self.thinking_tokens),
            ("conversation", self.conversation_tokens),
        ):
            if values:
                st = _stats(values)
                lines.append(
                    f"{name} tokens: min {st['min']}, median {st['median']}, p90 {st['p90']}, max {st['max']}"
                )
        eot = self.end_of_turn
        if eot is not None and eot["max_length"] is not None:
            done = "dropped" if eot["action"] == "drop" else "kept: SFTTrainer truncates them, so they never train it"
            lines.append(
                f"conversations whose end-of-turn token {eot['token']} max_length={eot['max_length']} "
                f"({eot['mode']}) would cut: {eot['cut']} ({done}; reer_over_max_length: {eot['action']})"
            )
        elif max_length and self.conversation_tokens:
            over = sum(n > max_length for n in self.conversation_tokens)
            lines.append(f"conversations over max_length={max_length}: {over} (SFTTrainer truncates them)")
        if self.sample:
            lines += ["", "sample (row 0):"]
            for turn in self.sample:
                content = turn["content"]
                if len(content) > sample_chars:
                    cut = sample_chars // 3
                    content = f"{content[: 2 * cut]}\n[... {len(content) - 3 * cut} characters ...]\n{content[-cut:]}"
                lines.append(f"--- {turn['role']} ---\n{content}")
        return "\n".join(lines)
