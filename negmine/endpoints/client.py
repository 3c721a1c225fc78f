"""Models behind HTTP endpoints: one client for every kind (embeddings, rerank, chat), with what production use needs.

- **concurrency**: ``map`` sends up to ``concurrency`` requests at once and gives the answers in order;
- **retries**: a 429, a 5xx, a timeout, a dropped connection or an answer that is not JSON is tried again, after
  ``backoff * 2^try`` seconds (at most ``MAX_WAIT``; a server's ``Retry-After`` when it gives one), ``retries``
  times; then one line names the endpoint, what it answered and how many times it was asked. Any other 4xx is not
  tried again (the request is wrong: a bad model name, a bad key);
- **a budget**: ``max_requests`` requests at most (retries included); the one past it raises ``BudgetSpent``, so
  a run stops cleanly, keeping what it cached, and a rerun goes on from there;
- **keys**: read from the environment variable ``api_key_env`` at each request and sent as a bearer token; never
  stored on the client's record, in an error or in a log;
- **cost**: requests, retries, and the tokens a server reports (``usage``), counted for the summary.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Optional, TypeVar

from negmine.errors import ConfigError, NegmineError

#: The longest wait between two tries, in seconds.
MAX_WAIT = 30.0
#: HTTP statuses tried again.
RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})

T = TypeVar("T")
R = TypeVar("R")


class EndpointError(NegmineError):
    """An endpoint that failed for good (after its retries), or answered something negmine cannot use. Exit 1."""

    exit_code = 1


class BudgetSpent(EndpointError):
    """The request budget (``--endpoint-max-requests``) is spent: what was done is cached; run again to go on."""

    exit_code = 3


@dataclass
class Usage:
    """What the endpoints were asked, for the summary."""

    requests: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    def as_dict(self) -> dict[str, int]:
        return {k: v for k, v in self.__dict__.items()}


@dataclass
class Endpoint:
    """Where a model is served and how to call it.

    Attributes:
        url: The API's base URL, as its clients take it (``http://localhost:8000/v1``); paths are added to it.
        model: The model name sent in each request.
        api_key_env: The environment variable holding the API key (sent as ``Authorization: Bearer``), if set.
        concurrency: Requests in flight at once.
        retries: Tries after the first, for what is worth trying again.
        timeout: Seconds to wait for one answer.
        backoff: The first wait between tries, doubled at each.
        max_requests: The request budget (``None``: none).
    """

    url: str
    model: str
    api_key_env: str = "NEGMINE_API_KEY"
    concurrency: int = 4
    retries: int = 5
    timeout: float = 60.0
    backoff: float = 0.5
    max_requests: Optional[int] = None
    usage: Usage = field(default_factory=Usage)

    def __post_init__(self) -> None:
        self.url = self.url.rstrip("/")
        if not self.url.startswith(("http://", "https://")):
            raise ConfigError(f"endpoint {self.url!r}: give an http:// or https:// URL (the API's base, e.g. "
                              "http://localhost:8000/v1)")
        if self.concurrency < 1:
            raise ConfigError(f"--endpoint-concurrency must be at least 1, got {self.concurrency}")
        if self.max_requests is not None and self.max_requests < 1:
            raise ConfigError(f"--endpoint-max-requests must be at least 1, got {self.max_requests}")
        self._lock = threading.Lock()

    def record(self) -> dict[str, Any]:
        """What the provenance records: the URL and the model (never the key)."""
        return {"url": self.url, "model": self.model}

    def post(self, path: str, payload: dict[str, Any]) -> Any:
        """POST JSON to ``url + path`` and return the JSON answer (an object or an array), trying again what is
        worth it."""
        target = f"{self.url}{path}"
        body = json.dumps(payload).encode("utf-8")
        last = ""
        for attempt in range(self.retries + 1):
            self._spend(target, attempt)
            try:
                answer = self._send(target, body)
            except _Retry as again:
                last = str(again)
                if attempt < self.retries:
                    time.sleep(again.wait if again.wait is not None else min(MAX_WAIT, self.backoff * 2 ** attempt))
                continue
            self._count(answer)
            return answer
        raise EndpointError(f"endpoint {target}: {last}, after {self.retries + 1} tries (--endpoint-retries)")

    def map(self, call: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        """``call`` on each item, ``concurrency`` at a time, the answers in the items' order as they come."""
        items = list(items)
        if self.concurrency == 1 or len(items) <= 1:
            for item in items:
                yield call(item)
            return
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="negmine-endpoint") as pool:
            futures = [pool.submit(call, item) for item in items[:self.concurrency]]
            ahead = self.concurrency
            try:
                for i in range(len(items)):
                    result = futures[i].result()
                    if ahead < len(items):
                        futures.append(pool.submit(call, items[ahead]))
                        ahead += 1
                    yield result
            finally:
                for f in futures:
                    f.cancel()

    def _spend(self, target: str, attempt: int) -> None:
        with self._lock:
            if self.max_requests is not None and self.usage.requests >= self.max_requests:
                raise BudgetSpent(f"endpoint {target}: the request budget ({self.max_requests:,}, "
                                  "--endpoint-max-requests) is spent; what was answered is cached: run again to go "
                                  "on")
            self.usage.requests += 1
            self.usage.retries += attempt > 0

    def _count(self, answer: Any) -> None:
        usage = answer.get("usage") if isinstance(answer, dict) else None
        if isinstance(usage, dict):
            with self._lock:
                for name in ("prompt_tokens", "completion_tokens", "total_tokens"):
                    value = usage.get(name)
                    if isinstance(value, int):
                        setattr(self.usage, name, getattr(self.usage, name) + value)

    def _send(self, target: str, body: bytes) -> Any:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        request = urllib.request.Request(target, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            text = _excerpt(exc.read())
            if exc.code in RETRY_STATUSES:
                raise _Retry(f"HTTP {exc.code} {text}", _retry_after(exc.headers.get("Retry-After"))) from None
            raise EndpointError(f"endpoint {target}: HTTP {exc.code} {text}") from None
        except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            raise _Retry(f"no answer ({reason})", None) from None
        try:
            answer = json.loads(raw)
        except ValueError:
            raise _Retry(f"an answer that is not JSON: {_excerpt(raw)}", None) from None
        if not isinstance(answer, (dict, list)):
            raise _Retry(f"an answer that is neither a JSON object nor an array: {_excerpt(raw)}", None)
        return answer


def split_served(spec: str) -> Optional[tuple[str, str]]:
    """``MODEL@URL`` -> (MODEL, URL) (split at the last ``@``); ``None`` when a part is missing."""
    model, at, url = spec.rpartition("@")
    return (model, url) if at and model and url else None


class _Retry(Exception):
    def __init__(self, message: str, wait: Optional[float]) -> None:
        super().__init__(message)
        self.wait = wait


def _retry_after(value: Optional[str]) -> Optional[float]:
    try:
        return min(MAX_WAIT, max(0.0, float(value))) if value is not None else None
    except ValueError:
        return None


def _excerpt(raw: bytes, limit: int = 200) -> str:
    text = raw.decode("utf-8", "replace").strip().replace("\n", " ")
    return text if len(text) <= limit else text[:limit] + "..."
