"""llama.cpp's own C++ server (started by ``xllamacpp``, the engine the package installs) serving the real
Qwen2.5-Coder-0.5B GGUF on 127.0.0.1 in a process of its own, used by kernels through the HTTP backend: right answers
on the demo database.

Each answer is compared with a reference query written by hand, as test-suite-sql-eval compares results.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import pytest

from benchmarks.scoring import results_equal
from loopback_servers import free_port

pytestmark = pytest.mark.model

QUESTIONS = [
    ("How many customers are there?", "SELECT count(*) FROM customers"),
    ("List the names of all products in the 'Audio' category.", "SELECT name FROM products WHERE category = 'Audio'"),
    ("How many customers are there in each country?", "SELECT country, count(*) FROM customers GROUP BY country"),
]


SERVER = """
import sys, time, xllamacpp
p = xllamacpp.CommonParams()
p.model.path, p.port, p.n_ctx = sys.argv[1], int(sys.argv[2]), 8192
p.hostnames, p.warmup, p.verbosity = ["127.0.0.1"], False, 0
server = xllamacpp.Server(p)
print("listening", server.listening_address, flush=True)
while True:
    time.sleep(60)
"""


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory) -> Iterator[str]:
    """llama.cpp's server with the 0.5B GGUF on a free port, in a process of its own; yields the model setting."""
    from jupyter_nl2sql.errors import ModelError
    from jupyter_nl2sql.models import resolve_model

    try:
        gguf = resolve_model("qwen2.5-coder-0.5b", progress=False).path
    except ModelError as exc:
        pytest.skip(f"the 0.5B model is not installed ({exc})")
    port = free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-c", SERVER, str(gguf), str(port)], stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=5) as resp:
                    assert json.load(resp)["data"], "the server lists no model"
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"llama.cpp's server did not start: {log.read_text()[-2000:]}")
                time.sleep(0.5)
        yield f"openai+http://127.0.0.1:{port}/v1?timeout=300#qwen-small"
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_kernels_answer_through_llama_cpp_server(llama_server, demo_sqlite_url):
    import sqlalchemy as sa

    from jupyter_nl2sql.pipeline.assistant import Assistant
    from jupyter_nl2sql.connections import ConnectionManager

    assistant = Assistant(llama_server, generation_cache=False, connections=ConnectionManager())
    engine = sa.create_engine(demo_sqlite_url)
    for question, reference in QUESTIONS:
        answer = assistant.ask(question, demo_sqlite_url)
        assert answer.error is None, (question, answer.sql, answer.error)
        assert answer.provenance["backend"] == "openai-http" and answer.stats.tokens_out > 0
        with engine.connect() as c:
            expected = [tuple(r) for r in c.exec_driver_sql(reference)]
        got = [tuple(r) for r in answer.dataframe.itertuples(index=False, name=None)]
        assert results_equal(expected, got, ordered=False), (question, answer.sql, got[:5])
    engine.dispose()
