"""Quality filters of the synthesized trajectories on crafted texts."""

import random
import re
import time

import pytest
from testing_utils import PROSE, ZH_PROSE

from reer_hf.core.text import units
from reer_hf.synthesis.config import FilterConfig
from reer_hf.synthesis.filters import (
    FILTER_REASONS,
    leak_evidence,
    leaked_span,
    pair_key,
    thinking_verdict,
    top_ngram,
    top_ngram_share,
)


def test_leaked_span_counts_words():
    reference = PROSE
    words = PROSE.split()
    copy12 = " ".join(words[10:22])
    copy11 = " ".join(words[10:21])
    span = leaked_span(f"I plan the opening. {copy12} That is my idea.", reference, 12)
    assert span is not None and units(span, "en") == units(copy12, "en")
    assert leaked_span(f"I plan the opening. {copy11} That is my idea.", reference, 12) is None
    # case and punctuation do not hide a copy; a longer copy is returned whole, as the candidate wrote it
    copy20 = " ".join(words[30:50])
    span = leaked_span("Now: " + copy20.upper() + " ... and so on.", reference, 12)
    assert span == copy20.upper().rstrip(",.")
    assert leaked_span("", reference, 12) is None and leaked_span(copy12, "", 12) is None


def test_leaked_span_allows_the_query():
    query = "Write a story that begins with the line: the harbour town wakes slowly in late autumn every year."
    reference = "The harbour town wakes slowly in late autumn every year. " + PROSE
    thinking = "The user wants me to open with the harbour town wakes slowly in late autumn every year, as given."
    assert leaked_span(thinking, reference, 8) is not None
    assert leaked_span(thinking, reference, 8, allowed=query) is None


def test_leaked_span_chinese_counts_characters():
    copied = ZH_PROSE[20:46]  # 24 characters (2 * 12) and two punctuation marks
    assert len(units(copied, "zh")) == 24
    span = leaked_span("我想先写码头的清晨。" + copied + "然后写风暴。", ZH_PROSE, 12, "zh")
    assert span == copied
    assert leaked_span("我想先写码头的清晨。" + copied[:23] + "然后写风暴。", ZH_PROSE, 12, "zh") is None
    assert leaked_span(copied, ZH_PROSE, 12, "zh", allowed="题目：" + copied) is None
    with pytest.raises(ValueError):
        leaked_span("x", "y", 0)


def test_leaked_span_is_fast_on_long_texts():
    rng = random.Random(0)
    vocab = [f"w{i}" for i in range(5000)]
    reference = " ".join(rng.choice(vocab) for _ in range(20_000))
    candidate = " ".join(rng.choice(vocab) for _ in range(20_000))
    start = time.perf_counter()
    assert leaked_span(candidate, reference, 12) is None
    planted = candidate + " " + " ".join(reference.split()[15_000:15_013])
    assert leaked_span(planted, reference, 12, allowed=candidate[:1000]) is not None
    assert time.perf_counter() - start < 2.0


def test_top_ngram_share():
    loop = "I think about the story and the ending. " * 30
    assert top_ngram_share(loop) > 0.3
    assert top_ngram_share(PROSE) < 0.1
    assert top_ngram_share(ZH_PROSE, lang="zh") < 0.1
    assert top_ngram_share("我想想这个故事。" * 30, lang="zh") > 0.3
    assert top_ngram_share("too short") == 0.0 and top_ngram_share("") == 0.0
    # only n-grams seen at least twice count
    assert top_ngram_share("a b c d e f g h") == 0.0


def test_pair_key():
    key = pair_key("Write a poem\nabout  autumn.", "Leaves  fall.")
    assert re.fullmatch(r"[0-9a-f]{64}", key)
    assert key == pair_key("  write A POEM about autumn. ", "leaves\tfall.")
    assert key != pair_key("Write a poem about autumn.", "Leaves fall!")
    assert key != pair_key("Write a poem about autumn. Leaves", "fall.")  # the boundary between the two counts
    assert pair_key("写一首诗", "秋天") == pair_key("写一首诗 ", " 秋天")


def reason_of(*args) -> str | None:
    """The reason of :func:`thinking_verdict`, without its evidence."""
    verdict = thinking_verdict(*args)
    return verdict[0] if verdict else None


def _config(**kwargs):
    return FilterConfig(**{"filter_min_thinking_tokens": 10, "filter_max_thinking_tokens": 1000, **kwargs})


@pytest.mark.parametrize(
    "lang, good, tail", [("en", PROSE, " But wait, maybe not."), ("zh", ZH_PROSE, "等等，也许不行。")]
)
def test_thinking_verdict_branches(lang, good, tail):
    config = _config()
    assert reason_of(good, True, lang, config, 200) is None
    assert reason_of(good, False, lang, config, 200) == "end_of_thinking"
    assert reason_of(good + tail, True, lang, config, 200) == "end_of_thinking"
    loop = (good[:40] if lang == "en" else good[:6]) * 40  # a short cycle: few distinct n-grams
    assert reason_of(loop, True, lang, config, 200) == "repetition"
    assert reason_of(good, True, lang, config, 5) == "too_short"
    assert reason_of(good, True, lang, config, 5000) == "too_long"
    # order: end_of_thinking before repetition before length
    assert reason_of(loop, False, lang, config, 5) == "end_of_thinking"
    assert reason_of(loop, True, lang, config, 5) == "repetition"
    # each filter can be switched off
    assert reason_of(good + tail, False, lang, _config(filter_end_of_thinking=False), 200) is None
    assert reason_of(loop, True, lang, _config(filter_repetition=False), 200) is None
    unbounded = _config(filter_min_thinking_tokens=None, filter_max_thinking_tokens=None)
    assert reason_of(good, True, lang, unbounded, 0) is None
    assert reason_of(good, True, lang, unbounded, 10**6) is None
    assert {reason_of(good, f, lang, config, n) for f in (True, False) for n in (5, 200, 5000)} <= {
        None,
        *FILTER_REASONS,
    }


@pytest.mark.parametrize(
    "lang, good, tail", [("en", PROSE, " But wait, maybe not."), ("zh", ZH_PROSE, "等等，也许不行。")]
)
def test_each_filter_records_what_it_saw(lang, good, tail):
    """The evidence the report shows: the check that decided, the text that shows it, the value and its limit."""
    config = _config()
    loop = (good[:40] if lang == "en" else good[:6]) * 40
    cases = [
        (good, False, 200, "end_of_thinking", "unfinished"),
        (good + tail, True, 200, "end_of_thinking", "reflection_in_tail"),
        (loop, True, 200, "repetition", "top_ngram_share"),
        (good, True, 5, "too_short", "thinking_tokens"),
        (good, True, 5000, "too_long", "thinking_tokens"),
    ]
    for text, finished, tokens, reason, check in cases:
        assert reason_of(text, finished, lang, config, tokens) == reason
        assert thinking_verdict(text, finished, lang, config, tokens)[0] == reason
        assert thinking_verdict(text, finished, lang, config, tokens)[1]["check"] == check
    assert thinking_verdict(good, True, lang, config, 200) is None
    assert thinking_verdict(good, False, lang, config, 200)[1]["text"] == good[-240:]  # where </think> should be
    phrase = thinking_verdict(good + tail, True, lang, config, 200)[1]
    assert phrase["text"] in tail and phrase["value"] > phrase["limit"] == 0.9
    repeated = thinking_verdict(loop, True, lang, config, 200)[1]
    assert repeated["text"] == top_ngram(loop, 3, lang)[0] and repeated["value"] > repeated["limit"] == 0.3
    short = {"check": "thinking_tokens", "text": None, "value": 5.0, "limit": 10}
    assert thinking_verdict(good, True, lang, config, 5)[1] == short
    # a loop of a long sentence: the top trigrams stay under their limit, the repeated 10-grams do not
    sentence = " ".join(units(PROSE, "en")[:40])
    reason, evidence = thinking_verdict((sentence + ". ") * 6, True, "en", config, 200)
    assert reason == "repetition" and evidence["check"] == "loop_share" and evidence["text"] in sentence


def test_top_ngram_and_leak_evidence():
    assert top_ngram("a b c a b c a b", 2) == ("a b", 3)
    assert top_ngram("刚才刚才刚才", 2, "zh") == ("刚才", 3)
    assert top_ngram("too short", 3) is None
    span = leaked_span(f"I will open with {PROSE[:120]}", PROSE, 12)
    assert leak_evidence(span, 12) == {"check": "leak", "text": span, "value": len(units(span, "en")), "limit": 12}
    assert leak_evidence("秋天的早晨小镇慢慢醒来", 4, "zh")["limit"] == 8
