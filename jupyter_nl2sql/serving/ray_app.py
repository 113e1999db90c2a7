"""The Ray Serve deployment of :class:`~jupyter_nl2sql.serving.ray_serve.BatchedModel` (imports Ray and FastAPI).

``serve run jupyter_nl2sql.serving.ray_app:build_app model=qwen2.5-coder-0.5b max_batch_size=16`` or
``python -m jupyter_nl2sql serve``; see :mod:`jupyter_nl2sql.serving.ray_serve` for what it serves.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the route signatures' annotations at runtime.

import asyncio
from typing import Any, List

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from ray import serve

from ..models.base import Generation
from .ray_serve import BatchedModel, BadRequest, ChatRequest, parse_options

api = FastAPI(title="jupyter-nl2sql model service")


def _error(status: int, message: str, kind: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind}}, status_code=status)


@serve.deployment(name="ServedModel")
@serve.ingress(api)
class ServedModel:
    """One model replica: batches concurrent chat requests into one ``generate``."""

    def __init__(self, options: dict) -> None:
        opts = parse_options(options)
        self.model = BatchedModel(opts.model, opts.device, opts.dtype, opts.threads)
        self.generate.set_max_batch_size(opts.max_batch_size)
        self.generate.set_batch_wait_timeout_s(opts.batch_wait_timeout_s)

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.05)
    async def generate(self, requests: List[ChatRequest]) -> List[Generation]:
        # the model runs in a worker thread: the replica's event loop goes on queueing the next batch
        return await asyncio.to_thread(self.model.run_batch, requests)

    @api.get("/healthz")
    def healthz(self) -> dict:
        return {"status": "ok", "model": self.model.served_model, "replica": self.model.replica}

    @api.get("/stats")
    def stats(self) -> dict:
        return self.model.stats()

    @api.get("/v1/models")
    def models(self) -> dict:
        return {"object": "list", "data": [{"id": self.model.served_model, "object": "model",
                                            "created": int(self.model.started), "owned_by": "jupyter-nl2sql"}]}

    @api.post("/v1/chat/completions")
    async def chat(self, request: Request) -> Any:
        try:
            chat = ChatRequest.parse(await request.json(), self.model.served_model)
        except (BadRequest, ValueError) as exc:
            return _error(400, str(exc), "invalid_request_error")
        try:
            reply = await self.generate(chat)
        except Exception as exc:  # the model failed: 500 with one line
            return _error(500, f"{type(exc).__name__}: {exc}".splitlines()[0], "server_error")
        if chat.stream:
            return StreamingResponse(iter(self.model.events(chat, reply)), media_type="text/event-stream")
        return self.model.completion(chat, reply)


def build_app(args: dict | None = None) -> Any:
    """The Serve application; ``args``: the keys of :func:`~jupyter_nl2sql.serving.ray_serve.parse_options`."""
    opts = parse_options(args)
    max_ongoing = max(4 * opts.max_batch_size, 64)
    return ServedModel.options(max_ongoing_requests=max_ongoing, ray_actor_options={"num_cpus": opts.num_cpus},
                               **opts.scaling()).bind(dict(args or {}))
