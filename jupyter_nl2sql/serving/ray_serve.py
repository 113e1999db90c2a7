"""The transformers backend served to a whole team on Ray Serve, behind an OpenAI-compatible API.

One command starts it (Ray, the Serve HTTP proxy and the model replicas)::

    python -m jupyter_nl2sql serve --model qwen2.5-coder-1.5b --port 8000            # this machine
    python -m jupyter_nl2sql serve --address auto --replicas 2 --max-replicas 8      # an existing Ray cluster

and kernels use it with the model setting it prints, ``openai+http://HOST:8000/v1#<model id>`` (the
:mod:`~jupyter_nl2sql.models.http_backend`).  The same application starts with Ray's own CLI:
``serve run jupyter_nl2sql.serving.ray_app:build_app model=qwen2.5-coder-0.5b max_batch_size=16``.

What the deployment does:

- **Dynamic batching** (``@serve.batch``): concurrent chat requests that reach a replica within
  ``batch_wait_timeout_s`` of each other (up to ``max_batch_size``) run as one batched greedy ``generate``
  (:meth:`~jupyter_nl2sql.models.transformers_backend.TransformersBackend.generate_batch`); identical prompts in a
  batch are computed once.  The model runs in a worker thread, so the replica goes on queueing the next batch.
- **Replicas** (``--replicas``; autoscaling between ``--replicas`` and ``--max-replicas`` on ongoing requests)
  placed by Ray across the cluster's nodes.
- **API**: ``GET /v1/models``, ``POST /v1/chat/completions`` (``stream`` true: server-sent events, sent once the
  batch is done; false: one JSON reply), ``GET /healthz`` and ``GET /stats`` (requests, batches and their sizes per
  replica).  Decoding is greedy whatever ``temperature`` asks: answers are reproducible.

Ray and FastAPI are imported only by :mod:`jupyter_nl2sql.serving.ray_app` (the deployment), which the command
(:mod:`jupyter_nl2sql.serving.serve_cli`) imports when it runs (``pip install "ray[serve]"``); :class:`BatchedModel`,
the part that turns request bodies into replies, works without them.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from ..models.base import Generation, Message

DEFAULT_PORT = 8000
DEFAULT_MAX_BATCH_SIZE = 16
DEFAULT_BATCH_WAIT_S = 0.05
MAX_TOKENS_LIMIT = 1024
APP_NAME = "nl2sql-model"


class BadRequest(ValueError):
    """A request body the API refuses (answered with HTTP 400 and this one-line message)."""


@dataclass(frozen=True)
class ChatRequest:
    """The parts of an OpenAI chat-completion request the server uses."""

    messages: list[Message]
    max_tokens: int
    stream: bool
    include_usage: bool

    @classmethod
    def parse(cls, body: Any, served_model: str) -> ChatRequest:
        """Validate a request body; raises :class:`BadRequest` with a one-line reason."""
        if not isinstance(body, dict):
            raise BadRequest("the body must be a JSON object")
        model = body.get("model")
        if model not in (None, "", served_model):
            raise BadRequest(f"this server serves {served_model!r}, not {model!r}")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise BadRequest("messages must be a non-empty list")
        clean: list[Message] = []
        for m in messages:
            if not (isinstance(m, dict) and m.get("role") in ("system", "user", "assistant")
                    and isinstance(m.get("content"), str)):
                raise BadRequest("each message needs a role (system, user or assistant) and a string content")
            clean.append({"role": m["role"], "content": m["content"]})
        max_tokens = body.get("max_tokens", body.get("max_completion_tokens", 256))
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or not 1 <= max_tokens <= MAX_TOKENS_LIMIT:
            raise BadRequest(f"max_tokens must be an integer from 1 to {MAX_TOKENS_LIMIT}")
        if body.get("n", 1) != 1:
            raise BadRequest("only n=1 is served")
        options = body.get("stream_options") or {}
        return cls(clean, max_tokens, bool(body.get("stream", False)),
                   bool(isinstance(options, dict) and options.get("include_usage")))


class BatchedModel:
    """A loaded transformers backend that answers chat requests in batches, and counts what it did.

    ``model``/``device``/``dtype`` as for :func:`jupyter_nl2sql.models.get_backend` (the transformers backend is
    always used: it is the one that batches).  ``threads``: torch's intra-op threads (default: every core).
    """

    def __init__(self, model: str | None = None, device: str | None = None, dtype: str | None = None,
                 threads: int | None = None) -> None:
        from ..models import get_backend

        self.backend, self.load_seconds = get_backend(model, device, dtype, progress=False, backend="transformers")
        import torch

        torch.set_num_threads(int(threads or os.cpu_count() or 1))
        self.served_model = self.backend.model_id
        self.started = time.time()
        self.replica = uuid.uuid4().hex[:8]
        self._lock = threading.Lock()
        self.requests = 0
        self.batches: Counter[int] = Counter()
        self.distinct_prompts = 0

    def run_batch(self, requests: Sequence[ChatRequest]) -> list[Generation]:
        """One batched greedy generation for ``requests`` (blocking; run it in a worker thread)."""
        limit = max(r.max_tokens for r in requests)
        replies = self.backend.generate_batch([r.messages for r in requests], limit)
        with self._lock:
            self.requests += len(requests)
            self.batches[len(requests)] += 1
            self.distinct_prompts += len({id(g) for g in replies})
        return replies

    def stats(self) -> dict[str, Any]:
        """Requests and batches served by this replica (``batch_sizes``: size -> count)."""
        with self._lock:
            return {"replica": self.replica, "model": self.served_model, "requests": self.requests,
                    "batches": sum(self.batches.values()), "distinct_prompts": self.distinct_prompts,
                    "batch_sizes": {str(k): v for k, v in sorted(self.batches.items())},
                    "load_seconds": self.load_seconds, "provenance": _jsonable(self.backend.provenance)}

    # -- OpenAI-shaped replies --------------------------------------------------------------------------------
    def completion(self, request: ChatRequest, reply: Generation) -> dict[str, Any]:
        """The ``chat.completion`` object for ``reply``."""
        return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
                "model": self.served_model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": reply.text},
                             "finish_reason": _finish(request, reply)}],
                "usage": _usage(reply)}

    def events(self, request: ChatRequest, reply: Generation) -> list[str]:
        """The server-sent events (``data: ...``) of a streamed reply, ``[DONE]`` last."""
        ident, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

        def chunk(delta: dict, finish: str | None, usage: dict | None = None) -> str:
            obj: dict[str, Any] = {"id": ident, "object": "chat.completion.chunk", "created": created,
                                   "model": self.served_model,
                                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            if usage is not None:
                obj["usage"] = usage
            return f"data: {json.dumps(obj)}\n\n"

        usage = _usage(reply) if request.include_usage else None
        pieces = [reply.text[i:i + 64] for i in range(0, len(reply.text), 64)] or [""]
        out = [chunk({"role": "assistant", "content": pieces[0]}, None, usage)]
        out += [chunk({"content": p}, None, usage) for p in pieces[1:]]
        out.append(chunk({}, _finish(request, reply), usage))
        out.append("data: [DONE]\n\n")
        return out


def _usage(reply: Generation) -> dict[str, int]:
    return {"prompt_tokens": reply.tokens_in, "completion_tokens": reply.tokens_out,
            "total_tokens": reply.tokens_in + reply.tokens_out}


def _finish(request: ChatRequest, reply: Generation) -> str:
    return "length" if reply.tokens_out >= request.max_tokens else "stop"


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


# -- options of the Ray Serve application -------------------------------------------------------------------------
OPTION_KEYS = ("model", "device", "dtype", "threads", "replicas", "max_replicas", "max_batch_size",
               "batch_wait_timeout_s", "num_cpus")


@dataclass(frozen=True)
class ServiceOptions:
    """The settings of the model service (``serve run ... key=value`` or the CLI flags); see :func:`parse_options`."""

    model: str | None
    device: str | None
    dtype: str | None
    threads: int | None
    replicas: int
    max_replicas: int
    max_batch_size: int
    batch_wait_timeout_s: float
    num_cpus: float

    def scaling(self) -> dict[str, Any]:
        """``num_replicas``, or an ``autoscaling_config`` when ``max_replicas`` exceeds ``replicas``."""
        if self.max_replicas > self.replicas:
            return {"autoscaling_config": {"min_replicas": self.replicas, "max_replicas": self.max_replicas,
                                           "target_ongoing_requests": self.max_batch_size}}
        return {"num_replicas": self.replicas}


def parse_options(args: dict[str, Any] | None) -> ServiceOptions:
    """Check the service settings (strings from ``serve run`` are converted); one-line :class:`ConfigError`.

    >>> parse_options({"replicas": "2", "max_batch_size": "8"}).scaling()
    {'num_replicas': 2}
    """
    args = {k: v for k, v in (args or {}).items() if v is not None}
    unknown = set(args) - set(OPTION_KEYS)
    if unknown:
        raise ConfigError(f"unknown option(s) {', '.join(sorted(unknown))} for the model service "
                          f"(known: {', '.join(OPTION_KEYS)})")
    try:
        replicas = int(args.get("replicas", 1))
        options = ServiceOptions(
            model=args.get("model"), device=args.get("device"), dtype=args.get("dtype"),
            threads=int(args["threads"]) if "threads" in args else None, replicas=replicas,
            max_replicas=int(args.get("max_replicas", replicas)),
            max_batch_size=int(args.get("max_batch_size", DEFAULT_MAX_BATCH_SIZE)),
            batch_wait_timeout_s=float(args.get("batch_wait_timeout_s", DEFAULT_BATCH_WAIT_S)),
            num_cpus=float(args.get("num_cpus", 0)))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"bad model service option: {exc}") from None
    if (options.replicas < 1 or options.max_replicas < options.replicas or options.max_batch_size < 1
            or options.batch_wait_timeout_s < 0 or options.num_cpus < 0 or (options.threads or 1) < 1):
        raise ConfigError("need replicas >= 1, max_replicas >= replicas, max_batch_size >= 1, threads >= 1, "
                          "batch_wait_timeout_s >= 0 and num_cpus >= 0")
    return options
