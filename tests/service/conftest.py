"""Fixtures for the serving tests: a model server and a redis-server, both real and on 127.0.0.1 only."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from loopback_servers import ChatServer, chat_server, redis_server, redis_server_binary


@pytest.fixture()
def model_server() -> Iterator[ChatServer]:
    """An OpenAI-compatible chat server (stands in for vLLM / llama.cpp's server) on a free loopback port."""
    with chat_server() as server:
        yield server


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private redis-server on a free loopback port (skips when the binary is missing)."""
    pytest.importorskip("redis", reason="the redis client is not installed (pip install redis)")
    if redis_server_binary() is None:
        pytest.skip("redis-server is not installed (Debian: apt-get install -y redis-server)")
    with redis_server(tmp_path_factory.mktemp("redis-service")) as url:
        yield url
