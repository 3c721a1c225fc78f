"""The LLM judge (negmine.judges.llm) through a scripted OpenAI-compatible chat server: flagged picks are dropped
for the next candidate (or promoted), verdicts are cached (a rerun, a resumed run and a refilter send nothing
twice), the cascade asks the second model only about what the first flagged, and answers are parsed; the real
server test is in test_endpoint_servers.py."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Iterator

import pyarrow.parquet as pq
import pytest
from fakes import FakeEncoder
from scripted_server import Scripted

import negmine
from negmine.errors import ConfigError
from negmine.judges.llm import DEFAULT_PROMPT, verdict


def candidate_of(prompt: str) -> str:
    return prompt.split("Candidate passage: ", 1)[1].split("\n\nIs the candidate", 1)[0]


def flagged(text: str) -> bool:
    """The scripted judge's opinion: a third of the passages are relevant."""
    return hashlib.md5(text.encode()).digest()[0] % 3 == 0


@pytest.fixture
def server() -> Iterator[Scripted]:
    s = Scripted()
    s.chat = lambda model, prompt: "Relevant." if flagged(candidate_of(prompt)) else "irrelevant"
    yield s
    s.close()


def mine(tiny: dict[str, Path], out: Path, server: Scripted, **options: Any) -> Any:
    options.setdefault("llm_judge", f"judge-a@{server.url}")
    return negmine.mine(tiny["corpus"], tiny["queries"], tiny["qrels"], output=out, encoder=FakeEncoder(),
                        output_format="n-tuple", num_negatives=3, **options)


def test_flagged_picks_are_dropped_for_the_next_candidate(server: Scripted, tiny: dict[str, Path],
                                                           tmp_path: Path) -> None:
    result = mine(tiny, tmp_path / "o.parquet", server, candidates_output=tmp_path / "c.parquet", score_all=True)
    rows = pq.read_table(tmp_path / "o.parquet").to_pylist()
    assert rows and not any(flagged(r[f"negative_{k}"]) for r in rows for k in (1, 2, 3))
    plain = negmine.mine(tiny["corpus"], tiny["queries"], tiny["qrels"], output=tmp_path / "plain.parquet",
                         encoder=FakeEncoder(), output_format="n-tuple", num_negatives=3)
    assert any(flagged(r[f"negative_{k}"]) for r in pq.read_table(tmp_path / "plain.parquet").to_pylist()
               for k in (1, 2, 3))  # without the judge some would have been written
    counts = result.stats.llm_judge
    # judgments are per (pair, candidate): a candidate of a query with two positives may be judged twice
    assert counts["flagged"] >= result.stats.dropped["llm_judge"] > 0 and counts["judged"] == len(server.chats())
    assert plain.stats.negatives_written == result.stats.negatives_written
    identity = result.metadata["models"]["llm_judge"]
    assert identity["model"]["model"] == "judge-a"
    assert identity["prompt_sha256"] == hashlib.sha256(DEFAULT_PROMPT.encode()).hexdigest()
    statuses = set(pq.read_table(tmp_path / "c.parquet").column("status").to_pylist())
    assert "llm_judge" in statuses
    asked = len(server.chats())
    again = mine(tiny, tmp_path / "again.parquet", server)  # every verdict from the cache
    assert len(server.chats()) == asked and again.stats.llm_judge == counts
    assert pq.read_table(tmp_path / "again.parquet").to_pylist() == rows
    refiltered = negmine.refilter(tmp_path / "c.parquet", tmp_path / "r.parquet")  # the verdicts again, cached
    assert len(server.chats()) == asked and refiltered.stats.dropped["llm_judge"] == result.stats.dropped["llm_judge"]


def test_promoted_and_confirmed(server: Scripted, tiny: dict[str, Path], tmp_path: Path) -> None:
    server.chat = lambda model, prompt: ("relevant" if flagged(candidate_of(prompt)) and
                                         (model == "judge-a" or len(candidate_of(prompt)) % 2 == 0) else "no")
    result = mine(tiny, tmp_path / "o.parquet", server, llm_confirm=f"judge-b@{server.url}",
                  promote_false_negatives=True)
    first, second = server.chats("judge-a"), server.chats("judge-b")
    assert second and all(flagged(candidate_of(p)) for p in second)  # the second model sees only the flagged
    counts = result.stats.llm_judge
    assert counts["confirm_judged"] == len(second) and counts["flagged"] + counts["not_confirmed"] == len(second)
    assert result.stats.promoted_positives >= counts["flagged"] > 0 and len(first) == counts["judged"]
    positives = {r["positive"] for r in pq.read_table(tmp_path / "o.parquet").to_pylist()}
    confirmed = {candidate_of(p) for p in second if len(candidate_of(p)) % 2 == 0}
    assert confirmed <= positives  # written as positives
    assert result.metadata["models"]["llm_judge"]["confirm"]["model"] == "judge-b"


def test_answers_are_parsed_and_unparsed_ones_kept() -> None:
    assert verdict("Relevant.") is True and verdict("irrelevant") is False and verdict("Not relevant") is False
    assert verdict('{"relevant": true}') is True and verdict('{"verdict": "irrelevant"}') is False
    assert verdict("yes") is True and verdict("No.") is False and verdict("maybe?") is None


def test_unparsed_answers_are_counted(server: Scripted, tiny: dict[str, Path], tmp_path: Path) -> None:
    server.chat = lambda model, prompt: "hmm"
    result = mine(tiny, tmp_path / "o.parquet", server)
    assert result.stats.llm_judge["unparsed"] == result.stats.llm_judge["judged"] > 0
    assert result.stats.llm_judge["flagged"] == 0


def test_a_prompt_file_replaces_the_template(server: Scripted, tiny: dict[str, Path], tmp_path: Path) -> None:
    template = tmp_path / "prompt.txt"
    template.write_text("Q: {query}\nP: {positive}\nCandidate passage: {candidate}\n\nIs the candidate relevant?")
    result = mine(tiny, tmp_path / "o.parquet", server, llm_judge_prompt=str(template))
    assert all(p.startswith("Q: ") for p in server.chats())
    assert result.metadata["models"]["llm_judge"]["prompt_sha256"] == \
        hashlib.sha256(template.read_bytes()).hexdigest()
    bad = tmp_path / "bad.txt"
    bad.write_text("no placeholders")
    with pytest.raises(ConfigError, match=r"bad.txt: the template has no \{query\} and no \{candidate\}"):
        mine(tiny, tmp_path / "x.parquet", server, llm_judge_prompt=str(bad))
    with pytest.raises(ConfigError, match="works with --llm-judge"):
        mine(tiny, tmp_path / "x.parquet", server, llm_judge=None, llm_confirm=f"b@{server.url}")
    with pytest.raises(ConfigError, match="MODEL@URL"):
        mine(tiny, tmp_path / "x.parquet", server, llm_judge="just-a-name")


def test_a_stopped_run_resumes_without_asking_twice(server: Scripted, cli: Any, tiny: dict[str, Path],
                                                    tmp_path: Path) -> None:
    base = ["mine", "--corpus", tiny["corpus"], "--queries", tiny["queries"], "--qrels", tiny["qrels"],
            "--llm-judge", f"judge-a@{server.url}", "-o", tmp_path / "o.parquet", "--endpoint-concurrency", 1]
    stopped = cli(*base, "--endpoint-max-requests", 20)
    assert stopped.exit_code == 3 and len(server.chats()) == 20, stopped.output
    done = cli(*base)
    assert done.exit_code == 0, done.output
    prompts = server.chats()
    assert len(prompts) == len(set(prompts)) > 20  # counted on the server: no prompt sent twice
    assert "LLM judge" in done.output and json.loads(json.dumps(True))


def test_a_killed_run_resumes_without_asking_again(server: Scripted, tiny: dict[str, Path], tmp_path: Path) -> None:
    """kill -9 part-way through the judging, then the same command: the server sees each prompt once, but for the
    one request in flight at the kill (--endpoint-concurrency 1)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from helpers import ROOT

    def slow(model: str, prompt: str) -> str:
        time.sleep(0.02)
        return "relevant" if flagged(candidate_of(prompt)) else "irrelevant"

    server.chat = slow
    command = [sys.executable, str(ROOT / "tests" / "fake_cli.py"), "mine", "--corpus", str(tiny["corpus"]),
               "--queries", str(tiny["queries"]), "--qrels", str(tiny["qrels"]), "--llm-judge",
               f"judge-a@{server.url}", "--endpoint-concurrency", "1", "--cache-dir", str(tmp_path / "cache"),
               "-q", "-o", str(tmp_path / "o.parquet")]
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len(server.chats()) < 30 and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    before = len(server.chats())
    assert 30 <= before and not (tmp_path / "o.parquet").exists()
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    prompts = server.chats()
    assert len(prompts) > before and len(prompts) - len(set(prompts)) <= 1


def test_a_chat_model_swapped_mid_run_is_named(server: Scripted, tiny: dict[str, Path], tmp_path: Path) -> None:
    from negmine.endpoints.client import EndpointError

    server.script = ["ok"] * 5 + ["swap"]
    with pytest.raises(EndpointError, match="now answers as 'another-model', not 'judge-a'"):
        mine(tiny, tmp_path / "o.parquet", server, endpoint_concurrency=1)
    assert not (tmp_path / "o.parquet").exists()
