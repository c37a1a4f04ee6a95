"""A real OpenAI-compatible HTTP server on loopback whose replies a test scripts, for the ``openai`` generator and
scorer backends.

    from openai_server import OpenAIServer, ServerReply, scripted

    def handler(kind: str, payload: dict):  # kind: "chat", "completions", "tokenize", "detokenize"; payload: its JSON
        return ["first choice", "second choice"]  # choice texts: HTTP 200, finish_reason "stop", word-count usage

    with OpenAIServer(handler) as server:  # port 0 on 127.0.0.1, served by threads in the background
        config = GeneratorConfig(generator_backend="openai", generator_base_url=server.base_url)  # ".../v1"
        ...
    server.requests        # every payload received, in arrival order (also server.calls: kind, payload, headers)
    server.max_in_flight   # the most requests the server was handling at once

A handler returns either a list of choice texts or a ``ServerReply`` for anything else: an error status
(``ServerReply(503)``), a raw or malformed body (``ServerReply(body="not json")``), a reply with other finish reasons
or no usage (``ServerReply(body=completion_body("chat", ["x"], finish_reason="length", usage=False))``), a slow reply
(``ServerReply(texts=["x"], delay=0.2)``) or a connection dropped without a reply (``close_connection=True``).
``scripted(reply, reply, ...)`` is a handler that gives its replies in order, one per request. A handler that raises
gives HTTP 500 with the exception as the body; without a handler the server answers ``n`` choices ``"reply 0"``,
``"reply 1"``, ... and 404 on ``/tokenize`` and ``/detokenize``. Endpoints: ``POST /v1/chat/completions``,
``POST /v1/completions``, ``POST /tokenize``, ``POST /detokenize`` (at the root, as vLLM serves them),
``GET /v1/models``. With a proxy in the environment, set ``NO_PROXY=127.0.0.1`` (test_generation.py does), so
``requests`` calls the server directly.

The scorer's server: ``OpenAIServer(logprobs_model=(model, tokenizer))`` answers as ``vllm serve`` does, from a real
model: a ``/v1/completions`` request with ``prompt_logprobs`` gets the log-prob of every prompt token from a forward
pass of ``model`` (fp32) on the sent ids, in vLLM's format; ``/tokenize`` and ``/detokenize`` use ``tokenizer``;
other requests go to ``handler``. ``logprobs_handler(model, tokenizer)`` is that handler alone, for a test to wrap
(a 503 on completions, a reply cut short, a slow reply).
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

KINDS = {
    "/v1/chat/completions": "chat",
    "/v1/completions": "completions",
    "/tokenize": "tokenize",
    "/detokenize": "detokenize",
}
NOT_FOUND = {"detail": "Not Found"}  # what vLLM's FastAPI server answers on a route it lacks


@dataclass
class ServerReply:
    """One scripted reply. ``body``: a dict/list (sent as JSON), str or bytes (sent as is) or None (the standard
    completion of ``texts``, or an empty body); ``close_connection``: no reply, the connection drops after ``delay``.
    """

    status: int = 200
    body: Any = None
    close_connection: bool = False
    delay: float = 0.0
    texts: list[str] | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Call:
    """One received request."""

    kind: str  # "chat", "completions", "tokenize" or "detokenize"
    payload: dict
    headers: dict[str, str]


Reply = list[str] | ServerReply
Handler = Callable[[str, dict], Reply]


def completion_body(
    kind: str, texts: list[str], model: str = "test-model", finish_reason: str = "stop", usage: bool = True
) -> dict:
    """The JSON body of a successful reply: one choice per text; usage counts words (a stand-in for tokens)."""
    if kind == "chat":
        choices = [
            {"index": i, "message": {"role": "assistant", "content": t}, "finish_reason": finish_reason}
            for i, t in enumerate(texts)
        ]
    else:
        choices = [{"index": i, "text": t, "finish_reason": finish_reason} for i, t in enumerate(texts)]
    body = {
        "id": "cmpl-test",
        "object": "chat.completion" if kind == "chat" else "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
    }
    if usage:
        words = sum(len(t.split()) for t in texts)
        body["usage"] = {"prompt_tokens": 1, "completion_tokens": words, "total_tokens": words + 1}
    return body


def scripted(*replies: Reply) -> Handler:
    """A handler that gives ``replies`` in order, one per request whatever its content; an extra request is a 500."""
    queue = deque(replies)
    lock = threading.Lock()

    def handler(kind: str, payload: dict) -> Reply:
        with lock:
            if not queue:
                raise AssertionError(f"scripted server: no reply left for request {payload!r}")
            return queue.popleft()

    return handler


def _default_handler(kind: str, payload: dict) -> Reply:
    if kind in ("tokenize", "detokenize"):
        return ServerReply(404, NOT_FOUND)
    return [f"reply {i}" for i in range(payload.get("n", 1))]


def prompt_logprobs(model, tokenizer, ids: list[int]) -> list[dict | None]:
    """vLLM's ``prompt_logprobs`` with ``prompt_logprobs=0`` for ``ids``: None for the first token, then per token a
    dict keyed by the token id as a string, holding the token itself and, where another token ranks first, that one
    too (put first, so a client must pick the sent id, not the first entry). fp32, one forward pass."""
    import torch

    with torch.inference_mode():
        logprobs = torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), dim=-1)
    entries: list[dict | None] = [None]
    for t in range(1, len(ids)):
        row, token = logprobs[t - 1], ids[t]
        entry = {}
        top = int(row.argmax())
        if top != token:
            entry[str(top)] = {"logprob": float(row[top]), "rank": 1, "decoded_token": tokenizer.decode([top])}
        rank = int((row > row[token]).sum()) + 1
        entry[str(token)] = {"logprob": float(row[token]), "rank": rank, "decoded_token": tokenizer.decode([token])}
        entries.append(entry)
    return entries


def logprobs_handler(model, tokenizer, fallback: Handler | None = None, max_model_len: int | None = None) -> Handler:
    """A handler that answers as ``vllm serve`` does for the scorer: completions with ``prompt_logprobs`` from a real
    forward pass of ``model`` (token ids or text, tokenized with ``add_special_tokens``), ``/tokenize`` (with
    ``max_model_len``, by default the model's ``max_position_embeddings``) and ``/detokenize`` with ``tokenizer``;
    any other request goes to ``fallback`` (by default the server's default replies)."""
    fallback = fallback or _default_handler
    context = max_model_len or model.config.max_position_embeddings

    def encode(payload: dict) -> list[int]:
        return tokenizer(payload["prompt"], add_special_tokens=payload.get("add_special_tokens", True))["input_ids"]

    def handler(kind: str, payload: dict) -> Reply:
        if kind == "tokenize":
            ids = encode(payload)
            return ServerReply(body={"count": len(ids), "max_model_len": context, "tokens": ids, "token_strs": None})
        if kind == "detokenize":
            return ServerReply(body={"prompt": tokenizer.decode(payload["tokens"])})
        if kind != "completions" or payload.get("prompt_logprobs") is None:
            return fallback(kind, payload)
        ids = payload["prompt"] if isinstance(payload["prompt"], list) else encode(payload)
        entries = prompt_logprobs(model, tokenizer, ids)
        body = completion_body(kind, ["x"], payload.get("model", "test-model"), finish_reason="length")
        body["choices"][0].update(logprobs=None, prompt_logprobs=entries)
        body["usage"] = {"prompt_tokens": len(ids), "completion_tokens": 1, "total_tokens": len(ids) + 1}
        return ServerReply(body=body)

    return handler


class OpenAIServer:
    """The server; use it as a context manager (or ``start()``/``stop()``)."""

    def __init__(self, handler: Handler | None = None, model: str = "test-model", logprobs_model: tuple | None = None):
        self.handler = handler or _default_handler
        if logprobs_model is not None:  # (model, tokenizer): prompt log-probs and tokenization as vllm serve
            self.handler = logprobs_handler(*logprobs_model, fallback=self.handler)
        self.model = model
        self.calls: list[Call] = []
        self.max_in_flight = 0
        self._in_flight = 0
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def requests(self) -> list[dict]:
        """The payloads received so far, in arrival order."""
        with self._lock:
            return [c.payload for c in self.calls]

    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "the server is not running"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> OpenAIServer:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._request_handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.02,), name="openai-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(timeout=5)
            self._httpd = None

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _enter(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)

    def _leave(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def _reply(self, kind: str, payload: dict) -> ServerReply:
        try:
            reply = self.handler(kind, payload)
        except Exception as e:  # a test bug shows up in the failed completion, not as a hung client
            return ServerReply(500, {"error": {"message": f"handler raised {type(e).__name__}: {e}"}})
        if isinstance(reply, ServerReply):
            if reply.body is None and reply.texts is not None:
                body = completion_body(kind, reply.texts, self.model)
                reply = ServerReply(reply.status, body, reply.close_connection, reply.delay, None, reply.headers)
            return reply
        return ServerReply(body=completion_body(kind, list(reply), self.model))

    def _request_handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real servers
            # TCP_NODELAY, as real servers set it: without it the body, written after the headers, waits for the
            # client's delayed ACK (tens of milliseconds a request)
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args) -> None:  # quiet test output
                pass

            def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
                if isinstance(body, dict | list):
                    data, ctype = json.dumps(body).encode(), "application/json"
                elif isinstance(body, str):
                    data, ctype = body.encode(), "text/plain"
                else:
                    data, ctype = body or b"", "application/octet-stream"
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path.rstrip("/") == "/v1/models":
                    self._send(200, {"object": "list", "data": [{"id": server.model, "object": "model"}]})
                else:
                    self._send(404, {"error": {"message": f"no route {self.path}"}})

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                kind = KINDS.get(self.path.rstrip("/"))
                if kind is None:
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                try:
                    payload = json.loads(raw)
                except ValueError:
                    self._send(400, {"error": {"message": "the body is not JSON"}})
                    return
                server._enter(Call(kind, payload, dict(self.headers.items())))
                try:
                    reply = server._reply(kind, payload)
                    if reply.delay:
                        time.sleep(reply.delay)
                    if reply.close_connection:
                        self.close_connection = True
                        return
                    self._send(reply.status, reply.body, reply.headers)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout test): not an error
                    self.close_connection = True
                finally:
                    server._leave()

        return RequestHandler
