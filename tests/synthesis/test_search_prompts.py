"""Prompts of the trajectory search (the paper's prompts): initial thinking and segment edit, English and Chinese."""

import jinja2
import pytest

from reer_hf.core.prompts import render

QUERY = {
    "en": "Write a short story about a lighthouse keeper's last night.",
    "zh": "写一个关于灯塔看守人最后一夜的短篇故事。",
}
ANSWER = {
    "en": "The lamp turned for the last time as Elias climbed the stairs, counting them the way his father had.",
    "zh": "最后一次，灯在塔顶缓缓转动。老周一级一级地爬上台阶，像父亲当年那样数着。",
}
TARGET = {
    "en": "Next, I want the ending to feel quiet rather than tragic, so the storm should stay offstage.",
    "zh": "接下来，我希望结尾安静而不是悲壮，所以风暴最好只在远处出现。",
}
BEFORE = {
    "en": "Alright, the user wants a story with a strong sense of place.",
    "zh": "好的，用户想要一个很有画面感的故事。",
}
AFTER = {"en": "So the outline: the climb, the lamp, the dawn.", "zh": "所以提纲是：爬楼、点灯、天亮。"}
REFLECTION = {"en": ("Hmm", "Wait"), "zh": ("嗯", "等等")}
LANGS = ("en", "zh")


def _edit(lang, reflection=True, before=None, after=None):
    return render(
        "edit",
        lang,
        query=QUERY[lang],
        answer=ANSWER[lang],
        before=BEFORE[lang] if before is None else before,
        target=TARGET[lang],
        after=AFTER[lang] if after is None else after,
        reflection=reflection,
    )


@pytest.mark.parametrize("lang", LANGS)
def test_initial_prompt_shows_query_and_answer(lang):
    text = render("initial", lang, query=QUERY[lang], answer=ANSWER[lang], reflection=True)
    assert QUERY[lang] in text and ANSWER[lang] in text
    assert text.index(QUERY[lang]) < text.index(ANSWER[lang])
    assert "</think>" in text
    if lang == "en":
        assert "first person" in text and "present tense" in text and "outline" in text
        assert "bullet points" in text and "never copies the reference" in text
    else:
        assert "第一人称" in text and "现在时" in text and "提纲" in text
        assert "项目符号" in text and "绝不照抄参考回答" in text
    assert "None" not in text


@pytest.mark.parametrize("name", ["initial", "edit"])
@pytest.mark.parametrize("lang", LANGS)
def test_reflection_instruction_is_switchable(name, lang):
    def make(reflection):
        if name == "edit":
            return _edit(lang, reflection)
        return render("initial", lang, query=QUERY[lang], answer=ANSWER[lang], reflection=reflection)

    with_reflection, without = make(True), make(False)
    for phrase in REFLECTION[lang]:
        assert phrase in with_reflection
        assert phrase not in without
    assert len(without) < len(with_reflection)
    assert "\n\n\n" not in without and "\n\n\n" not in with_reflection


@pytest.mark.parametrize("lang", LANGS)
def test_edit_prompt_marks_the_target_and_repeats_it(lang):
    text = _edit(lang)
    assert QUERY[lang] in text and ANSWER[lang] in text
    assert f"[[TARGET]]\n{TARGET[lang]}\n[[/TARGET]]" in text
    assert text.count(TARGET[lang]) == 2  # once marked inside the thinking, once on its own
    thinking = text[text.index("<thinking>") : text.index("</thinking>")]
    assert thinking.index(BEFORE[lang]) < thinking.index("[[TARGET]]") < thinking.index(AFTER[lang])
    own = text[text.index("</thinking>") :]
    assert TARGET[lang] in own and "[[TARGET]]" not in own
    for tag in ("<analyze>", "</analyze>", "<refine>", "</refine>"):
        assert tag in text
    assert text.index("<analyze>") < text.index("<refine>")


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("before, after", [("", "x"), ("x", ""), ("", ""), ("  \n", "\n")])
def test_edit_prompt_with_empty_context(lang, before, after):
    text = _edit(lang, before=before, after=after)
    thinking = text[text.index("<thinking>") : text.index("</thinking>") + len("</thinking>")]
    assert "None" not in text and "\n\n\n" not in text
    assert thinking.count("[[TARGET]]") == 1 and thinking.count("[[/TARGET]]") == 1
    if not before.strip():
        assert thinking.startswith("<thinking>\n[[TARGET]]")
    if not after.strip():
        assert thinking.endswith("[[/TARGET]]\n</thinking>")


@pytest.mark.parametrize("name", ["initial", "edit"])
@pytest.mark.parametrize("lang", LANGS)
def test_missing_variable_raises(name, lang):
    variables = {"query": QUERY[lang], "answer": ANSWER[lang], "reflection": True}
    if name == "edit":
        variables.update(before="", target=TARGET[lang], after="")
    render(name, lang, **variables)
    for key in variables:
        partial = {k: v for k, v in variables.items() if k != key}
        with pytest.raises(jinja2.UndefinedError, match=key):
            render(name, lang, **partial)


@pytest.mark.parametrize("lang, query", [("en", "Write a poem about rain."), ("zh", "请写一首关于雨的诗。")])
def test_scorer_context_follows_the_reflection_switch(tiny_tokenizer, lang, query):
    """The 'no reflection tokens' ablation can score in a context that does not ask for reflection either."""
    from reer_hf.scoring.config import ScorerConfig
    from reer_hf.scoring.scorer import Scorer

    with_reflection = Scorer(tiny_tokenizer, ScorerConfig(), backend=lambda rows: []).context(query)
    without = Scorer(tiny_tokenizer, ScorerConfig(scorer_reflection=False), backend=lambda rows: []).context(query)
    marker = "Hmm, maybe" if lang == "en" else "嗯，也许"
    assert marker in with_reflection and marker not in without
    assert query in without and len(without) < len(with_reflection)
