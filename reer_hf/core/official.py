"""Upstream texts (the official REER code's prompts, three benchmarks' judge prompts), fetched from pinned commits.

None of these texts is copied into this repository: their licences and authorship stay upstream. Each file is
downloaded on first use from ``raw.githubusercontent.com`` at a pinned commit, checked against its sha256 (a changed
or tampered file is refused), cached under ``$REER_HF_HOME/official/<source>/<commit>/`` and read with :mod:`ast`
only: a fetched Python file is parsed, never imported or executed, so its module-level code cannot run here.

A machine without internet takes a local copy of the pinned file (``file=`` here, ``--file`` on the command line),
checked by the same digest and then cached like a download.
"""

from __future__ import annotations

import argparse
import ast
import functools
import hashlib
import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import requests

from reer_hf.core.cache import atomic_write, cache_root
from reer_hf.core.retry import RetriesExhausted, RetryPolicy

logger = logging.getLogger(__name__)

BASE_URL_ENV = "REER_HF_OFFICIAL_BASE_URL"
DEFAULT_BASE_URL = "https://raw.githubusercontent.com"
TIMEOUT_S = (10.0, 60.0)  # (connect, read)
RETRIES = 2  # retries of a download, under the project's one retry policy (reer_hf.core.retry)
BACKOFF_S = 1.0  # seconds before the first retry (doubles)
_STRIP_METHODS = frozenset({"strip", "lstrip", "rstrip"})


class OfficialSourceError(RuntimeError):
    """An upstream text that cannot be had: unknown name, wrong digest, no network and no copy, or not a literal."""


@dataclass(frozen=True)
class Locator:
    """Where one text lives in its file, so it is found by reading the syntax tree, never by running the file.

    ``whole``: the file's text. ``assign``: the string assigned to ``variable`` at module level. ``dict_key``: the
    value under ``key`` in the dict literal assigned to ``variable`` at module level. ``branch``: one branch
    (``body`` is the ``if`` side, ``orelse`` the ``else`` side) of the conditional expression assigned to
    ``variable`` inside method ``method`` of class ``cls``.
    """

    kind: Literal["whole", "assign", "dict_key", "branch"]
    variable: str = ""
    key: str = ""
    cls: str = ""
    method: str = ""
    branch: Literal["body", "orelse"] = "body"


@dataclass(frozen=True)
class Source:
    """One upstream file pinned by commit and digest, with the names of the texts it provides."""

    name: str
    repo: str
    commit: str
    path: str
    sha256: str
    licence: str
    names: Mapping[str, Locator]

    @property
    def pinned(self) -> str:
        return f"{self.repo}@{self.commit}:{self.path}"

    def url(self) -> str:
        base = os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
        return f"{base.rstrip('/')}/{self.repo}/{self.commit}/{self.path}"

    def cache_path(self) -> Path:
        # Imported here: the shared cache root lives beside the model loading (torch), which `list` does not need.
        return cache_root() / "official" / self.name / self.commit / Path(self.path).name


_REER_TEMPLATES = (
    "standard_inference_en",
    "standard_inference_cn",
    "initial_thinking_en",
    "initial_thinking_cn",
    "segment_edits_en",
    "segment_edits_cn",
)

SOURCES: dict[str, Source] = {
    source.name: source
    for source in (
        Source(
            name="reer",
            repo="multimodal-art-projection/REER_DeepWriter",
            commit="277acc6dcd0fd36c3ff32a5a1c3aba8b8cdd5a17",
            path="synthesize_deep_reasoning/synthesize.py",
            sha256="4dac8a48f8dfa90bb8389794a6f49f1e261e8e5b567c0c5f978b8665768504cd",
            licence="MIT",
            names={
                **{key: Locator("dict_key", variable="templates", key=key) for key in _REER_TEMPLATES},
                "default_sys": Locator("assign", variable="default_sys"),
                "think_prefix": Locator("assign", variable="think_prefix"),
                # The text the segment-edit step writes before its analysis: English when the role is English.
                "edit_prefill_en": Locator(
                    "branch", variable="pre_trigger", cls="RefinementProcessor", method="_refine_one_step"
                ),
                "edit_prefill_zh": Locator(
                    "branch",
                    variable="pre_trigger",
                    cls="RefinementProcessor",
                    method="_refine_one_step",
                    branch="orelse",
                ),
            },
        ),
        Source(
            name="longbench_write",
            repo="THUDM/LongWriter",
            commit="3fcfdff43deceb49f7936c6bf25ad88d61df0bfa",
            path="evaluation/judge.txt",
            sha256="2c423ce88a0eb6a61482f427997a3c03c4bc11fe861102895dcac45926ae1d57",
            licence="Apache-2.0",
            names={"judge": Locator("whole")},
        ),
        Source(
            name="hellobench",
            repo="Quehry/HelloBench",
            commit="d403282968b0a61a4963a73c631d3fc1318f17d7",
            path="llm_judge.py",
            sha256="1434ba32c15ab33f21ea65cb08e0111ac47e2bdb2e6816dacd61f0365e6ff5dd",
            licence="MIT",
            names={name: Locator("assign", variable=name) for name in ("SYS_PROMPT", "USER_PROMPT")},
        ),
        Source(
            name="writingbench",
            repo="X-PLUG/WritingBench",
            commit="ae2d5176449b7b769815482641d35926f26793eb",
            path="prompt.py",
            sha256="c5bf21f28d4b4e54b682236cbe815831f3e362ff9b4f3e8c7c10467c491ecad1",
            licence="Apache-2.0",
            names={name: Locator("assign", variable=name) for name in ("evaluate_system", "evaluate_prompt")},
        ),
    )
}


def source(name: str) -> Source:
    if name not in SOURCES:
        raise OfficialSourceError(f"Unknown upstream source {name!r}; known: {', '.join(SOURCES)}")
    return SOURCES[name]


def names(source_name: str) -> list[str]:
    """The text names a source provides, usable as ``text(f"{source_name}:{name}")``."""
    return list(source(source_name).names)


# ---------------------------------------------------------------------------------------------------------- fetching


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _check(src: Source, data: bytes, origin: str) -> None:
    actual = _sha256(data)
    if actual != src.sha256:
        raise OfficialSourceError(
            f"{src.name}: {src.path} from {origin} does not match the pinned file {src.pinned}: "
            f"sha256 expected {src.sha256}, got {actual}; refused, nothing cached"
        )


def _offline_hint(src: Source) -> str:
    return (
        f"run `python -m reer_hf.official fetch {src.name}` where there is network access, or pass a local copy "
        f"of {src.pinned} with `--file PATH` (API: `file=`)"
    )


def _download(src: Source) -> bytes:
    """GET the pinned file under :class:`~reer_hf.core.retry.RetryPolicy`: network errors and "not now" statuses
    (429, 503, ...) are retried; any other error status is final."""
    url = src.url()

    def warn(error: str) -> None:
        logger.warning("Downloading %s failed (%s); retrying (at most %d retries)", url, error[:200], RETRIES)

    try:
        response = RetryPolicy(RETRIES, BACKOFF_S).send(lambda: requests.get(url, timeout=TIMEOUT_S), on_retry=warn)
    except RetriesExhausted as err:
        raise OfficialSourceError(
            f"{src.name}: cannot download {url} ({err.cause} after {RETRIES + 1} attempts) and no verified copy is "
            f"cached; {_offline_hint(src)}"
        ) from err
    except requests.RequestException as err:  # an invalid URL: repeating cannot help
        raise OfficialSourceError(
            f"{src.name}: cannot download {url} ({type(err).__name__}) and no verified copy is cached; "
            f"{_offline_hint(src)}"
        ) from err
    if response.status_code != 200:
        raise OfficialSourceError(
            f"{src.name}: downloading {url} answered HTTP {response.status_code}; {_offline_hint(src)}"
        )
    return response.content


def fetch(source_name: str, *, file: str | os.PathLike | None = None) -> Path:
    """The cached, verified copy of a source's file: ``file`` when given, else the cache, else a download.

    A cached copy is re-verified on every read; one that no longer matches is replaced. ``file`` (a local copy of the
    pinned file) is verified and cached, so later calls need neither it nor the network.
    """
    src = source(source_name)
    if file is not None:
        try:
            data = Path(file).read_bytes()
        except OSError as err:
            raise OfficialSourceError(f"{src.name}: cannot read the local copy {file}: {err}") from err
        _check(src, data, str(file))
        target = src.cache_path()
    else:
        target = src.cache_path()
        if target.is_file():
            if _sha256(target.read_bytes()) == src.sha256:
                return target
            logger.warning("Cached %s does not match its sha256 %s; fetching it again", target, src.sha256)
        logger.info("Downloading %s", src.url())
        data = _download(src)
        _check(src, data, src.url())
    atomic_write(target, lambda tmp: tmp.write_bytes(data))
    return target


# -------------------------------------------------------------------------------------------------------- extraction


def _literal(node: ast.expr, where: str) -> str:
    """The string a literal expression spells: a constant, ``+`` of literals, or a literal's ``.strip()``.

    Implicit concatenation (``"a" "b"``) is already one constant in the tree. Anything else (names, calls, f-strings)
    is refused rather than evaluated.
    """
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _literal(node.left, where) + _literal(node.right, where)
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in _STRIP_METHODS
        and not node.args
        and not node.keywords
    ):
        return getattr(_literal(node.func.value, where), node.func.attr)()
    raise OfficialSourceError(
        f"{where} (line {node.lineno}) is not a string literal but a {type(node).__name__} expression; "
        "refused: upstream files are read, never evaluated"
    )


def _assigned(statements: list[ast.stmt], variable: str, where: str) -> ast.expr:
    """The value of the one assignment ``variable = ...`` among ``statements`` (a module's top level, or every
    statement of a method); none or several is refused, since which one is meant would be a guess."""
    values = []
    for stmt in statements:
        if isinstance(stmt, ast.Assign):
            targets = stmt.targets
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            targets = [stmt.target]
        else:
            continue
        if any(isinstance(target, ast.Name) and target.id == variable for target in targets):
            values.append(stmt.value)
    if len(values) != 1:
        raise OfficialSourceError(f"{where}: expected one assignment to {variable!r}, found {len(values)}")
    return values[0]


def _definition(body: list[ast.stmt], kind: type | tuple[type, ...], name: str, where: str) -> ast.stmt:
    found = [stmt for stmt in body if isinstance(stmt, kind) and stmt.name == name]
    if len(found) != 1:
        raise OfficialSourceError(f"{where}: expected one definition of {name!r}, found {len(found)}")
    return found[0]


def _locate(tree: ast.Module, locator: Locator, where: str) -> str:
    if locator.kind == "assign":
        return _literal(_assigned(tree.body, locator.variable, where), where)
    if locator.kind == "dict_key":
        value = _assigned(tree.body, locator.variable, where)
        if not isinstance(value, ast.Dict):
            raise OfficialSourceError(f"{where}: {locator.variable!r} is not a dict literal")
        hits = [
            v
            for k, v in zip(value.keys, value.values, strict=True)
            if isinstance(k, ast.Constant) and k.value == locator.key
        ]
        if len(hits) != 1:
            raise OfficialSourceError(f"{where}: expected one key {locator.key!r}, found {len(hits)}")
        return _literal(hits[0], where)
    if locator.kind == "branch":
        cls = _definition(tree.body, ast.ClassDef, locator.cls, where)
        method = _definition(cls.body, (ast.FunctionDef, ast.AsyncFunctionDef), locator.method, where)
        statements = [node for node in ast.walk(method) if isinstance(node, ast.stmt)]
        value = _assigned(statements, locator.variable, where)
        if not isinstance(value, ast.IfExp):
            raise OfficialSourceError(f"{where}: {locator.variable!r} is not assigned a conditional expression")
        return _literal(getattr(value, locator.branch), where)
    raise OfficialSourceError(f"{where}: unknown locator kind {locator.kind!r}")


def _locator(src: Source, name: str) -> Locator:
    if name not in src.names:
        raise OfficialSourceError(f"{src.name} has no text {name!r}; it has: {', '.join(src.names)}")
    return src.names[name]


def extract(src: Source, data: bytes, name: str) -> str:
    """One named text out of a file's bytes, by reading its syntax tree (the file is never run)."""
    locator = _locator(src, name)
    where = f"{src.name}:{name} in {src.path}"
    if locator.kind == "whole":
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as err:
            raise OfficialSourceError(f"{where}: not UTF-8 text: {err}") from err
    try:
        tree = ast.parse(data, filename=src.path)
    except (SyntaxError, ValueError) as err:
        raise OfficialSourceError(f"{where}: not parsable as Python: {err}") from err
    return _locate(tree, locator, where)


def text(ref: str, *, file: str | os.PathLike | None = None) -> str:
    """The upstream text ``ref`` (``"source:name"``, e.g. ``"hellobench:SYS_PROMPT"``), fetched and verified."""
    source_name, sep, name = ref.partition(":")
    if not sep or not name:
        raise OfficialSourceError(f"Expected SOURCE:NAME (e.g. reer:default_sys), got {ref!r}")
    src = source(source_name)
    _locator(src, name)  # an unknown name fails before any download
    return extract(src, fetch(source_name, file=file).read_bytes(), name)


def cached_text(ref: str) -> str:
    """:func:`text`, read once per pinned file: for callers that ask per request (a prompt per row, a judge template
    per item). Keyed by the source's digest, so a re-pinned source is read anew."""
    return _cached_text(ref, source(ref.partition(":")[0]).sha256)


@functools.cache
def _cached_text(ref: str, sha256: str) -> str:
    return text(ref)


# --------------------------------------------------------------------------------------------------------------- CLI


def _list() -> None:
    for src in SOURCES.values():
        print(f"{src.name}\t{src.repo}@{src.commit}\t{src.path}\t{src.licence}\t{', '.join(src.names)}")


def main(argv: list[str] | None = None) -> int:
    """``list`` the sources, ``fetch`` them into the cache, ``show`` one text exactly; 1 with one error line."""
    parser = argparse.ArgumentParser(
        prog="python -m reer_hf.official", description="Upstream texts fetched from pinned commits, never bundled."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="sources, repo@commit, path, licence and text names (tab-separated)")
    fetch_cmd = commands.add_parser("fetch", help="download and verify into the cache (all sources when none given)")
    fetch_cmd.add_argument("sources", nargs="*", metavar="SOURCE")
    fetch_cmd.add_argument("--file", help="a local copy of the pinned file of the one SOURCE given, verified")
    show = commands.add_parser("show", help="print one text exactly")
    show.add_argument("ref", metavar="SOURCE:NAME")
    show.add_argument("--file", help="a local copy of the pinned file, used instead of a download, verified")
    args = parser.parse_args(argv)
    try:
        if args.command == "list":
            _list()
        elif args.command == "fetch":
            chosen = args.sources or list(SOURCES)
            if args.file and len(chosen) != 1:
                raise OfficialSourceError("--file takes exactly one SOURCE")
            for name in chosen:
                print(f"{name}\t{fetch(name, file=args.file)}")
        else:
            sys.stdout.flush()
            sys.stdout.buffer.write(text(args.ref, file=args.file).encode("utf-8"))
            sys.stdout.buffer.flush()
    except (OfficialSourceError, OSError) as err:  # OSError: the cache folder cannot be written
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0
