"""The conversation format of REER data: one assistant format for the messages the search writes, the turns the SFT
recipe trains on, and the sequence the scorer reads, so the three never drift apart."""

from __future__ import annotations

from reer_hf.core.text import ANSWER_CLOSE, ANSWER_OPEN, THINK_CLOSE, THINK_OPEN

__all__ = ["ASSISTANT_FORMAT", "PAPER_SYSTEM_PROMPT", "check_assistant_format", "format_assistant", "to_messages"]

PAPER_SYSTEM_PROMPT = "You are a helpful assistant."
#: The paper's output format: the thinking in ``<think>`` tags, then the answer in ``<answer>`` tags.
ASSISTANT_FORMAT = f"{THINK_OPEN}\n{{thinking}}\n{THINK_CLOSE}\n{ANSWER_OPEN}\n{{answer}}\n{ANSWER_CLOSE}"


def check_assistant_format(assistant_format: str, option: str) -> None:
    """Raise a ``ValueError`` naming ``option`` unless the format holds ``{thinking}`` once and ``{answer}``."""
    if assistant_format.count("{thinking}") != 1 or "{answer}" not in assistant_format:
        raise ValueError(f"{option} needs {{thinking}} exactly once and {{answer}}, got {assistant_format!r}")


def format_assistant(assistant_format: str, thinking: str, answer: str) -> str:
    """``assistant_format`` with ``{thinking}`` and ``{answer}`` filled in (both stripped). The placeholders are
    replaced in the template only, so a literal ``{answer}`` inside a thinking (code, templates) stays as written."""
    head, tail = assistant_format.split("{thinking}", 1)
    answer = answer.strip()
    return head.replace("{answer}", answer) + thinking.strip() + tail.replace("{answer}", answer)


def to_messages(
    query: str,
    thinking: str,
    answer: str,
    system_prompt: str | None = None,
    assistant_format: str = ASSISTANT_FORMAT,
) -> list[dict[str, str]]:
    """An SFT conversation: optional system turn, the query, and the assistant turn in ``assistant_format``."""
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    content = format_assistant(assistant_format, thinking, answer)
    return messages + [{"role": "user", "content": query}, {"role": "assistant", "content": content}]
