"""OpenAICompatibleBackend against a real HTTP server on 127.0.0.1 (tests/service/loopback_servers.py).

The server is a stdlib ``http.server`` speaking the OpenAI chat completions API (JSON and server-sent events over
chunked keep-alive HTTP/1.1); nothing of the backend is replaced.
"""

from __future__ import annotations

import doctest
import logging
import threading
import time

import pytest

from jupyter_nl2sql.errors import Cancelled, ConfigError, ModelError
from jupyter_nl2sql.models import Backend, accepts_cancel, http_backend
from jupyter_nl2sql.models.http_backend import OpenAICompatibleBackend, is_http_model, parse_http_model


import loopback_servers as servers  # tests/service, put on sys.path by tests/conftest.py  # noqa: E402

MESSAGES = [{"role": "system", "content": "You write SQLite."}, {"role": "user", "content": "How many users?"}]
REPLY = "Here is the query:\n```sql\nSELECT count(*) FROM users\n```\nThis counts every row of the users table."


@pytest.fixture()
def server():
    with servers.chat_server() as s:
        yield s


@pytest.fixture(autouse=True)
def _no_key(monkeypatch):
    monkeypatch.delenv("NL2SQL_API_KEY", raising=False)


def backend_for(server, **kw) -> OpenAICompatibleBackend:
    kw.setdefault("backoff", 0.01)
    return OpenAICompatibleBackend(server.url, "tiny-sql", **kw)


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text and text, text
    return text


#: How long the server stalls (or the client backs off) where a test checks that a timeout or a cancel acts first.
SERVER_STALL = 60.0


def outcome_of(call, hang_after: float = SERVER_STALL / 4) -> BaseException | None:
    """Run ``call`` in a thread and return the exception it ended with (None when it returned).  Not a timing:
    ``hang_after`` only stops a call that waits for a :data:`SERVER_STALL` it should not have waited for."""
    box: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
            box.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            box.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(hang_after)
    assert box, f"still waiting after {hang_after:g} s: the timeout or cancel did not act"
    return box[0]


def wait_for(predicate, seconds: float = 3.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


# -- the setting ------------------------------------------------------------------------------------------------
def test_doctests():
    result = doctest.testmod(http_backend)
    assert result.attempted > 0 and result.failed == 0


def test_parse_setting_variants():
    s = parse_http_model("openai+http://127.0.0.1:8000/v1#Qwen/Qwen2.5-Coder-1.5B-Instruct")
    assert (s.base_url, s.model, s.stream, s.retries) == ("http://127.0.0.1:8000/v1",
                                                           "Qwen/Qwen2.5-Coder-1.5B-Instruct", True, 2)
    s = parse_http_model("OPENAI+HTTP://localhost:9000/api/?stream=0&retries=0&connect_timeout=1.5")
    assert (s.base_url, s.model, s.stream, s.retries, s.connect_timeout) == (
        "http://localhost:9000/api/v1", None, False, 0, 1.5)
    assert parse_http_model("openai+http://[::1]:8000/v1#m").base_url == "http://[::1]:8000/v1"
    assert is_http_model(" openai+https://x/v1") and not is_http_model("/models/x.gguf") and not is_http_model(None)


@pytest.mark.parametrize("setting", ["openai+http:///v1#m", "openai+http://h:8000/v1?temperature=1",
                                     "openai+http://h:8000/v1?timeout=0", "openai+http://h:8000/v1?retries=-1",
                                     "openai+http://h:8000/v1?stream=maybe", "openai+http://h:notaport/v1"])
def test_bad_settings_raise_config_error(setting):
    with pytest.raises(ConfigError) as info:
        parse_http_model(setting)
    one_line(info.value)


def test_from_setting_asks_the_server_for_its_model(server):
    backend = OpenAICompatibleBackend.from_setting(server.setting(model=None))
    assert backend.model_name == "tiny-sql" and backend.server_models == ["tiny-sql"]
    assert isinstance(backend, Backend) and accepts_cancel(backend.generate)
    assert backend.device == "remote"
    prov = backend.provenance
    assert prov["base_url"] == server.url and prov["backend"] == "openai-http" and prov["served_model"] == "tiny-sql"
    assert backend.model_id == f"openai+{server.url}#tiny-sql"
    assert "[user]\nHow many users?" in backend.render_prompt(MESSAGES)


def test_from_setting_without_a_server_fails_in_one_line():
    port = servers.free_port()
    with pytest.raises(ModelError) as info:
        OpenAICompatibleBackend.from_setting(f"openai+http://127.0.0.1:{port}/v1?retries=1#m")
    text = one_line(info.value)
    assert "cannot reach the model server" in text and "connection refused" in text and "after 2 tries" in text


def test_from_setting_without_models_endpoint_needs_a_name(server):
    server.models = None
    with pytest.raises(ModelError, match="404"):
        OpenAICompatibleBackend.from_setting(server.setting(model=None))
    assert OpenAICompatibleBackend.from_setting(server.setting(model="named")).model_name == "named"


# -- replies ----------------------------------------------------------------------------------------------------
def test_json_reply_is_greedy_cut_at_the_block_and_counts_usage(server):
    server.default = {"reply": REPLY}
    gen = backend_for(server, stream=False).generate(MESSAGES, max_new_tokens=64)
    assert gen.text == "Here is the query:\n```sql\nSELECT count(*) FROM users\n```"
    body = server.chat_requests()[0]["body"]
    assert body["temperature"] == 0 and body["max_tokens"] == 64 and body["stream"] is False
    assert body["stop"] == ["\n```\n"] and body["messages"] == MESSAGES and body["model"] == "tiny-sql"
    assert gen.tokens_in == 6 and gen.tokens_out == 9 and gen.seconds > 0  # word counts (the server's "tokens")


def test_stream_is_cut_at_the_end_of_the_sql_block_and_the_server_stops(server):
    server.default = {"reply": REPLY + " More words." * 20, "chunk_delay": 0.01}
    gen = backend_for(server).generate(MESSAGES)
    assert gen.text == "Here is the query:\n```sql\nSELECT count(*) FROM users\n```"
    assert (gen.tokens_in, gen.tokens_out) == (6, 10)  # from the usage in every chunk (vLLM)
    assert server.chat_requests()[0]["body"]["stream_options"] == {"include_usage": True,
                                                                    "continuous_usage_stats": True}
    assert wait_for(lambda: server.aborted == 1), "the server should see the client hang up"


def test_cut_stream_without_running_usage_counts_events(server):
    server.default = {"reply": REPLY + " More words." * 20, "continuous_usage": False}  # llama.cpp's server
    gen = backend_for(server).generate(MESSAGES)
    assert gen.text.endswith("users\n```")
    assert (gen.tokens_in, gen.tokens_out) == (0, 10)  # prompt length unknown; generated: events received


def test_stream_to_done_takes_usage_and_reuses_the_connection(server):
    server.default = {"reply": "SELECT 1 AS one"}
    backend = backend_for(server)
    first = backend.generate(MESSAGES)
    second = backend.generate(MESSAGES)
    assert first.text == second.text == "SELECT 1 AS one"
    assert (first.tokens_in, first.tokens_out) == (6, 4)
    assert server.connections == 1  # keep-alive: one TCP connection for both calls
    backend.close()


def test_stream_with_finish_but_no_done_is_complete(server):
    server.default = {"reply": "SELECT 2", "done": False}
    assert backend_for(server).generate(MESSAGES).text == "SELECT 2"


def test_concurrent_calls_use_separate_connections(server):
    server.default = {"reply": "```sql\nSELECT 3\n```", "chunk_delay": 0.02}
    backend = backend_for(server)
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(backend.generate(MESSAGES).text)) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == ["```sql\nSELECT 3\n```"] * 6
    assert server.connections >= 2


# -- failures and retries ---------------------------------------------------------------------------------------
def test_5xx_is_retried_with_backoff(server, caplog):
    server.plan = [{"status": 500}, {"status": 503, "retry_after": 0}]
    backend = backend_for(server, retries=2, backoff=0.1)
    with caplog.at_level(logging.INFO, logger=http_backend.logger.name):
        assert backend.generate(MESSAGES).text == "```sql\nSELECT 1\n```"
    assert len(server.chat_requests()) == 3
    pauses = [r.getMessage() for r in caplog.records if "trying again" in r.getMessage()]
    # the backoff pause, then the server's Retry-After: 0
    assert [p.split("trying again ")[1] for p in pauses] == ["in 0.1 s (1 of 2)", "in 0.0 s (2 of 2)"], pauses


def test_5xx_after_the_last_retry_is_one_line(server):
    server.default = {"status": 502, "message": "upstream model crashed\ntraceback..."}
    with pytest.raises(ModelError) as info:
        backend_for(server, retries=1).generate(MESSAGES)
    text = one_line(info.value)
    assert "502" in text and "upstream model crashed" in text and "after 2 tries" in text
    assert len(server.chat_requests()) == 2


def test_dropped_connection_is_retried(server):
    server.plan = [{"drop": True}]
    assert backend_for(server, retries=1).generate(MESSAGES).text == "```sql\nSELECT 1\n```"
    assert len(server.chat_requests()) == 2


def test_stale_keep_alive_connection_is_not_a_failure(server):
    backend = backend_for(server, retries=0)
    backend.generate(MESSAGES)
    server.plan = [{"drop": True}]  # the server closes the connection the client kept
    with pytest.raises(ModelError):
        backend.generate(MESSAGES)  # a real drop with retries=0 fails...
    assert backend.generate(MESSAGES).text  # ...but the next call opens a fresh connection


def test_read_timeout_is_not_retried(server):
    server.plan = [{"delay": SERVER_STALL}]  # a reply this late would make generate succeed: the timeout must act
    outcome = outcome_of(lambda: backend_for(server, timeout=0.3, retries=2).generate(MESSAGES))
    assert isinstance(outcome, ModelError) and "within 0.3 s" in one_line(outcome)
    assert len(server.chat_requests()) == 1


def test_stalled_stream_times_out(server):
    server.plan = [{"reply": "SELECT a, b, c FROM t", "chunk_delay": 0.6}]
    with pytest.raises(ModelError) as info:
        backend_for(server, timeout=0.3).generate(MESSAGES)
    assert "no data for 0.3 s" in one_line(info.value)


@pytest.mark.parametrize("stream, action, needle", [
    (False, {"bad_json": True}, "not JSON"),
    (True, {"bad_json": True}, "not JSON"),
    (True, {"bad_event": True, "reply": "SELECT 1 FROM t"}, "not JSON"),
    (True, {"stream_error": "out of memory\nat line 3", "reply": "SELECT 1 FROM t"}, "failed mid-reply: out of memory"),
    (True, {"reply": "SELECT 1", "done": False, "finish": False}, "mid-reply"),
])
def test_broken_replies_raise_one_line_model_errors(server, stream, action, needle):
    server.plan = [action]
    with pytest.raises(ModelError) as info:
        backend_for(server, stream=stream, retries=0).generate(MESSAGES)
    assert needle in one_line(info.value)


def test_a_server_that_ignores_stream_is_read_as_json(server):
    server.plan = [{"reply": "```sql\nSELECT 4\n```", "ignore_stream": True}]
    gen = backend_for(server).generate(MESSAGES)
    assert gen.text == "```sql\nSELECT 4\n```" and gen.tokens_in == 6


def test_client_errors_say_what_to_do(server):
    server.plan = [{"status": 404, "message": "The model `nope` does not exist."},
                   {"status": 400, "message": "This model's maximum context length is 2048 tokens"}]
    backend = backend_for(server, retries=3)
    with pytest.raises(ModelError) as info:
        backend.generate(MESSAGES)
    assert "404" in one_line(info.value) and "does not exist" in str(info.value) and "/v1" in str(info.value)
    with pytest.raises(ModelError) as info:
        backend.generate(MESSAGES)
    assert "max_schema_chars" in one_line(info.value)
    assert len(server.chat_requests()) == 2  # 4xx are not retried


# -- cancel -----------------------------------------------------------------------------------------------------
def test_cancel_between_chunks_stops_the_stream(server):
    server.default = {"reply": "SELECT " + ", ".join(f"c{i}" for i in range(100)) + " FROM t", "chunk_delay": 0.05}
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    with pytest.raises(Cancelled):
        backend_for(server).generate(MESSAGES, cancel=cancel)
    assert wait_for(lambda: server.aborted == 1)  # the client closed the stream before its end


def test_cancel_while_the_server_thinks(server):
    server.plan = [{"delay": SERVER_STALL}]
    cancel = threading.Event()
    threading.Timer(0.2, cancel.set).start()
    assert isinstance(outcome_of(lambda: backend_for(server, stream=False).generate(MESSAGES, cancel=cancel)),
                      Cancelled)


def test_cancel_before_the_call_sends_nothing(server):
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        backend_for(server).generate(MESSAGES, cancel=cancel)
    assert server.chat_requests() == []


def test_cancel_during_backoff(server):
    port = servers.free_port()
    backend = OpenAICompatibleBackend(f"http://127.0.0.1:{port}/v1", "m", retries=5, backoff=SERVER_STALL)
    cancel = threading.Event()
    threading.Timer(0.2, cancel.set).start()
    assert isinstance(outcome_of(lambda: backend.generate(MESSAGES, cancel=cancel)), Cancelled)


# -- API key ----------------------------------------------------------------------------------------------------
def test_api_key_from_the_environment_is_sent_and_never_shown(server, monkeypatch, caplog):
    key = "sk-test-very-secret-123"
    server.api_key = key
    monkeypatch.setenv("NL2SQL_API_KEY", key)
    caplog.set_level(logging.DEBUG)
    backend = OpenAICompatibleBackend.from_setting(server.setting(), progress=True)
    assert backend.generate(MESSAGES).text
    assert server.chat_requests()[0]["authorization"] == f"Bearer {key}"
    shown = repr(backend) + str(backend.provenance) + backend.model_id + backend.render_prompt(MESSAGES) + caplog.text
    assert key not in shown


def test_wrong_or_missing_key_is_explained_without_the_key(server, monkeypatch):
    server.api_key = "right"
    with pytest.raises(ModelError) as info:
        backend_for(server).generate(MESSAGES)
    assert "needs an API key" in one_line(info.value) and "NL2SQL_API_KEY" in str(info.value)
    monkeypatch.setenv("NL2SQL_API_KEY", "wrong-key-value")
    with pytest.raises(ModelError) as info:
        backend_for(server).generate(MESSAGES)
    assert "refused the API key" in one_line(info.value) and "wrong-key-value" not in str(info.value)


def test_key_in_the_url_is_used_but_not_kept_in_provenance(server):
    server.api_key = "url-secret"
    setting = server.setting().replace("http://", "http://:url-secret@")
    backend = OpenAICompatibleBackend.from_setting(setting)
    assert backend.generate(MESSAGES).text
    assert "url-secret" not in str(backend.provenance) + backend.model_id + repr(backend)
