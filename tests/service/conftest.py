"""Fixtures for the serving tests: a model server on 127.0.0.1 (the redis-server fixture is in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from loopback_servers import ChatServer, chat_server


@pytest.fixture()
def model_server() -> Iterator[ChatServer]:
    """An OpenAI-compatible chat server (stands in for vLLM / llama.cpp's server) on a free loopback port."""
    with chat_server() as server:
        yield server
