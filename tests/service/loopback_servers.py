"""Real servers on 127.0.0.1 for the serving tests: a small OpenAI-compatible chat server and a redis-server.

:class:`ChatServer` is a stdlib ``http.server`` speaking the parts of the OpenAI API that
:class:`jupyter_nl2sql.models.http_backend.OpenAICompatibleBackend` uses (``GET /v1/models``,
``POST /v1/chat/completions`` as JSON or as server-sent events over chunked HTTP/1.1 keep-alive).  Tests steer it
with *actions* queued in ``plan`` (one per chat request, then ``default``):

- ``{"reply": text}``: answer with ``text`` (streamed one word per event when the request asks for a stream);
  ``chunk_delay`` (seconds between events), ``delay`` (before the status line), ``usage`` (False: no usage block),
  ``done`` (False: end the stream without ``[DONE]``), ``finish`` (False: no finish_reason either),
  ``ignore_stream`` (answer with JSON although a stream was asked for), ``continuous_usage`` (False: ignore
  ``continuous_usage_stats`` as llama.cpp's server does; by default usage comes in every chunk, as from vLLM);
- ``{"status": 503}`` (with ``retry_after``), ``{"drop": True}`` (close the connection without answering),
  ``{"bad_json": True}``, ``{"bad_event": True}``, ``{"stream_error": "message"}``.

It records what it received (``requests``), how many TCP connections it accepted (``connections``) and how many
streams the client closed before the end (``aborted``).  Unit tests load this file by path (tests/ is not a package).
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ChatServer

    def setup(self) -> None:
        super().setup()
        with self.server.lock:
            self.server.connections += 1
            self.server.open_sockets.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.server.lock:
                self.server.open_sockets.discard(self.connection)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    # -- helpers ---------------------------------------------------------------------------------------------
    def _send(self, status: int, payload: bytes, content_type: str = "application/json",
              headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(payload)

    def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), headers=headers)

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _authorised(self) -> bool:
        key = self.server.api_key
        if key and self.headers.get("Authorization") != f"Bearer {key}":
            self._json(401, {"error": {"message": "Invalid API key", "type": "invalid_request_error"}})
            return False
        return True

    # -- endpoints -------------------------------------------------------------------------------------------
    def do_GET(self) -> None:
        self.server.record(self, None)
        if not self._authorised():
            return
        if self.path == "/v1/models" and self.server.models is not None:
            self._json(200, {"object": "list", "data": [{"id": m, "object": "model", "owned_by": "test"}
                                                        for m in self.server.models]})
        else:
            self._json(404, {"detail": "Not Found"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        self.server.record(self, body)
        if not self._authorised():
            return
        if self.path != "/v1/chat/completions":
            self._json(404, {"detail": "Not Found"})
            return
        action = self.server.next_action()
        if action.get("delay"):
            time.sleep(action["delay"])
        if action.get("drop"):
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if action.get("status"):
            headers = {"Retry-After": str(action["retry_after"])} if "retry_after" in action else None
            self._json(action["status"], {"error": {"message": action.get("message", "server exploded"),
                                                    "type": "server_error"}}, headers)
            return
        if action.get("bad_json"):
            self._send(200, b"<html>gateway says hello</html>", "text/html")
            return
        reply = action.get("reply", self.server.default.get("reply", ""))
        stop = (body or {}).get("stop") or []
        for s in stop:
            cut = reply.find(s)
            if cut >= 0:
                reply = reply[:cut]
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in (body or {}).get("messages", []))
        pieces = re.findall(r"\S+\s*|\s+", reply)
        if (body or {}).get("stream") and not action.get("ignore_stream"):
            self._stream(action, body, pieces, prompt_tokens)
            return
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(pieces),
                 "total_tokens": prompt_tokens + len(pieces)}
        self._json(200, {"id": "cmpl-test", "object": "chat.completion", "model": body.get("model"),
                         "choices": [{"index": 0, "message": {"role": "assistant", "content": reply},
                                      "finish_reason": "stop"}],
                         **({"usage": usage} if action.get("usage", True) else {})})

    def _stream(self, action: dict, body: dict, pieces: list[str], prompt_tokens: int) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def event(obj: Any) -> None:
            self._chunk(f"data: {json.dumps(obj) if not isinstance(obj, str) else obj}\n\n".encode())

        base = {"id": "cmpl-test", "object": "chat.completion.chunk", "model": body.get("model")}
        options = body.get("stream_options") or {}
        continuous = bool(options.get("continuous_usage_stats")) and action.get("continuous_usage", True)
        try:
            self._chunk(b": keep-alive comment\n\n")
            event({**base, "choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]})
            for i, piece in enumerate(pieces):
                if action.get("chunk_delay"):
                    time.sleep(action["chunk_delay"])
                if action.get("bad_event") and i == 1:
                    event("{not json")
                if action.get("stream_error") and i == 1:
                    event({"error": {"message": action["stream_error"]}})
                chunk = {**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
                if continuous:  # vLLM's continuous_usage_stats: usage so far in every chunk
                    chunk["usage"] = {"prompt_tokens": prompt_tokens, "completion_tokens": i + 1,
                                      "total_tokens": prompt_tokens + i + 1}
                event(chunk)
            if action.get("finish", True):
                event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
            if action.get("usage", True) and (body.get("stream_options") or {}).get("include_usage"):
                event({**base, "choices": [], "usage": {"prompt_tokens": prompt_tokens,
                                                        "completion_tokens": len(pieces),
                                                        "total_tokens": prompt_tokens + len(pieces)}})
            if action.get("done", True):
                event("[DONE]")
                self._chunk(b"")
            else:
                self.close_connection = True
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
            with self.server.lock:
                self.server.aborted += 1


class ChatServer(ThreadingHTTPServer):
    """An OpenAI-compatible chat server on 127.0.0.1 (see the module docstring)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.lock = threading.Lock()
        self.plan: list[dict] = []
        self.default: dict = {"reply": "```sql\nSELECT 1\n```"}
        self.models: list[str] | None = ["tiny-sql"]
        self.api_key: str | None = None
        self.requests: list[dict] = []
        self.connections = 0
        self.aborted = 0
        self.open_sockets: set[socket.socket] = set()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT/v1``."""
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def setting(self, model: str | None = "tiny-sql", **options: Any) -> str:
        """A ``model`` setting naming this server."""
        query = "&".join(f"{k}={v}" for k, v in options.items())
        return f"openai+{self.url}" + (f"?{query}" if query else "") + (f"#{model}" if model else "")

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):  # a client that hung up is normal
            super().handle_error(request, client_address)

    def next_action(self) -> dict:
        with self.lock:
            return self.plan.pop(0) if self.plan else dict(self.default)

    def record(self, handler: _Handler, body: Any) -> None:
        with self.lock:
            self.requests.append({"method": handler.command, "path": handler.path, "body": body,
                                  "authorization": handler.headers.get("Authorization")})

    def chat_requests(self) -> list[dict]:
        with self.lock:
            return [r for r in self.requests if r["path"].endswith("/chat/completions")]

    def start(self) -> ChatServer:
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and drop every open connection (keep-alive ones too), as a server that dies does."""
        self.shutdown()
        self.server_close()
        with self.lock:
            sockets = list(self.open_sockets)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(5)


@contextmanager
def chat_server() -> Iterator[ChatServer]:
    """A running :class:`ChatServer`, stopped afterwards."""
    server = ChatServer().start()
    try:
        yield server
    finally:
        server.stop()


def redis_server_binary() -> str | None:
    """The ``redis-server`` executable, or None (Debian: ``apt-get install -y redis-server``)."""
    return shutil.which("redis-server")


@contextmanager
def redis_server(directory: Path) -> Iterator[str]:
    """A private ``redis-server`` on a free loopback port, its files in ``directory``; yields its URL."""
    import redis

    binary = redis_server_binary()
    assert binary is not None
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory),
                             "--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "yes",
                             "--maxmemory", "64mb", "--loglevel", "warning"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url, socket_connect_timeout=0.2)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                    raise RuntimeError(f"redis-server did not start on port {port}: {err.strip()[:300]}")
                time.sleep(0.05)
        yield url
    finally:
        client.close()
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def main() -> None:
    """``python tests/service/loopback_servers.py [--port 8000] [--reply TEXT]``: serve the stand-in model server
    in the foreground (plumbing checks without a model: every answer is ``--reply``)."""
    import argparse

    parser = argparse.ArgumentParser(description="A stand-in OpenAI-compatible server on 127.0.0.1 (tests only).")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--reply", default="```sql\nSELECT count(*) AS n FROM customers\n```")
    parser.add_argument("--chunk-delay", type=float, default=0.0, help="seconds between streamed words")
    args = parser.parse_args()
    server = ChatServer(args.port)
    server.default = {"reply": args.reply, "chunk_delay": args.chunk_delay}
    print(f"stand-in model server on {server.url} (model tiny-sql); Ctrl-C stops it", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
