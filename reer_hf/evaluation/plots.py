"""The evaluation's plots: the paper-layout scores and the reflection profile of one run or several (matplotlib,
no display needed)."""

from __future__ import annotations

import re
from pathlib import Path

from reer_hf.core.paper import PAPER_TABLE
from reer_hf.core.reflection import REFLECTION_PHRASES
from reer_hf.evaluation.benchmarks.writingbench import WRITINGBENCH_DOMAINS


def _drop_lookarounds(pattern: str) -> str:
    """``pattern`` without its lookaround groups (``(?=``, ``(?!``, ``(?<=``, ``(?<!``), brackets and escapes
    respected: they say where a phrase may stand, not what it says."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith(("(?=", "(?!", "(?<=", "(?<!"), i):
            depth, in_class, j = 0, False, i
            while j < len(pattern):
                c = pattern[j]
                if c == "\\":
                    j += 2
                    continue
                if in_class:
                    in_class = c != "]"
                elif c == "[":
                    in_class = True
                elif c == "(":
                    depth += 1
                elif c == ")":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            i = j + 1
            continue
        out.append(pattern[i])
        i += 1
    return "".join(out)


def _family_label(pattern: str, width: int = 24) -> str:
    """A readable name for a reflection-phrase regular expression: its words without the regex syntax."""
    text = re.sub(r"\(\?:[\^|]*\)", "", _drop_lookarounds(pattern))
    text = re.sub(r"\\s[+*]?", " ", text)
    text = re.sub(r"\\[bB]|\(\?:|[()^$]|\[[^\]]*\][+*?]?|(?<=[\w)-])[+*?]|,\?", "", text)
    text = re.sub(r"\s+", " ", text.replace("|", " / ").replace("\\", "")).strip()
    return text if len(text) <= width else text[: width - 1] + "…"


def _has_cjk_font() -> bool:
    from matplotlib import font_manager

    return any(
        any(key in f.name for key in ("CJK", "Hei", "Song", "WenQuanYi", "Droid Sans Fallback"))
        for f in font_manager.fontManager.ttflist
    )


def _family_labels(families: list[str], lang: str) -> list[str]:
    """Unique tick labels; Chinese ones fall back to ``zh-<n>`` (the family order of ``report.md``) on a machine
    without a CJK font, where matplotlib would draw empty boxes."""
    if lang == "zh" and not _has_cjk_font():
        return [f"zh-{i + 1}" for i in range(len(families))]
    labels: list[str] = []
    for family in families:
        label = _family_label(family)
        labels.append(label if label not in labels else f"{label} ({labels.count(label) + 1})")
    return labels


def plot_evaluation(runs: list[dict], out: Path) -> list[Path]:
    """The evaluation plots of one or more run reports (:func:`reer_hf.evaluation.report.build_report`), each drawn
    when some run has its data: the reflection-phrase profile of the thinking, the WritingBench domains, the
    reasoning-profile radar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    out = Path(out)
    paths = []
    width = 0.8 / max(len(runs), 1)

    langs = [lang for lang in ("en", "zh") if any(lang in (r.get("reflection_profile") or {}) for r in runs)]
    if langs:
        fig, axes = plt.subplots(len(langs), 1, figsize=(11, 3.6 * len(langs)), squeeze=False)
        for ax, lang in zip(axes[:, 0], langs, strict=True):
            families = list(REFLECTION_PHRASES[lang])  # the order of report.md's family list
            x = np.arange(len(families))
            for k, r in enumerate(runs):
                rates = (r.get("reflection_profile") or {}).get(lang, {}).get("families", {})
                ax.bar(x + k * width, [rates.get(f, 0.0) for f in families], width, label=r["run_name"])
            labels = _family_labels(families, lang)
            ax.set_xticks(x + width * (len(runs) - 1) / 2, labels, rotation=45, ha="right")
            unit = "words" if lang == "en" else "characters"
            ax.set_ylabel(f"per 1,000 {unit}")
            ax.set_title(f"Reflection phrases in the thinking ({lang})")
            ax.legend(fontsize=8)
        fig.tight_layout()
        paths.append(out / "reflection_profile.png")
        fig.savefig(paths[-1], dpi=120)
        plt.close(fig)

    letters = "ABCDEF"
    if any(r["table"].get(f"WB-{c}") is not None for r in runs for c in letters):
        fig, ax = plt.subplots(figsize=(10, 4.2))
        x = np.arange(len(letters))
        for k, r in enumerate(runs):
            values = [r["table"].get(f"WB-{c}") for c in letters]
            ax.bar(x + k * width, [v if v is not None else 0.0 for v in values], width, label=r["run_name"])
            for i, v in enumerate(values):
                if v is None:  # not run, or every query of the domain failed: say so rather than draw a zero
                    ax.text(x[i] + k * width, 1, "n/a", ha="center", va="bottom", fontsize=7, rotation=90)
        paper = PAPER_TABLE["DeepWriter-8B"]
        known = [(i, paper[f"WB-{c}"]) for i, c in enumerate(letters) if f"WB-{c}" in paper]
        ax.scatter(
            [x[i] + width * (len(runs) - 1) / 2 for i, _ in known],
            [v for _, v in known],
            marker="_",
            s=400,
            color="black",
            zorder=3,
            label="DeepWriter-8B (paper)",
        )
        ax.set_xticks(
            x + width * (len(runs) - 1) / 2, [f"{c}\n{WRITINGBENCH_DOMAINS[c]}" for c in letters], fontsize=8
        )
        ax.set_ylabel("score (x10)")
        ax.set_ylim(0, 100)
        ax.set_title("WritingBench per domain")
        ax.legend(fontsize=8)
        fig.tight_layout()
        paths.append(out / "writingbench_domains.png")
        fig.savefig(paths[-1], dpi=120)
        plt.close(fig)

    profiled = [r for r in runs if (r.get("reasoning_profile") or {}).get("dimensions")]
    if profiled:
        dims = list(profiled[0]["reasoning_profile"]["dimensions"])
        angles = np.linspace(0, 2 * np.pi, len(dims), endpoint=False).tolist()
        fig, ax = plt.subplots(figsize=(6, 6), subplot_kw={"projection": "polar"})
        for r in profiled:
            stats = r["reasoning_profile"]["dimensions"]
            values = [stats[d]["mean"] if d in stats else 0.0 for d in dims]
            ax.plot(angles + angles[:1], values + values[:1], label=r["run_name"])
            ax.fill(angles + angles[:1], values + values[:1], alpha=0.15)
        ax.set_xticks(angles, [d.replace("_", "\n") for d in dims], fontsize=8)
        ax.set_ylim(0, 10)
        ax.set_title("Reasoning profile (judged, 1-10)")
        ax.legend(loc="lower right", bbox_to_anchor=(1.25, -0.1), fontsize=8)
        fig.tight_layout()
        paths.append(out / "reasoning_profile_radar.png")
        fig.savefig(paths[-1], dpi=120)
        plt.close(fig)
    return paths
