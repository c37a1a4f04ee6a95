"""The conversation format every stage shares: splitting a text into thinking and answer, and the assistant turn the
search writes, the SFT recipe trains on and the scorer reads."""

from __future__ import annotations

import pytest

from reer_hf.core.formats import ASSISTANT_FORMAT, check_assistant_format, format_assistant, to_messages
from reer_hf.core.text import ThinkingSplit, split_thinking


def test_split_thinking_and_answer_wrappers():
    assert split_thinking("<think>\nplan\n</think>\n<answer>\nthe piece\n</answer>") == ("plan", "the piece", True)
    assert split_thinking("<think>a</think>\n\nthe piece") == ("a", "the piece", True)
    assert split_thinking("plan only closed</think>piece") == ("plan only closed", "piece", True)
    opent = "<|begin_of_thought|>\nt\n<|end_of_thought|>\n<|begin_of_solution|>\n42\n<|end_of_solution|>"
    assert split_thinking(opent) == ("t", "42", True)
    assert split_thinking("no thinking at all") == (None, "no thinking at all", True)


def test_split_thinking_marks_a_thinking_that_never_closes_unfinished():
    parts = split_thinking("  <think>\nthe plan, cut by the token limit")
    assert isinstance(parts, ThinkingSplit)
    assert parts == ThinkingSplit(thinking="the plan, cut by the token limit", answer="", finished=False)
    assert split_thinking("<|begin_of_thought|>\nstill thinking").finished is False


def test_format_assistant_keeps_literal_placeholders_in_the_thinking():
    content = format_assistant(ASSISTANT_FORMAT, " f'{answer}' in code ", " 42 ")
    assert content == "<think>\nf'{answer}' in code\n</think>\n<answer>\n42\n</answer>"
    assert split_thinking(content) == ("f'{answer}' in code", "42", True)  # the two round-trip


def test_to_messages_with_and_without_a_system_turn():
    assert to_messages("q", "t", "a", None) == [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "<think>\nt\n</think>\n<answer>\na\n</answer>"},
    ]
    custom = to_messages("q", "t", "a", "Be brief.", "{thinking}</think>{answer}")
    assert custom[0] == {"role": "system", "content": "Be brief."} and custom[-1]["content"] == "t</think>a"


@pytest.mark.parametrize("bad", ["{answer}", "{thinking}{thinking}{answer}", "{thinking} only"])
def test_check_assistant_format_names_the_option(bad):
    with pytest.raises(ValueError, match="reer_assistant_format needs"):
        check_assistant_format(bad, "reer_assistant_format")
