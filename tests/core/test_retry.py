"""One retry policy for every HTTP call the project makes: what it retries, how long it waits, and that no call in
the package goes around it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import requests
from testing_utils import parsed_source

from reer_hf.core.retry import RetriesExhausted, RetryPolicy

PACKAGE = Path(__file__).resolve().parents[2] / "reer_hf"
HTTP_VERBS = {"get", "post", "put", "head", "request"}


def response(status: int, retry_after: str | None = None) -> requests.Response:
    out = requests.Response()
    out.status_code, out.url, out._content = status, "http://x/y", b"{}"
    if retry_after is not None:
        out.headers["Retry-After"] = retry_after
    return out


def scripted(*outcomes):
    """A call that gives ``outcomes`` in turn (an exception is raised), and the list of calls made."""
    made = []

    def call():
        outcome = outcomes[len(made)]
        made.append(outcome)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    return call, made


def test_network_errors_and_not_now_statuses_are_retried_with_backoff(monkeypatch):
    slept = []
    monkeypatch.setattr("reer_hf.core.retry.time.sleep", slept.append)
    retried = []
    call, made = scripted(requests.ConnectionError("refused"), response(503, "7"), response(429), response(200))
    assert RetryPolicy(3, 0.5).send(call, on_retry=retried.append).status_code == 200
    assert len(made) == 4 and slept == [0.5, 7.0, 2.0]  # backoff doubles; a longer Retry-After wins
    assert retried[0] == "ConnectionError: refused" and retried[1].startswith("HTTP 503 from http://x/y")
    for final in (404, 500, 400):  # repeating cannot change these
        call, made = scripted(response(final))
        assert RetryPolicy(3, 0.0).send(call).status_code == final and len(made) == 1
    call, made = scripted(*[response(502)] * 3)
    with pytest.raises(RetriesExhausted, match="gave up after 2 retries: HTTP 502") as info:
        RetryPolicy(2, 0.0).send(call)
    assert (info.value.cause, info.value.kind, len(made)) == ("HTTP 502", "network", 3)
    call, made = scripted(response(200), response(200))
    bodies = iter(["not JSON", None])
    assert RetryPolicy(1, 0.0).send(call, unusable=lambda r: next(bodies)).status_code == 200 and len(made) == 2
    with pytest.raises(requests.exceptions.InvalidURL):  # not retried
        RetryPolicy(3, 0.0).send(scripted(requests.exceptions.InvalidURL("bad"))[0])
    assert RetryPolicy(0, 1.0).delay(1, asked=120.0) == 120.0 and RetryPolicy(0, 1.0).delay(4) == 8.0


def http_calls_outside_the_policy(tree: ast.AST) -> list[int]:
    """Lines of ``requests`` calls (``requests.get``, ``http.post``, ``session.post``, ...) not made by a lambda that
    is handed to ``RetryPolicy.send``."""
    inside = {
        id(node)
        for call in ast.walk(tree)
        if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr == "send"
        for arg in call.args[:1]
        if isinstance(arg, ast.Lambda)
        for node in ast.walk(arg)
    }
    lines = []
    for node in ast.walk(tree):
        if (
            not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute))
            or node.func.attr not in HTTP_VERBS
        ):
            continue
        owner = node.func.value
        client = (isinstance(owner, ast.Name) and owner.id in ("requests", "http")) or (
            isinstance(owner, ast.Attribute) and owner.attr == "session"
        )
        if client and id(node) not in inside:
            lines.append(node.lineno)
    return lines


def test_no_http_call_in_the_package_goes_around_the_policy():
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if lines := http_calls_outside_the_policy(parsed_source(path)):
            found[str(path.relative_to(PACKAGE))] = lines
    assert not found, f"HTTP calls outside RetryPolicy.send: {found}"
    assert http_calls_outside_the_policy(ast.parse("import requests\nrequests.get(url)\n")) == [2]
    assert not http_calls_outside_the_policy(ast.parse("policy.send(lambda: self.session.post(url))\n"))
