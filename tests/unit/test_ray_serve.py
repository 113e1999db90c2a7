"""The model service's request handling and batching, without Ray (plumbing: a tiny random-weight model).

What a served reply says is not checked here (random weights); the real deployment on Ray Serve with a real model
is exercised by tests/load.
"""

from __future__ import annotations

import json

import pytest

from jupyter_nl2sql.errors import ConfigError
from jupyter_nl2sql.serving.ray_serve import BadRequest, BatchedModel, ChatRequest, parse_options

USER = [{"role": "user", "content": "How many rows?"}]


def test_requests_are_validated_with_one_line_reasons():
    ok = ChatRequest.parse({"model": "m", "messages": USER, "max_tokens": 64, "stream": True,
                            "stream_options": {"include_usage": True}}, "m")
    assert (ok.max_tokens, ok.stream, ok.include_usage) == (64, True, True)
    assert ChatRequest.parse({"messages": USER}, "m").max_tokens == 256
    bad = [([], "JSON object"), ({"model": "other", "messages": USER}, "serves 'm'"),
           ({"messages": []}, "non-empty"), ({"messages": [{"role": "tool", "content": "x"}]}, "role"),
           ({"messages": [{"role": "user", "content": 3}]}, "string content"),
           ({"messages": USER, "max_tokens": 0}, "max_tokens"), ({"messages": USER, "max_tokens": True}, "max_tokens"),
           ({"messages": USER, "max_tokens": 10_000}, "max_tokens"), ({"messages": USER, "n": 2}, "n=1")]
    for body, reason in bad:
        with pytest.raises(BadRequest, match=reason):
            ChatRequest.parse(body, "m")


def test_service_options():
    opts = parse_options({"replicas": "2", "max_replicas": "4", "max_batch_size": "8", "batch_wait_timeout_s": "0.1"})
    assert opts.scaling() == {"autoscaling_config": {"min_replicas": 2, "max_replicas": 4,
                                                     "target_ongoing_requests": 8}}
    assert parse_options(None).scaling() == {"num_replicas": 1}
    with pytest.raises(ConfigError, match="unknown option"):
        parse_options({"replica": 2})
    with pytest.raises(ConfigError, match="max_replicas >= replicas"):
        parse_options({"replicas": 3, "max_replicas": 2})
    with pytest.raises(ConfigError, match="bad model service option"):
        parse_options({"max_batch_size": "many"})


@pytest.fixture(scope="module")
def batched(tmp_path_factory) -> BatchedModel:
    from jupyter_nl2sql.models.testing import make_tiny_random_model

    path = make_tiny_random_model(tmp_path_factory.mktemp("tiny-serve") / "model")
    return BatchedModel(str(path), "cpu", "float32", threads=1)


def test_a_batch_keeps_order_and_computes_identical_prompts_once(batched):
    a = ChatRequest.parse({"messages": USER, "max_tokens": 6}, batched.served_model)
    b = ChatRequest.parse({"messages": [{"role": "user", "content": "A much longer question about the rows"}],
                           "max_tokens": 4}, batched.served_model)
    before = batched.stats()
    replies = batched.run_batch([a, b, a])
    assert replies[0] is replies[2] and replies[0] is not replies[1]
    assert all(r.tokens_out <= 6 for r in replies)
    assert replies[1].tokens_in > replies[0].tokens_in  # each row's own prompt length, not the padded width
    after = batched.stats()
    assert after["requests"] - before["requests"] == 3
    assert after["distinct_prompts"] - before["distinct_prompts"] == 2
    assert after["batch_sizes"]["3"] == before["batch_sizes"].get("3", 0) + 1
    # a batch of one is the backend's own generate (no padding involved)
    alone = batched.backend.generate(a.messages, 6)
    assert (alone.text, alone.tokens_in, alone.tokens_out) == (replies[0].text, replies[0].tokens_in,
                                                               replies[0].tokens_out)


def test_replies_in_the_openai_shapes(batched):
    request = ChatRequest.parse({"messages": USER, "max_tokens": 5, "stream": True,
                                 "stream_options": {"include_usage": True}}, batched.served_model)
    reply = batched.run_batch([request])[0]
    body = batched.completion(request, reply)
    assert body["choices"][0]["message"]["content"] == reply.text
    assert body["usage"]["completion_tokens"] == reply.tokens_out
    events = batched.events(request, reply)
    assert events[-1] == "data: [DONE]\n\n" and all(e.startswith("data: ") and e.endswith("\n\n") for e in events)
    chunks = [json.loads(e[6:]) for e in events[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == reply.text
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")
    assert chunks[-1]["usage"]["prompt_tokens"] == reply.tokens_in
