"""Upstream texts fetched from pinned commits: download, cache, digest checks, offline errors and ``ast``-only reading.

Every file here is synthetic (made-up text in the layout of the pinned upstream file), served by a real HTTP server on
loopback; the registry's digests are patched to the synthetic files' digests.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import socket
import subprocess
import sys
import textwrap
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from reer_hf.core import official
from reer_hf.core.official import Locator, OfficialSourceError, Source, fetch, main, names, text

FAKE_SYNTHESIZE = textwrap.dedent(
    '''\
    import os
    from helper_that_does_not_exist import *

    default_sys = "Fake system line."
    other = 'not registered'

    templates = {
        "standard_inference_en": "Fake inference, English: {query}",
        "standard_inference_cn": "假的推理模板：{query}",
        "initial_thinking_en": "Fake first thoughts " "joined implicitly",
        "initial_thinking_cn": "假的" + "初始思考",
        "segment_edits_en": """
    Fake edit prompt with a {segment}.
    """,
        "segment_edits_cn": "假的片段修改",
    }

    think_prefix = "<think>\\n"


    class RefinementProcessor:
        def run(self):
            pre_trigger = "not this one"
            return pre_trigger

        def _refine_one_step(self, role_suffix):
            if role_suffix:
                pre_trigger = "Fake English lead-in.\\n" if role_suffix == "_en" else "假的中文开场\\n"
                return pre_trigger


    if __name__ == "__main__":
        raise SystemExit(1)
    '''
)
FAKE_JUDGE_TXT = "Fake judge, whole file.\n\nScore each of {dimensions}.\n中文也保留。"
FAKE_LLM_JUDGE = textwrap.dedent(
    """\
    import json

    GPT_KEY = "fake"
    SYS_PROMPT = "Fake checklist evaluator."
    USER_PROMPT = ("Fake user prompt with {instruction} "
                   "and {response}.")
    """
)
FAKE_PROMPT = textwrap.dedent(
    '''\
    evaluate_system = """
    Fake evaluator system prompt.
    """.strip()

    evaluate_prompt = """
    Fake scoring rules for {query} and {response}.
    """.strip()
    '''
)
FAKES = {
    "reer": FAKE_SYNTHESIZE,
    "longbench_write": FAKE_JUDGE_TXT,
    "hellobench": FAKE_LLM_JUDGE,
    "writingbench": FAKE_PROMPT,
}
EXPECTED = {
    "reer:standard_inference_en": "Fake inference, English: {query}",
    "reer:standard_inference_cn": "假的推理模板：{query}",
    "reer:initial_thinking_en": "Fake first thoughts joined implicitly",
    "reer:initial_thinking_cn": "假的初始思考",
    "reer:segment_edits_en": "\nFake edit prompt with a {segment}.\n",
    "reer:segment_edits_cn": "假的片段修改",
    "reer:default_sys": "Fake system line.",
    "reer:think_prefix": "<think>\n",
    "reer:edit_prefill_en": "Fake English lead-in.\n",
    "reer:edit_prefill_zh": "假的中文开场\n",
    "longbench_write:judge": FAKE_JUDGE_TXT,
    "hellobench:SYS_PROMPT": "Fake checklist evaluator.",
    "hellobench:USER_PROMPT": "Fake user prompt with {instruction} and {response}.",
    "writingbench:evaluate_system": "Fake evaluator system prompt.",
    "writingbench:evaluate_prompt": "Fake scoring rules for {query} and {response}.",
}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Upstream:
    """A loopback stand-in for raw.githubusercontent.com serving ``{repo}/{commit}/{path}`` from a folder."""

    def __init__(self, root: Path):
        self.root = root
        self.requests: list[str] = []
        self.drop_next = 0  # close this many connections without answering (a network error for the client)
        self.status_next: list[int] = []  # answer these statuses first, one per request
        upstream = self

        class Handler(SimpleHTTPRequestHandler):
            def do_GET(self):
                upstream.requests.append(self.path)
                if upstream.drop_next:
                    upstream.drop_next -= 1
                    self.close_connection = True
                    return
                if upstream.status_next:
                    self.send_error(upstream.status_next.pop(0))
                    return
                super().do_GET()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def put(self, src: Source, content: str | bytes) -> bytes:
        data = content.encode("utf-8") if isinstance(content, str) else content
        path = self.root / src.repo / src.commit / src.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return data

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def upstream(tmp_path, monkeypatch):
    """Synthetic upstream files served on loopback, the registry pinned to their digests, a private cache."""
    server = Upstream(tmp_path / "www")
    for name, content in FAKES.items():
        data = server.put(official.SOURCES[name], content)
        monkeypatch.setitem(official.SOURCES, name, dataclasses.replace(official.SOURCES[name], sha256=sha(data)))
    monkeypatch.setenv("REER_HF_HOME", str(tmp_path / "home"))
    monkeypatch.setenv(official.BASE_URL_ENV, server.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    monkeypatch.setattr(official, "BACKOFF_S", 0.0)
    yield server
    server.stop()


def add_source(monkeypatch, server: Upstream, name: str, content: str, locators: dict[str, Locator]) -> Source:
    src = Source(name, "someone/fake", "0" * 40, f"{name}.py", sha(content.encode()), "MIT", locators)
    server.put(src, content)
    monkeypatch.setitem(official.SOURCES, name, src)
    return src


def test_every_name_is_read_from_the_pinned_layout(upstream):
    assert {f"{s}:{n}" for s in official.SOURCES for n in names(s)} == set(EXPECTED)
    for ref, expected in EXPECTED.items():
        assert text(ref) == expected, ref
    assert len(upstream.requests) == len(FAKES)  # one download per file, whatever the number of names


def test_download_is_cached_and_reused_without_a_request(upstream, tmp_path):
    src = official.SOURCES["reer"]
    assert text("reer:default_sys") == "Fake system line."
    assert upstream.requests == [f"/{src.repo}/{src.commit}/{src.path}"]
    cached = tmp_path / "home" / "official" / "reer" / src.commit / "synthesize.py"
    assert fetch("reer") == cached and cached.read_text(encoding="utf-8") == FAKE_SYNTHESIZE
    assert [p.name for p in cached.parent.iterdir()] == ["synthesize.py"]  # no temporary file left
    assert text("reer:segment_edits_cn") == "假的片段修改"
    assert len(upstream.requests) == 1
    upstream.stop()  # offline from here: the cache alone serves
    assert text("reer:edit_prefill_zh") == "假的中文开场\n"


def test_a_corrupted_cache_entry_is_fetched_again(upstream):
    cached = fetch("hellobench")
    cached.write_text("SYS_PROMPT = 'tampered'\n")
    assert text("hellobench:SYS_PROMPT") == "Fake checklist evaluator."
    assert len(upstream.requests) == 2 and cached.read_text() == FAKE_LLM_JUDGE
    cached.write_text("tampered")
    upstream.stop()
    with pytest.raises(OfficialSourceError, match="no verified copy is cached"):
        text("hellobench:SYS_PROMPT")


def test_a_digest_mismatch_is_refused_and_nothing_is_cached(upstream, tmp_path, monkeypatch):
    src = official.SOURCES["writingbench"]
    upstream.put(src, FAKE_PROMPT + "# changed upstream\n")
    actual = sha((FAKE_PROMPT + "# changed upstream\n").encode())
    with pytest.raises(OfficialSourceError) as info:
        text("writingbench:evaluate_system")
    message = str(info.value)
    assert all(part in message for part in ("writingbench", src.path, src.sha256, actual, "refused")), message
    assert not (tmp_path / "home" / "official" / "writingbench").exists()


def test_network_errors_and_not_now_statuses_are_retried_other_http_errors_are_not(upstream, monkeypatch):
    """The project's one retry policy (reer_hf.core.retry), as for the generator and the judge."""
    upstream.drop_next = 1
    assert text("hellobench:USER_PROMPT") == EXPECTED["hellobench:USER_PROMPT"]
    assert len(upstream.requests) == 2
    upstream.status_next = [503, 429]  # a rate-limited mirror, then the file
    assert fetch("reer").is_file() and len(upstream.requests) == 5
    upstream.status_next = [503, 503, 503]
    with pytest.raises(OfficialSourceError, match=r"HTTP 503 after 3 attempts"):
        fetch("writingbench")
    assert len(upstream.requests) == 8
    add_source(monkeypatch, upstream, "missing", "X = 'x'", {"X": Locator("assign", variable="X")})
    (upstream.root / "someone/fake" / ("0" * 40) / "missing.py").unlink()
    with pytest.raises(OfficialSourceError, match="HTTP 404"):
        text("missing:X")
    assert len(upstream.requests) == 9


def test_offline_without_a_cache_says_what_to_run(upstream, monkeypatch):
    monkeypatch.setenv(official.BASE_URL_ENV, f"http://127.0.0.1:{free_port()}")
    with pytest.raises(OfficialSourceError) as info:
        text("reer:think_prefix")
    message = str(info.value)
    assert "python -m reer_hf.official fetch reer" in message and "--file" in message and "file=" in message
    assert "\n" not in message


def test_a_local_copy_replaces_the_download_and_is_verified(upstream, tmp_path, monkeypatch):
    monkeypatch.setenv(official.BASE_URL_ENV, f"http://127.0.0.1:{free_port()}")
    copy = tmp_path / "llm_judge.py"
    copy.write_text(FAKE_LLM_JUDGE + "# edited\n")
    with pytest.raises(OfficialSourceError, match="sha256 expected"):
        text("hellobench:SYS_PROMPT", file=copy)
    copy.write_text(FAKE_LLM_JUDGE)
    assert text("hellobench:SYS_PROMPT", file=copy) == "Fake checklist evaluator."
    assert text("hellobench:USER_PROMPT") == EXPECTED["hellobench:USER_PROMPT"]  # the verified copy was cached
    assert upstream.requests == []


def test_module_level_code_is_never_run(upstream, tmp_path, monkeypatch):
    marker = tmp_path / "ran"
    content = textwrap.dedent(
        f"""\
        import pathlib
        pathlib.Path({str(marker)!r}).write_text("executed")
        GREETING = "hello " + "there"
        raise RuntimeError("executed at import")
        FAREWELL = '''
          bye
        '''.strip()
        """
    )
    locators = {name: Locator("assign", variable=name) for name in ("GREETING", "FAREWELL")}
    add_source(monkeypatch, upstream, "sidefx", content, locators)
    assert text("sidefx:GREETING") == "hello there" and text("sidefx:FAREWELL") == "bye"
    assert not marker.exists() and "sidefx" not in sys.modules


@pytest.mark.parametrize(
    "value",
    ["NAME", "f'{NAME}'", "'a' + NAME", "'a'.format(1)", "'a'.strip('x')", "open('x').read()", "'a' * 3"],
)
def test_anything_but_a_literal_is_refused(upstream, monkeypatch, value):
    add_source(
        monkeypatch, upstream, "nonliteral", f"NAME = 'n'\nX = {value}\n", {"X": Locator("assign", variable="X")}
    )
    with pytest.raises(OfficialSourceError, match="not a string literal"):
        text("nonliteral:X")


def test_ambiguous_or_missing_definitions_are_refused(upstream, monkeypatch):
    content = "A = 'one'\nA = 'two'\nD = {'k': 'v'}\nL = ['x']\n"
    locators = {
        "A": Locator("assign", variable="A"),
        "B": Locator("assign", variable="B"),
        "k": Locator("dict_key", variable="D", key="k"),
        "j": Locator("dict_key", variable="D", key="j"),
        "l": Locator("dict_key", variable="L", key="x"),
        "m": Locator("branch", variable="p", cls="C", method="m"),
    }
    add_source(monkeypatch, upstream, "odd", content, locators)
    assert text("odd:k") == "v"
    for ref, reason in [
        ("odd:A", "found 2"),
        ("odd:B", "found 0"),
        ("odd:j", "one key 'j', found 0"),
        ("odd:l", "not a dict literal"),
        ("odd:m", "definition of 'C', found 0"),
    ]:
        with pytest.raises(OfficialSourceError, match=reason):
            text(ref)


def test_unknown_references_fail_before_any_download(upstream):
    with pytest.raises(OfficialSourceError, match="known: reer, longbench_write"):
        text("nope:x")
    with pytest.raises(OfficialSourceError, match="it has: SYS_PROMPT, USER_PROMPT"):
        text("hellobench:nope")
    with pytest.raises(OfficialSourceError, match="SOURCE:NAME"):
        text("hellobench")
    assert upstream.requests == []


def test_cli_in_process(upstream, tmp_path, capsysbinary):
    assert main(["list"]) == 0
    listed = capsysbinary.readouterr().out.decode().splitlines()
    assert len(listed) == len(FAKES) and listed[0].startswith("reer\tmultimodal-art-projection/REER_DeepWriter@")
    assert main(["fetch", "hellobench", "writingbench"]) == 0
    assert len(capsysbinary.readouterr().out.splitlines()) == 2 and len(upstream.requests) == 2
    assert main(["show", "reer:edit_prefill_zh"]) == 0
    assert capsysbinary.readouterr().out == "假的中文开场\n".encode()
    assert main(["fetch", "reer", "hellobench", "--file", str(tmp_path)]) == 1
    err = capsysbinary.readouterr().err
    assert err.startswith(b"error: --file takes exactly one SOURCE") and err.count(b"\n") == 1


@pytest.mark.slow
def test_cli_module_with_a_local_copy(upstream, tmp_path):
    env = {**os.environ, official.BASE_URL_ENV: f"http://127.0.0.1:{free_port()}"}
    run = partial(subprocess.run, capture_output=True, cwd=tmp_path, env=env, timeout=120)
    copy = tmp_path / "synthesize.py"
    copy.write_text(FAKE_SYNTHESIZE, encoding="utf-8")

    listed = run([sys.executable, "-m", "reer_hf.official", "list"])
    assert listed.returncode == 0 and b"writingbench\tX-PLUG/WritingBench@" in listed.stdout

    # The real registry pins the upstream digest, so the synthetic copy is refused with one error line.
    refused = run([sys.executable, "-m", "reer_hf.official", "show", "reer:default_sys", "--file", str(copy)])
    assert refused.returncode == 1 and refused.stdout == b""
    assert refused.stderr.startswith(b"error: reer: ") and refused.stderr.count(b"\n") == 1
    assert b"sha256 expected 4dac8a48" in refused.stderr

    # The same command with the registry pinned to the synthetic digest (patched before the module runs as __main__).
    digest = sha(copy.read_bytes())
    patch = (
        "import dataclasses, runpy, sys; from reer_hf.core import official; "
        f"official.SOURCES['reer'] = dataclasses.replace(official.SOURCES['reer'], sha256='{digest}'); "
        "sys.argv = ['official', *sys.argv[1:]]; runpy.run_module('reer_hf.official', run_name='__main__')"
    )
    for ref in ("reer:edit_prefill_en", "reer:segment_edits_en"):
        shown = run([sys.executable, "-c", patch, "show", ref, "--file", str(copy)])
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout == EXPECTED[ref].encode("utf-8")
