"""An LLM judge for false negatives (``--llm-judge MODEL@URL``): each picked negative is shown to a chat model
behind an OpenAI-compatible ``POST /chat/completions``, with its query and the pair's positive; a candidate the
model calls relevant is a likely false negative (status ``llm_judge``), dropped for the next candidate, or written
as a positive with ``--promote-false-negatives``. With ``--llm-confirm MODEL@URL`` a second model (a stronger one)
sees only what the first flagged, and a candidate is flagged when both say so (RLHN's cascade: a cheap model
screens, a strong one confirms).

The prompt is a template (``DEFAULT_PROMPT``, or ``--llm-judge-prompt FILE``) with ``{query}``, ``{positive}`` and
``{candidate}``; the answer is read as a verdict: JSON (``{"relevant": true}``, ``{"verdict": "relevant"}``) or the
first of the words relevant / irrelevant / not relevant / yes / no; an answer that says neither is counted
``unparsed`` and the candidate kept. Requests ask for temperature 0; every verdict is kept on disk by the prompt's
text and the model's identity (``negmine.endpoints.store``), so a rerun, a resumed run or a refilter sends nothing
twice, and the same answers give the same output. The provenance names each model, its URL and the prompt's
SHA-256.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from negmine.endpoints.client import Endpoint, EndpointError, split_served
from negmine.endpoints.store import AnswerStore, key_of
from negmine.errors import ConfigError, InputError

DEFAULT_PROMPT = """You judge search results for a training set. Below are a search query, a passage known to be \
relevant to it, and a candidate passage.

Query: {query}

Known relevant passage: {positive}

Candidate passage: {candidate}

Is the candidate passage also relevant to the query (does it answer it, fully or in part)? Answer with one word: \
relevant or irrelevant."""

#: Tokens an answer may take.
MAX_TOKENS = 16
_WORD = re.compile(r"\b(irrelevant|not relevant|relevant|yes|no)\b")


def parse_judge(spec: str, option: str) -> tuple[str, str]:
    """``MODEL@URL`` (or ``openai:MODEL@URL``) -> (MODEL, URL)."""
    served = split_served(spec[len("openai:"):] if spec.startswith("openai:") else spec)
    if served is None or not served[1].startswith(("http://", "https://")):
        raise ConfigError(f"{option} {spec!r}: a chat model behind an endpoint is written MODEL@URL, e.g. "
                          "qwen2.5-7b-instruct@http://localhost:8000/v1")
    return served


def read_prompt(path: Optional[str]) -> str:
    """The prompt template: ``DEFAULT_PROMPT``, or a file's text (which must name {query} and {candidate})."""
    if path is None:
        return DEFAULT_PROMPT
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"--llm-judge-prompt {path}: cannot read it ({exc})") from None
    missing = [f"{{{name}}}" for name in ("query", "candidate") if f"{{{name}}}" not in text]
    if missing:
        raise ConfigError(f"--llm-judge-prompt {path}: the template has no {' and no '.join(missing)} (it takes "
                          "{query}, {positive} and {candidate})")
    return text


def verdict(answer: str) -> Optional[bool]:
    """True (relevant), False (not), or None (the answer says neither)."""
    text = answer.strip()
    try:
        found = json.loads(text)
    except ValueError:
        found = None
    if isinstance(found, dict):
        for key in ("relevant", "is_relevant", "verdict", "label", "answer"):
            value = found.get(key)
            if isinstance(value, bool):
                return value
            if isinstance(value, str):
                return verdict(value)
    match = _WORD.search(text.lower())
    if match is None:
        return None
    return match.group(1) in ("relevant", "yes")


@dataclass
class LlmJudge:
    """The first model, the optional confirming one, the prompt, and the verdicts' stores (see the module)."""

    first: Endpoint
    template: str = DEFAULT_PROMPT
    confirm: Optional[Endpoint] = None
    cache: Optional[Path] = None
    _stores: dict[str, AnswerStore] = field(default_factory=dict)
    _served: dict[str, str] = field(default_factory=dict)  # the model each endpoint says answered first

    @property
    def prompt_sha256(self) -> str:
        return hashlib.sha256(self.template.encode("utf-8")).hexdigest()

    def identity(self) -> dict[str, Any]:
        return {"type": "llm-judge", "model": self.first.record(),
                "confirm": self.confirm.record() if self.confirm is not None else None,
                "prompt_sha256": self.prompt_sha256}

    def endpoints(self) -> list[Endpoint]:
        return [e for e in (self.first, self.confirm) if e is not None]

    def flags(self, triples: Sequence[tuple[str, str, str]]) -> tuple[list[bool], dict[str, int]]:
        """Per (query, positive, candidate): whether the judge (and the confirming model) calls it relevant; and
        the counts: judged, flagged, unparsed answers, and (with a confirming model) asked again and not
        confirmed."""
        first = self._ask(self.first, triples)
        counts = {"judged": len(triples), "unparsed": sum(v is None for v in first)}
        flagged = [i for i, v in enumerate(first) if v]
        if self.confirm is not None:
            second = self._ask(self.confirm, [triples[i] for i in flagged]) if flagged else []
            counts["confirm_judged"] = len(flagged)
            counts["not_confirmed"] = sum(not v for v in second)
            flagged = [i for i, v in zip(flagged, second) if v]
        counts["flagged"] = len(flagged)
        out = [False] * len(triples)
        for i in flagged:
            out[i] = True
        return out, counts

    def _store(self, endpoint: Endpoint) -> AnswerStore:
        name = f"{endpoint.model}@{endpoint.url}"
        if name not in self._stores:
            self._stores[name] = AnswerStore(self.cache, json.dumps(
                {"type": "llm-judge", "model": endpoint.model, "url": endpoint.url}, sort_keys=True))
        return self._stores[name]

    def _ask(self, endpoint: Endpoint, triples: Sequence[tuple[str, str, str]]) -> list[Optional[bool]]:
        store = self._store(endpoint)
        prompts = [self.template.replace("{query}", q).replace("{positive}", p).replace("{candidate}", c)
                   for q, p, c in triples]
        keys = [key_of(endpoint.model, prompt) for prompt in prompts]
        out: list[Optional[bool]] = [None] * len(prompts)
        todo = []
        for i, key in enumerate(keys):
            found = store.get(key)
            if found is None:
                todo.append(i)
            else:
                out[i] = found["verdict"]
        ask: Callable[[int], str] = lambda i: self._chat(endpoint, prompts[i])  # noqa: E731
        for i, answer in zip(todo, endpoint.map(ask, todo)):
            out[i] = verdict(answer)
            store.put(keys[i], {"verdict": out[i], "answer": answer[:200]})
        return out


    def _chat(self, endpoint: Endpoint, prompt: str) -> str:
        """One verdict's answer; the model the server says answered must stay the same through the run."""
        answer = endpoint.post("/chat/completions", {"model": endpoint.model, "temperature": 0,
                                                     "max_tokens": MAX_TOKENS,
                                                     "messages": [{"role": "user", "content": prompt}]})
        where = f"endpoint {endpoint.url}/chat/completions"
        try:
            content = answer["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise EndpointError(f"{where}: an answer without choices[0].message.content ({str(answer)[:200]})") \
                from None
        served = str(answer.get("model") or endpoint.model)
        first = self._served.setdefault(endpoint.url + endpoint.model, served)
        if served != first:
            raise EndpointError(f"{where}: it now answers as {served!r}, not {first!r} (the model was swapped "
                                "mid-run); the verdicts so far are kept: run again")
        return str(content or "")


def load_llm_judge(judge: Optional[str], confirm: Optional[str], prompt: Optional[str],
                   endpoint: Callable[[str, str], Endpoint], cache: Optional[Path]) -> Optional[LlmJudge]:
    """The LLM judge the options name (``None`` without ``--llm-judge``); ``endpoint(model, url)`` makes each
    model's ``Endpoint``."""
    if judge is None:
        if confirm is not None or prompt is not None:
            raise ConfigError(f"{'--llm-confirm' if confirm is not None else '--llm-judge-prompt'} works with "
                              "--llm-judge: give the first model too")
        return None
    first = endpoint(*parse_judge(judge, "--llm-judge"))
    second = endpoint(*parse_judge(confirm, "--llm-confirm")) if confirm is not None else None
    return LlmJudge(first, read_prompt(prompt), second, cache)
