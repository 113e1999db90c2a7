"""``python -m jupyter_nl2sql serve``: start Ray (or join ``--address``), deploy the model service
(:mod:`jupyter_nl2sql.serving.ray_app`, which imports Ray and FastAPI: only when this command runs), print the model
setting, wait."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from typing import Any

from ..errors import ConfigError
from .ray_serve import APP_NAME, DEFAULT_BATCH_WAIT_S, DEFAULT_MAX_BATCH_SIZE, DEFAULT_PORT


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m jupyter_nl2sql serve",
                                description="Serve the model to a team on Ray Serve (OpenAI-compatible API).")
    p.add_argument("--model", help="Hub id, known alias, local folder or .gguf (default: the default model)")
    p.add_argument("--device", help="cpu, cuda, cuda:N (default: automatic)")
    p.add_argument("--dtype", help="bfloat16, float16, float32 (default: automatic)")
    p.add_argument("--threads", type=int, help="torch threads per replica (default: every core)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for a team)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"HTTP port (default {DEFAULT_PORT})")
    p.add_argument("--replicas", type=int, default=1, help="model replicas (default 1)")
    p.add_argument("--max-replicas", type=int, help="autoscale up to this many replicas")
    p.add_argument("--max-batch-size", type=int, default=DEFAULT_MAX_BATCH_SIZE,
                   help=f"requests batched together (default {DEFAULT_MAX_BATCH_SIZE})")
    p.add_argument("--batch-wait", type=float, default=DEFAULT_BATCH_WAIT_S,
                   help=f"seconds a batch waits to fill (default {DEFAULT_BATCH_WAIT_S})")
    p.add_argument("--num-cpus", type=float, default=0, help="Ray CPUs reserved per replica (default 0)")
    p.add_argument("--address", help="an existing Ray cluster ('auto' or ray://...); default: start one here")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m jupyter_nl2sql serve``: start Ray (or join ``--address``), deploy, print the model setting, wait."""
    a = _parser().parse_args(argv)
    ray, serve, build_app = _ray()
    app = build_app({"model": a.model, "device": a.device, "dtype": a.dtype, "threads": a.threads,
                     "replicas": a.replicas, "max_replicas": a.max_replicas, "max_batch_size": a.max_batch_size,
                     "batch_wait_timeout_s": a.batch_wait, "num_cpus": a.num_cpus})
    ray.init(address=a.address, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    serve.start(http_options={"host": a.host, "port": a.port})
    serve.run(app, name=APP_NAME, route_prefix="/")
    served = _served_model(a.host, a.port)
    print(f"model service ready: set the model to openai+http://{a.host}:{a.port}/v1#{served}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        serve.shutdown()
        ray.shutdown()
    return 0


def _ray() -> tuple[Any, Any, Any]:
    try:
        import ray
        from ray import serve

        from .ray_app import build_app
    except ImportError as exc:
        raise ConfigError(f'Ray Serve is not installed ({exc.name}): pip install "ray[serve]"') from None
    return ray, serve, build_app


def _served_model(host: str, port: int) -> str:
    import urllib.request

    connect = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    with urllib.request.urlopen(f"http://{connect}:{port}/v1/models", timeout=30) as resp:
        return json.load(resp)["data"][0]["id"]
