"""A model served over HTTP by an OpenAI-compatible server (llama.cpp's server, vLLM, TGI).

Why it exists: a team shares one model server (a GPU box running vLLM, or llama.cpp's server on a big CPU) instead
of every kernel loading 1-3 GB of weights; kernels send chat messages and get text back.

The ``model`` setting names the server and the model it serves::

    openai+http://127.0.0.1:8000/v1#qwen2.5-coder-1.5b          (the model name after '#')
    openai+http://127.0.0.1:8000                                   ('/v1' is added; the model: the server's first)
    openai+https://models.example/v1?timeout=300&stream=0#coder    (options in the query, see below)

Options in the query string (they stay on this side, the server never sees them): ``timeout`` (seconds to wait for
a reply, or between two streamed chunks; default :data:`DEFAULT_TIMEOUT`), ``connect_timeout`` (default
:data:`DEFAULT_CONNECT_TIMEOUT`), ``retries`` (further tries after a refused connection, a dropped connection or a
5xx/429 answer, with exponential backoff; default :data:`DEFAULT_RETRIES`), ``stream`` (1: server-sent events,
cancellable between chunks and cut at the end of the SQL block as the local backends do; 0: one JSON reply, cut by a
``stop`` sequence; default 1).

The API key comes from ``$NL2SQL_API_KEY`` (sent as ``Authorization: Bearer ...``); a password in the URL
(``openai+https://:KEY@host/v1``) is used when the variable is unset.  The key never appears in provenance, messages,
``repr`` or logs.

Decoding is greedy (``temperature`` 0) like the local backends.  Only the standard library is used (``http.client``),
so the backend works in any kernel without extra packages.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import Cancelled, ConfigError, ModelError, first_line as _one_line
from .base import FENCE, Generation, Message, sql_block_end

logger = logging.getLogger("jupyter_nl2sql")

SCHEMES = ("openai+http://", "openai+https://")
API_KEY_ENV = "NL2SQL_API_KEY"
DEFAULT_TIMEOUT = 120.0
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_RETRIES = 2
BACKOFF_SECONDS = 0.5
"""First pause before a retry; doubled for each further one (capped by :data:`MAX_BACKOFF_SECONDS`)."""
MAX_BACKOFF_SECONDS = 8.0
NON_STREAM_STOP = ["\n```\n"]
"""Stop sequence for non-streamed replies: the newline, fence and newline that close a SQL block (an opening fence
carries its language, ```` ```sql ````, so it does not match)."""
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_ERROR_BODY = 64 * 1024
USER_AGENT = "jupyter-nl2sql"


def is_http_model(model: Any) -> bool:
    """Whether a ``model`` setting names an OpenAI-compatible server.

    >>> is_http_model("openai+http://127.0.0.1:8000/v1#coder"), is_http_model("Qwen/Qwen2.5-Coder-1.5B-Instruct")
    (True, False)
    """
    return isinstance(model, str) and model.strip().lower().startswith(SCHEMES)


@dataclass(frozen=True)
class HttpModelSetting:
    """A parsed ``openai+http(s)://`` model setting."""

    scheme: str
    """``http`` or ``https``."""
    host: str
    port: int
    path: str
    """The API prefix, ending in ``/v1``."""
    model: str | None
    """The model name to send (None: ask the server which it serves)."""
    url_key: str | None
    """A password given in the URL (used as the API key when ``$NL2SQL_API_KEY`` is unset)."""
    timeout: float = DEFAULT_TIMEOUT
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    retries: int = DEFAULT_RETRIES
    stream: bool = True

    @property
    def base_url(self) -> str:
        """``http://host:port/v1`` without credentials."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{self.path}"

    @property
    def setting(self) -> str:
        """The setting as it identifies the model (credentials and client options left out)."""
        return f"openai+{self.base_url}" + (f"#{self.model}" if self.model else "")


def parse_http_model(setting: str) -> HttpModelSetting:
    """Parse ``openai+http://host:port/v1?options#model``; raise :class:`ConfigError` with a one-line message.

    >>> s = parse_http_model("openai+http://u:secret@127.0.0.1:8000/v1?timeout=30#qwen")
    >>> s.base_url, s.model, s.timeout, s.url_key
    ('http://127.0.0.1:8000/v1', 'qwen', 30.0, 'secret')
    >>> parse_http_model("openai+https://models.example").base_url
    'https://models.example:443/v1'
    """
    if not is_http_model(setting):
        raise ConfigError(f"{setting!r} is not an OpenAI-compatible server setting: write e.g. "
                          "openai+http://127.0.0.1:8000/v1#model-name")
    text = setting.strip()[len("openai+"):]
    try:
        parts = urllib.parse.urlsplit(text)
        host = parts.hostname
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"cannot read the model server URL ({exc}): write e.g. "
                          "openai+http://127.0.0.1:8000/v1#model-name") from None
    if not host:
        raise ConfigError("the model server URL has no host: write e.g. openai+http://127.0.0.1:8000/v1#model-name")
    scheme = parts.scheme.lower()
    path = parts.path.rstrip("/")
    if not path.endswith("/v1"):
        path += "/v1"
    options = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
    unknown = set(options) - {"timeout", "connect_timeout", "retries", "stream"}
    if unknown:
        raise ConfigError(f"unknown option(s) {', '.join(sorted(unknown))} in the model server URL: use timeout, "
                          "connect_timeout, retries or stream")
    model = urllib.parse.unquote(parts.fragment).strip() or None
    return HttpModelSetting(
        scheme=scheme, host=host, port=port or (443 if scheme == "https" else 80), path=path, model=model,
        url_key=urllib.parse.unquote(parts.password) if parts.password else None,
        timeout=_positive_float("timeout", options.get("timeout"), DEFAULT_TIMEOUT),
        connect_timeout=_positive_float("connect_timeout", options.get("connect_timeout"), DEFAULT_CONNECT_TIMEOUT),
        retries=_retries(options.get("retries")),
        stream=_flag("stream", options.get("stream"), True),
    )


def redact_http_setting(setting: Any) -> str:
    """A model server setting safe to show: credentials and client options left out (unparseable: a placeholder).

    >>> redact_http_setting("openai+http://:key@127.0.0.1:8000/v1?timeout=9#coder")
    'openai+http://127.0.0.1:8000/v1#coder'
    """
    try:
        return parse_http_model(str(setting)).setting
    except ConfigError:
        return "the model server setting"


def _positive_float(name: str, value: str | None, default: float) -> float:
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not number > 0:
        raise ConfigError(f"{name} in the model server URL must be a number of seconds > 0, not {value!r}")
    return number


def _retries(value: str | None) -> int:
    if value is None or value == "":
        return DEFAULT_RETRIES
    if not value.isdigit():
        raise ConfigError(f"retries in the model server URL must be a whole number ≥ 0, not {value!r}")
    return int(value)


def _flag(name: str, value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    text = value.strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} in the model server URL must be 1 or 0, not {value!r}")


def _server_message(body: bytes) -> str:
    """The error message in a server's reply body (OpenAI ``{"error": {"message"}}``, FastAPI ``detail``...)."""
    text = body.decode("utf-8", errors="replace")
    try:
        obj = json.loads(text)
    except ValueError:
        return _one_line(text) or "no details"
    if isinstance(obj, dict):
        err = obj.get("error", obj)
        if isinstance(err, dict):
            for key in ("message", "detail", "error"):
                if err.get(key):
                    return _one_line(err[key] if isinstance(err[key], str) else json.dumps(err[key]))
        elif isinstance(err, str):
            return _one_line(err)
        if obj.get("detail"):
            return _one_line(obj["detail"] if isinstance(obj["detail"], str) else json.dumps(obj["detail"]))
    return _one_line(text)


class _Retry(Exception):
    """A try failed in a way worth trying again (refused or dropped connection, 5xx, 429)."""

    def __init__(self, reason: str, delay: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay = delay


class OpenAICompatibleBackend:
    """A model behind ``POST {base}/chat/completions``; see :class:`jupyter_nl2sql.models.Backend`.

    ``base_url``: ``http://host:port/v1``; ``model``: the name the server knows the model by.  Use
    :meth:`from_setting` to build one from a ``model`` setting (it also asks the server which model it serves).
    Thread-safe: concurrent calls use separate keep-alive connections from a small pool.
    """

    device = "remote"
    dtype = "server"

    def __init__(self, base_url: str, model: str, *, api_key: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT, connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
                 retries: int = DEFAULT_RETRIES, stream: bool = True, backoff: float = BACKOFF_SECONDS,
                 max_idle_connections: int = 8) -> None:
        setting = parse_http_model(f"openai+{base_url}#{urllib.parse.quote(model, safe='/:@.-_')}")
        self._setting = setting
        self.base_url = setting.base_url
        self.model_name = model
        self.model_id = setting.setting
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.retries = retries
        self.stream = stream
        self.backoff = backoff
        self.max_idle_connections = max_idle_connections
        self.__api_key = api_key if api_key is not None else (os.environ.get(API_KEY_ENV) or setting.url_key)
        self._idle: list[http.client.HTTPConnection] = []
        self._idle_lock = threading.Lock()
        self.server_models: list[str] = []
        self.provenance: dict[str, Any] = {
            "model_id": self.model_id, "source": "http", "backend": "openai-http", "base_url": self.base_url,
            "served_model": model, "device": self.device, "dtype": self.dtype, "stream": stream,
        }

    # -- construction -----------------------------------------------------------------------------------------
    @classmethod
    def from_setting(cls, setting: str, *, progress: bool = False, api_key: str | None = None,
                     probe: bool = True) -> OpenAICompatibleBackend:
        """The backend a ``model`` setting names (see the module docstring).

        With ``probe`` (the default), ask the server for its models (``GET {base}/models``): a server that cannot
        be reached fails here, with a one-line :class:`ModelError`, rather than at the first question; a setting
        without ``#model`` takes the first model the server lists.
        """
        parsed = parse_http_model(setting)
        key = api_key if api_key is not None else (os.environ.get(API_KEY_ENV) or parsed.url_key)
        name = parsed.model
        models: list[str] = []
        if probe:
            probe_backend = cls(parsed.base_url, name or "probe", api_key=key, timeout=min(parsed.timeout, 30.0),
                                connect_timeout=parsed.connect_timeout, retries=parsed.retries)
            try:
                models = probe_backend.list_models(require=name is None)
            finally:
                probe_backend.close()
            if name is None:
                if not models:
                    raise ModelError(f"the model server at {parsed.base_url} lists no models: name one in the "
                                     f"setting, e.g. openai+{parsed.base_url}#model-name")
                name = models[0]
            elif models and name not in models:
                logger.warning("the model server at %s lists %s, not %s; sending %s anyway", parsed.base_url,
                               ", ".join(models[:5]), name, name)
        elif name is None:
            raise ConfigError(f"name the model served at {parsed.base_url}: openai+{parsed.base_url}#model-name")
        backend = cls(parsed.base_url, name, api_key=key, timeout=parsed.timeout,
                      connect_timeout=parsed.connect_timeout, retries=parsed.retries, stream=parsed.stream)
        backend.server_models = models
        _report(f"Using {name} served at {parsed.base_url}", progress)
        return backend

    def __repr__(self) -> str:
        return f"<OpenAICompatibleBackend {self.model_name} at {self.base_url}>"

    # -- Backend protocol -------------------------------------------------------------------------------------
    def render_prompt(self, messages: list[Message]) -> str:
        """The messages as sent (the server applies the model's chat template, which this side does not see)."""
        head = f"# chat messages sent to {self.base_url} for {self.model_name} (the server applies the chat template)"
        return "\n\n".join([head, *(f"[{m['role']}]\n{m['content']}" for m in messages)])

    def generate(self, messages: list[Message], max_new_tokens: int = 256,
                 cancel: threading.Event | None = None, **_: Any) -> Generation:
        """Greedy reply to ``messages``, ending at the close of the first fenced SQL block.

        Raises :class:`~jupyter_nl2sql.errors.Cancelled` when ``cancel`` is set before the reply is complete, and
        :class:`~jupyter_nl2sql.errors.ModelError` (one line) when the server cannot be reached, answers with an
        error, or sends something that is not a chat completion.
        """
        body: dict[str, Any] = {"model": self.model_name, "messages": [dict(m) for m in messages],
                                "max_tokens": int(max_new_tokens), "temperature": 0.0, "top_p": 1.0, "n": 1,
                                "stream": self.stream}
        if self.stream:
            # usage at the end; vLLM also puts it in every chunk (continuous_usage_stats), so that a stream cut at
            # the end of the SQL block still knows the prompt's length (other servers ignore the field)
            body["stream_options"] = {"include_usage": True, "continuous_usage_stats": True}
        else:
            body["stop"] = NON_STREAM_STOP
        t0 = time.perf_counter()
        if cancel is not None and cancel.is_set():
            raise Cancelled("cancelled")
        conn, resp = self._request("POST", "/chat/completions", body, cancel)
        try:
            with _CancelWatch(conn, cancel):
                kind = (resp.getheader("Content-Type") or "").split(";")[0].strip().lower()
                if self.stream and kind == "text/event-stream":
                    text, usage, n_chunks, reusable = self._read_stream(resp, cancel)
                elif self.stream and kind != "application/json":  # a proxy's page, say
                    head = resp.read(200).decode("utf-8", "replace")
                    raise ModelError(f"the model server at {self.base_url} sent a {kind or 'untyped'} reply, not JSON "
                                     f"nor an event stream ({_one_line(head, 80)!r}): is it an OpenAI-compatible "
                                     "server?")
                else:
                    text, usage, n_chunks, reusable = self._read_json_reply(resp, cancel)
        except BaseException:
            conn.close()
            raise
        self._release(conn, reusable and not resp.will_close)
        end = sql_block_end(text)
        if end is not None:
            text = text[:end]
        tokens_in = _int(usage.get("prompt_tokens"))
        tokens_out = max(_int(usage.get("completion_tokens")), n_chunks)
        details = usage.get("prompt_tokens_details") or {}
        reused = _int(details.get("cached_tokens") if isinstance(details, dict) else 0) or _int(usage.get("_cache_n"))
        return Generation(text, tokens_in, tokens_out, time.perf_counter() - t0, tokens_reused=reused)

    # -- other endpoints --------------------------------------------------------------------------------------
    def list_models(self, *, require: bool = True) -> list[str]:
        """Ids of the models the server serves (``GET {base}/models``).

        A server without the endpoint (404) gives ``[]`` unless ``require``.
        """
        try:
            conn, resp = self._request("GET", "/models", None, None)
        except ModelError as exc:
            if not require and "(404" in str(exc):
                return []
            raise
        try:
            data = self._read_json(resp)
        except BaseException:
            conn.close()
            raise
        self._release(conn, not resp.will_close)
        items = data.get("data") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise ModelError(f"the model server at {self.base_url} sent a model list without 'data': is it an "
                             "OpenAI-compatible server?")
        return [str(m.get("id")) for m in items if isinstance(m, dict) and m.get("id")]

    def close(self) -> None:
        """Close the idle keep-alive connections."""
        with self._idle_lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    # -- HTTP -------------------------------------------------------------------------------------------------
    def _headers(self, has_body: bool) -> dict[str, str]:
        headers = {"Accept": "application/json, text/event-stream", "User-Agent": USER_AGENT}
        if has_body:
            headers["Content-Type"] = "application/json"
        if self.__api_key:
            headers["Authorization"] = f"Bearer {self.__api_key}"
        return headers

    def _scrub(self, text: str) -> str:
        """``text`` with the API key replaced by ``***`` (should a server echo it)."""
        return text.replace(self.__api_key, "***") if self.__api_key else text

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        """An idle keep-alive connection (reused: True) or a new, connected one."""
        with self._idle_lock:
            if self._idle:
                return self._idle.pop(), True
        cls = http.client.HTTPSConnection if self._setting.scheme == "https" else http.client.HTTPConnection
        conn = cls(self._setting.host, self._setting.port, timeout=self.connect_timeout)
        try:
            conn.connect()
        except TimeoutError:
            conn.close()
            raise _Retry(f"no connection within {self.connect_timeout:g} s") from None
        except OSError as exc:
            conn.close()
            raise _Retry(_os_reason(exc)) from None
        conn.sock.settimeout(self.timeout)
        return conn, False

    def _release(self, conn: http.client.HTTPConnection, reusable: bool) -> None:
        if reusable:
            with self._idle_lock:
                if len(self._idle) < self.max_idle_connections:
                    self._idle.append(conn)
                    return
        conn.close()

    def _request(self, method: str, path: str, body: dict | None, cancel: threading.Event | None
                 ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        """Send the request, trying again on refused/dropped connections and 5xx/429; return the open response
        (status < 400).  The caller reads the body, then releases or closes the connection."""
        data = json.dumps(body).encode("utf-8") if body is not None else None
        target = self._setting.path + path
        last = ""
        attempt = 0
        while True:
            if cancel is not None and cancel.is_set():
                raise Cancelled("cancelled")
            conn = None
            try:
                conn, reused = self._connection()
                try:
                    with _CancelWatch(conn, cancel):
                        conn.request(method, target, body=data, headers=self._headers(data is not None))
                        resp = conn.getresponse()
                except TimeoutError:
                    conn.close()
                    if cancel is not None and cancel.is_set():
                        raise Cancelled("cancelled") from None
                    raise ModelError(f"no reply from the model server at {self.base_url} within {self.timeout:g} s: "
                                     "it may be overloaded or the prompt long; raise the timeout "
                                     "(?timeout=300 in the model setting) or check the server") from None
                except (http.client.HTTPException, OSError) as exc:
                    conn.close()
                    if cancel is not None and cancel.is_set():
                        raise Cancelled("cancelled") from None
                    if reused:  # a keep-alive connection the server had closed: not a real try
                        continue
                    raise _Retry(_os_reason(exc)) from None
                if resp.status in RETRY_STATUSES:
                    payload = resp.read(MAX_ERROR_BODY)
                    conn.close()
                    raise _Retry(f"{resp.status} {resp.reason}: {self._scrub(_server_message(payload))}",
                                 _retry_after(resp.getheader("Retry-After")))
                if resp.status >= 400:
                    payload = resp.read(MAX_ERROR_BODY)
                    conn.close()
                    raise ModelError(self._client_error(resp.status, path, self._scrub(_server_message(payload))))
                return conn, resp
            except _Retry as exc:
                last = exc.reason
                if attempt >= self.retries:
                    break
                delay = exc.delay if exc.delay is not None else min(self.backoff * 2 ** attempt, MAX_BACKOFF_SECONDS)
                attempt += 1
                logger.info("model server %s: %s; trying again in %.1f s (%d of %d)", self.base_url, last, delay,
                            attempt, self.retries)
                if cancel is not None:
                    if cancel.wait(delay):
                        raise Cancelled("cancelled") from None
                else:
                    time.sleep(delay)
        tries = f" after {self.retries + 1} tries" if self.retries else ""
        if last[:1].isdigit():
            raise ModelError(f"the model server at {self.base_url} answered {last}{tries}: check its log "
                             "(see docs/operations.md, 'Troubleshooting')")
        raise ModelError(f"cannot reach the model server at {self.base_url} ({last}){tries}: start it (see "
                         "docs/operations.md) or check the host and port in the model setting")

    def _client_error(self, status: int, path: str, message: str) -> str:
        where = f"the model server at {self.base_url}"
        if status in (401, 403):
            if self.__api_key:
                return f"{where} refused the API key ({status}: {message}): check ${API_KEY_ENV}"
            return f"{where} needs an API key ({status}: {message}): set ${API_KEY_ENV}"
        if status == 404:
            return (f"{where} has no {self._setting.path}{path} or no model {self.model_name!r} (404: {message}): "
                    "check the URL (it usually ends in /v1) and the model name after '#'")
        if status in (400, 413, 422) and any(w in message.lower() for w in ("context", "too long", "maximum")):
            return (f"{where} rejected the prompt as too long ({status}: {message}): lower max_schema_chars "
                    "(fewer tables shown) or raise the server's context length")
        return f"{where} rejected the request ({status}: {message})"

    def _read_json(self, resp: http.client.HTTPResponse) -> Any:
        try:
            payload = resp.read()
        except TimeoutError:
            raise ModelError(f"the model server at {self.base_url} stopped sending its reply (no data for "
                             f"{self.timeout:g} s)") from None
        except (http.client.HTTPException, OSError) as exc:
            raise ModelError(f"lost the connection to the model server at {self.base_url} while reading its reply "
                             f"({_os_reason(exc)})") from None
        try:
            return json.loads(payload)
        except ValueError:
            raise ModelError(f"the model server at {self.base_url} sent a reply that is not JSON "
                             f"({_one_line(payload.decode('utf-8', 'replace'), 80)!r}): is it an OpenAI-compatible "
                             "server?") from None

    def _read_json_reply(self, resp: http.client.HTTPResponse, cancel: threading.Event | None
                         ) -> tuple[str, dict, int, bool]:
        try:
            obj = self._read_json(resp)
        except ModelError:
            if cancel is not None and cancel.is_set():
                raise Cancelled("cancelled") from None
            raise
        if cancel is not None and cancel.is_set():
            raise Cancelled("cancelled")
        choice = _first_choice(obj, self.base_url)
        message = choice.get("message") or {}
        text = message.get("content") if isinstance(message, dict) else None
        if not isinstance(text, str):
            raise ModelError(f"the model server at {self.base_url} sent a completion without text "
                             f"(finish_reason {choice.get('finish_reason')!r})")
        if choice.get("finish_reason") == "stop" and FENCE in text and sql_block_end(text) is None:
            text = text.rstrip("\n") + "\n" + FENCE  # the stop sequence (left out by the server) closed the block
        return text, _usage(obj), 0, True

    def _read_stream(self, resp: http.client.HTTPResponse, cancel: threading.Event | None
                     ) -> tuple[str, dict, int, bool]:
        """Read server-sent events until ``[DONE]``, the end of the SQL block (then the connection is closed, which
        stops the server generating), or ``cancel``."""
        pieces: list[str] = []
        usage: dict = {}
        n_chunks = 0
        finished = False
        events = _sse_events(resp)
        while True:
            if cancel is not None and cancel.is_set():
                raise Cancelled("cancelled")
            try:
                data = next(events, None)
            except TimeoutError:
                raise ModelError(f"the model server at {self.base_url} stopped streaming (no data for "
                                 f"{self.timeout:g} s)") from None
            except (http.client.HTTPException, OSError, ValueError) as exc:
                if cancel is not None and cancel.is_set():
                    raise Cancelled("cancelled") from None
                raise ModelError(f"lost the connection to the model server at {self.base_url} mid-reply "
                                 f"({_os_reason(exc)})") from None
            if data is None:
                if cancel is not None and cancel.is_set():
                    raise Cancelled("cancelled")
                if not finished:
                    raise ModelError(f"the model server at {self.base_url} ended the stream mid-reply "
                                     "(no [DONE] nor finish_reason): check its log")
                return "".join(pieces), usage, n_chunks, False
            if data == "[DONE]":
                resp.read()  # the end of the chunked body, so the connection can be reused
                return "".join(pieces), usage, n_chunks, True
            try:
                obj = json.loads(data)
            except ValueError:
                raise ModelError(f"the model server at {self.base_url} streamed an event that is not JSON "
                                 f"({_one_line(data, 80)!r})") from None
            if not isinstance(obj, dict):
                raise ModelError(f"the model server at {self.base_url} streamed an unexpected event "
                                 f"({_one_line(data, 80)!r})")
            if obj.get("error"):
                raise ModelError(f"the model server at {self.base_url} failed mid-reply: "
                                 f"{self._scrub(_server_message(data.encode()))}")
            if obj.get("usage") or obj.get("timings"):
                usage = {**usage, **_usage(obj)}
            for choice in obj.get("choices") or []:
                delta = choice.get("delta") or {}
                content = delta.get("content") if isinstance(delta, dict) else None
                if content:
                    pieces.append(content)
                    n_chunks += 1
                if choice.get("finish_reason"):
                    finished = True
            if pieces and sql_block_end("".join(pieces)) is not None:
                return "".join(pieces), usage, n_chunks, False  # closing the connection stops the server


class _CancelWatch:
    """While active, shut the connection's socket down as soon as ``cancel`` is set, so that a read blocked on a
    slow server returns at once (the caller then raises :class:`Cancelled`)."""

    POLL_SECONDS = 0.05

    def __init__(self, conn: http.client.HTTPConnection, cancel: threading.Event | None) -> None:
        self.conn = conn
        self.cancel = cancel
        self.done = threading.Event()
        self.thread: threading.Thread | None = None

    def __enter__(self) -> _CancelWatch:
        if self.cancel is not None:
            self.thread = threading.Thread(target=self._watch, daemon=True, name="nl2sql-http-cancel")
            self.thread.start()
        return self

    def _watch(self) -> None:
        assert self.cancel is not None
        while not self.done.is_set():
            if self.cancel.wait(self.POLL_SECONDS):
                if not self.done.is_set():
                    sock = self.conn.sock
                    if sock is not None:
                        try:
                            sock.shutdown(socket.SHUT_RDWR)
                        except OSError:
                            pass
                return

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        if self.thread is not None:
            self.thread.join()


def _sse_events(resp: http.client.HTTPResponse) -> Iterator[str]:
    """The ``data`` of each server-sent event (multi-line data joined with newlines), until the body ends."""
    data: list[str] = []
    while True:
        raw = resp.readline(1 << 20)
        if not raw:
            if data:
                yield "\n".join(data)
            return
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        if not line:
            if data:
                yield "\n".join(data)
                data = []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "data":
            data.append(value)


def _first_choice(obj: Any, base_url: str) -> dict:
    choices = obj.get("choices") if isinstance(obj, dict) else None
    if isinstance(obj, dict) and obj.get("error"):
        raise ModelError(f"the model server at {base_url} failed: {_server_message(json.dumps(obj).encode())}")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise ModelError(f"the model server at {base_url} sent a reply without choices: is it an "
                         "OpenAI-compatible chat completions endpoint?")
    return choices[0]


def _usage(obj: dict) -> dict:
    usage = dict(obj.get("usage") or {}) if isinstance(obj.get("usage"), dict) else {}
    timings = obj.get("timings")  # llama.cpp's server: prompt tokens taken from its cache
    if isinstance(timings, dict) and "cache_n" in timings:
        usage["_cache_n"] = timings["cache_n"]
    return usage


def _int(value: Any) -> int:
    try:
        return max(int(value), 0)
    except (TypeError, ValueError):
        return 0


def _retry_after(value: str | None) -> float | None:
    """A ``Retry-After`` header in seconds (capped), or None."""
    try:
        return min(max(float(value), 0.0), MAX_BACKOFF_SECONDS) if value else None
    except ValueError:
        return None


def _os_reason(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, (ConnectionResetError, http.client.RemoteDisconnected, BrokenPipeError)):
        return "connection dropped by the server"
    if isinstance(exc, socket.gaierror):
        return f"unknown host ({_one_line(exc)})"
    return _one_line(exc) or type(exc).__name__


def _report(message: str, progress: bool) -> None:
    logger.info(message)
    if progress and not logger.hasHandlers():
        import sys

        print(message, file=sys.stderr)
