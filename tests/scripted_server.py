"""A scripted OpenAI-compatible HTTP server for fault injection (never the only test of a client: see
test_endpoints.py's real server). It answers ``POST /v1/embeddings`` with FakeEncoder vectors, and follows a
script: a list of faults consumed one per request (``"429"``, ``"500"``, ``"timeout"``, ``"garbage"``,
``"swap"``: answer under another model's name, ``"ok"``), then answers normally. Every request is logged."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from fakes import FakeEncoder


class Scripted:
    def __init__(self, model: str = "fake-endpoint", timeout_sleep: float = 2.0) -> None:
        self.model = model
        self.script: list[str] = []
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.encoder = FakeEncoder()
        self.lock = threading.Lock()
        self.timeout_sleep = timeout_sleep
        self.swapped = False
        self.tei = False  # answer /rerank in text-embeddings-inference's shape
        self.chat: Any = lambda model, prompt: "irrelevant"  # the chat model's answer to a prompt
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length", 0))
                payload = json.loads(self.rfile.read(length) or b"{}")
                if self.path not in ("/v1/embeddings", "/v1/rerank", "/v1/chat/completions"):
                    return self._send(404, {"error": f"no route {self.path}"})
                with server.lock:
                    server.requests.append(payload)
                    server.headers.append(dict(self.headers))
                    fault = server.script.pop(0) if server.script else "ok"
                if fault == "429":
                    return self._send(429, {"error": "slow down"}, {"Retry-After": "0"})
                if fault == "500":
                    return self._send(500, {"error": "boom"})
                if fault == "timeout":
                    time.sleep(server.timeout_sleep)
                if fault == "garbage":
                    return self._raw(200, b"{not json")
                if fault == "swap":
                    server.swapped = True
                name = "another-model" if server.swapped else server.model
                if self.path == "/v1/chat/completions":
                    content = server.chat(payload["model"], payload["messages"][-1]["content"])
                    return self._send(200, {"object": "chat.completion",
                                            "model": "another-model" if server.swapped else payload["model"],
                                            "choices": [{"index": 0, "finish_reason": "stop",
                                                         "message": {"role": "assistant", "content": content}}],
                                            "usage": {"prompt_tokens": 50, "completion_tokens": 1,
                                                      "total_tokens": 51}})
                if self.path == "/v1/rerank":  # the fake encoder's cosine as the relevance score
                    q = server.encoder.encode([payload["query"]], "query")[0]
                    docs = server.encoder.encode(list(payload["documents"]), "document")
                    results = [{"index": i, "relevance_score": float(d @ q)} for i, d in enumerate(docs)]
                    results.sort(key=lambda r: -r["relevance_score"])
                    if server.tei:
                        return self._raw(200, json.dumps([{"index": r["index"], "score": r["relevance_score"]}
                                                          for r in results]).encode())
                    return self._send(200, {"model": name, "results": results})
                texts = payload.get("input", [])
                vectors = server.encoder.encode(list(texts), "document")
                self._send(200, {"object": "list", "model": name,
                                 "data": [{"object": "embedding", "index": i, "embedding": v.tolist()}
                                          for i, v in enumerate(vectors)],
                                 "usage": {"prompt_tokens": len(texts), "total_tokens": len(texts)}})

            def _send(self, code: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                self._raw(code, json.dumps(body).encode(), headers)

            def _raw(self, code: int, raw: bytes, headers: dict[str, str] | None = None) -> None:
                try:
                    self.send_response(code)
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(raw)))
                    self.end_headers()
                    self.wfile.write(raw)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout)
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def texts(self) -> list[str]:
        """The texts embedded, the identity probes aside."""
        from negmine.endpoints.embeddings import PROBE

        return [t for r in self.requests for t in r.get("input", []) if t != PROBE]

    def chats(self, model: str | None = None) -> list[str]:
        """The prompts sent to /chat/completions (to ``model``, or any)."""
        return [r["messages"][-1]["content"] for r in self.requests if "messages" in r
                and (model is None or r["model"] == model)]

    def reranked(self) -> list[tuple[str, str]]:
        """The (query, document) pairs scored through /rerank, the probe aside."""
        from negmine.endpoints.rerank import PROBE as PAIR

        return [(r["query"], d) for r in self.requests if "query" in r for d in r["documents"] if r["query"] != PAIR[0]]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
