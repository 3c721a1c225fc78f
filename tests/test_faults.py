"""Faults with real processes: parallel runs on one cache, kill -9 and Ctrl-C mid-run, read-only and full file
systems, and models that must be refused before any retrieval.

Read-only and full file systems are tmpfs mounts made inside a private mount namespace (``unshare -m``), so they
vanish with the process; where the machine does not allow that, the same errors are injected as OSErrors at the
write.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fakes import FakeEncoder
from helpers import NO_SCORING, TINY, tiny_bert

import negmine

TESTS = Path(__file__).resolve().parent
FAKE_CLI = TESTS / "fake_cli.py"


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def temporaries(*folders: Path) -> list[Path]:
    """Temporary files or folders (``.NAME.HOST-PID.RANDOM.tmp``) left anywhere under ``folders``."""
    return [p for f in folders if f.exists() for p in f.rglob("*") if p.name.endswith(".tmp")]


def tiny_args(output: Path, *extra: Any) -> list[str]:
    return ["mine", "--corpus", str(TINY / "corpus.parquet"), "--queries", str(TINY / "queries.parquet"),
            "--qrels", str(TINY / "qrels.parquet"), "--output", str(output), *map(str, extra)]


def fake_cli(*args: str) -> list[str]:
    return [sys.executable, str(FAKE_CLI), *args]


def run(cmd: list[str], env: Optional[dict[str, str]] = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})


def one_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("negmine: error: "), stderr
    return lines[0]


# --- 1. parallel runs sharing a cache ----------------------------------------------------------------------------

WORKER = textwrap.dedent("""
    import hashlib, json, sys
    sys.path.insert(0, {tests!r})
    import negmine, negmine.storage.embeddings as cache, negmine.retrieve.encoders as models
    from fakes import FakeEncoder
    cache.MERGE_FANIN, cache.COMMIT_ROWS, cache.COMMIT_SECONDS = 2, 1, 0.0   # many small segments, many merges
    cache.MAX_SHARDS = 2   # what negmine before segments called its merge threshold
    models.STREAM_CHUNK = 3
    jobs = json.loads(open(sys.argv[1]).read())
    failures = []
    for i, job in enumerate(jobs):
        out = job["out"]
        try:
            negmine.mine(job["corpus"], job["queries"], job["qrels"], output=out, encoder=FakeEncoder(),
                         retriever="dense", cache_dir=job["cache"])
            digest = hashlib.sha256(open(out, "rb").read()).hexdigest()
            if digest != job["expected"]:
                failures.append(f"job {{i}}: output differs")
        except Exception as exc:
            failures.append(f"job {{i}}: {{type(exc).__name__}}: {{exc}}")
    print(json.dumps(failures))
    sys.exit(1 if failures else 0)
""")


def test_parallel_processes_share_one_cache(tmp_path: Path) -> None:
    """Four processes mine on one cache at once, each alternating a corpus with texts of its own (new segments
    to write, merges on every other write) and a corpus they all share (reads of segments being merged): every
    run succeeds and every output equals the one-process output."""
    corpus = pq.read_table(TINY / "corpus.parquet")
    base, extra = corpus.slice(0, 60), corpus.slice(60, 4)
    queries = TINY / "queries.parquet"
    qrels = tmp_path / "qrels.parquet"  # positives that every corpus holds
    rows = [r for r in pq.read_table(TINY / "qrels.parquet").to_pylist() if int(r["corpus-id"][1:]) <= 60]
    pq.write_table(pa.Table.from_pylist(rows), qrels)

    def variant(name: str) -> tuple[Path, str]:
        """A corpus: the base plus four documents whose texts only this variant has; and its one-process output."""
        texts = pa.array([f"{t} ({name})" for t in extra.column("text").to_pylist()])
        path = tmp_path / f"corpus-{name}.parquet"
        pq.write_table(pa.concat_tables([base, extra.set_column(extra.schema.get_field_index("text"), "text",
                                                                texts)]), path)
        out = tmp_path / f"expected-{name}.parquet"
        negmine.mine(path, queries, qrels, output=out, encoder=FakeEncoder(), retriever="dense",
                     cache_dir=tmp_path / "alone")
        return path, sha(out)

    shared = variant("shared")
    cache = tmp_path / "shared-cache"
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(tests=str(TESTS)))
    procs = []
    for w in range(4):
        jobs = []
        for i in range(12):
            for path, expected in (variant(f"{w}-{i}"), shared):
                jobs.append({"corpus": str(path), "queries": str(queries), "qrels": str(qrels), "cache": str(cache),
                             "out": str(tmp_path / f"w{w}-{len(jobs)}.parquet"), "expected": expected})
        (tmp_path / f"jobs{w}.json").write_text(json.dumps(jobs))
        procs.append(subprocess.Popen([sys.executable, str(script), str(tmp_path / f"jobs{w}.json")],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = [p.communicate(timeout=300) + (p.returncode,) for p in procs]
    for out, err, code in results:
        assert code == 0, (out, err[-2000:])
        assert json.loads(out.strip().splitlines()[-1]) == []
    segments = list((cache / "embeddings").glob("*/*.json"))
    assert 0 < len(segments) < 20  # merged as they grew
    assert temporaries(cache) == []


# --- 5. kill -9 and Ctrl-C mid-run -------------------------------------------------------------------------------

def committed(cache: Path) -> int:
    """Vectors committed to the document embedding caches under ``cache``."""
    total = 0
    for manifest in cache.glob("embeddings/*/*.json"):
        try:
            total += json.loads(manifest.read_text())["count"]
        except (OSError, ValueError, KeyError):  # being replaced by a merge
            pass
    return total


def start_slow(output: Path, cache: Path, *extra: str) -> subprocess.Popen:
    """A dense mine of examples/tiny whose encoder takes 40 ms per two texts, committing every batch."""
    env = {**os.environ, "NEGMINE_TEST_DELAY": "0.04", "NEGMINE_TEST_COMMIT": "1"}
    # SIGINT as a terminal delivers it: a shell starts background jobs (a suite run with `&`) with SIGINT ignored,
    # which the child would inherit, and Python leaves an ignored SIGINT ignored
    return subprocess.Popen(fake_cli(*tiny_args(output, "--retriever", "dense", "--cache-dir", cache, *extra)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def wait_for(condition: Callable[[], bool], proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


class Recording(FakeEncoder):
    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []

    def encode(self, texts: Any, kind: str, progress: Any = None) -> np.ndarray:
        self.texts.extend(texts)
        return super().encode(texts, kind)


def test_kill_9_keeps_the_finished_chunks(tmp_path: Path) -> None:
    out, cache = tmp_path / "out" / "neg.parquet", tmp_path / "cache"
    out.parent.mkdir()
    proc = start_slow(out, cache)
    wait_for(lambda: committed(cache) >= 20, proc)
    proc.kill()
    proc.wait()
    done = committed(cache)
    assert 20 <= done < 120 and not out.exists()

    # the rerun encodes only what was not committed, and writes what an uninterrupted run writes
    encoder = Recording()
    negmine.mine(TINY / "corpus.parquet", TINY / "queries.parquet", TINY / "qrels.parquet", output=out,
                 encoder=encoder, retriever="dense", cache_dir=cache)
    documents = set(negmine.read_corpus(TINY / "corpus.parquet").texts)
    assert len([t for t in encoder.texts if t in documents]) == len(documents) - done
    clean = tmp_path / "clean.parquet"
    negmine.mine(TINY / "corpus.parquet", TINY / "queries.parquet", TINY / "qrels.parquet", output=clean,
                 encoder=FakeEncoder(), retriever="dense", cache_dir=tmp_path / "fresh")
    assert out.read_bytes() == clean.read_bytes()
    assert temporaries(cache, out.parent) == []  # what the killed process left was cleaned up


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_exits_cleanly(tmp_path: Path, sig: int, code: int) -> None:
    out, cache = tmp_path / "out" / "neg.parquet", tmp_path / "cache"
    out.parent.mkdir()
    proc = start_slow(out, cache, "--candidates-output", tmp_path / "out" / "cand.parquet")
    wait_for(lambda: committed(cache) >= 4, proc)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr
    assert stderr.strip().splitlines()[-1] == "negmine: interrupted"
    assert "Traceback" not in stderr and stdout == ""
    assert list(out.parent.iterdir()) == []
    assert temporaries(cache) == []


# --- 2. broken environments --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def mount_ns() -> bool:
    """Whether this machine lets a test mount a tmpfs in a private mount namespace."""
    if os.geteuid() != 0 or not Path("/usr/bin/unshare").exists():
        return False
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "d=$(mktemp -d) && mount -t tmpfs -o size=64k tmpfs $d "
                            "&& umount $d && rmdir $d"], capture_output=True)
    return probe.returncode == 0


def in_mounts(mounts: dict[Path, str], cmd: list[str], listing: Path) -> tuple[int, str, list[str]]:
    """Run ``cmd`` with a tmpfs at each path (``"ro"``, or a size such as ``"8k"``), or the path itself mounted
    read-only (``"ro-bind"``), in a private mount namespace; returns its exit code, its stderr and what ``listing``
    holds afterwards, recursively (the mounts vanish with the shell)."""
    script = ["set -u"]
    for path, how in mounts.items():
        path.mkdir(parents=True, exist_ok=True)
        where = shlex.quote(str(path))
        if how == "ro-bind":  # the folder as it is, read-only
            script.append(f"mount --bind {where} {where} && mount -o remount,ro,bind {where}")
            continue
        size = "64k" if how == "ro" else how
        script.append(f"mount -t tmpfs -o size={size} tmpfs {where}")
        if how == "ro":
            script.append(f"mount -o remount,ro {where}")
    script.append(f"{shlex.join(cmd)}; rc=$?; echo LISTING; cd {shlex.quote(str(listing))} && "
                  "find . -mindepth 1 | sed 's|^[.]/||' | sort; exit $rc")
    proc = subprocess.run(["unshare", "-m", "sh", "-c", "\n".join(script)], capture_output=True, text=True,
                          timeout=180)
    listed = proc.stdout.split("LISTING", 1)[1].split() if "LISTING" in proc.stdout else []
    return proc.returncode, proc.stderr, listed


def inject(monkeypatch: pytest.MonkeyPatch, target: str, code: int) -> None:
    """Make ``target`` (``module.attr``) raise ``OSError(code)``: the fallback where no mount namespace exists."""
    import importlib

    module, attr = target.rsplit(".", 1)

    def fail(*args: Any, **kwargs: Any) -> Any:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(importlib.import_module(module), attr, fail)


def cli_in_process(*args: Any) -> Any:
    from typer.testing import CliRunner

    from negmine.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.mark.parametrize("which", ["--output", "--candidates-output"])
def test_read_only_output_folder_fails_before_any_work(tmp_path: Path, mount_ns: bool, which: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    ro, cache = tmp_path / "ro", tmp_path / "cache"
    out = ro / "neg.parquet" if which == "--output" else tmp_path / "neg.parquet"
    extra = ["--candidates-output", ro / "cand.parquet"] if which == "--candidates-output" else []
    args = tiny_args(out, *NO_SCORING, "--cache-dir", cache, *extra)
    if mount_ns:
        code, stderr, listed = in_mounts({ro: "ro"}, fake_cli(*args), ro)
        assert listed == []
    else:
        ro.mkdir()
        inject(monkeypatch, "tempfile.mkstemp", errno.EROFS)
        result = cli_in_process(*args)
        code, stderr = result.exit_code, result.stderr
    line = one_error(stderr)
    assert code == 1
    assert f"{ro}: {which} folder is not writable: read-only file system" in line
    assert not (cache / "bm25").exists()  # found before the work: no index was built
    assert not out.exists()


def test_full_disk_while_writing_the_output(tmp_path: Path, mount_ns: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    full = tmp_path / "full"
    out = full / "neg.parquet"
    args = tiny_args(out, *NO_SCORING, "--cache-dir", tmp_path / "cache")
    if mount_ns:
        code, stderr, listed = in_mounts({full: "8k"}, fake_cli(*args), full)
        assert listed == []  # no partial output, no temporary file
    else:
        full.mkdir()
        inject(monkeypatch, "pyarrow.parquet.write_table", errno.ENOSPC)
        result = cli_in_process(*args)
        code, stderr = result.exit_code, result.stderr
        assert list(full.iterdir()) == []
    assert code == 1
    assert one_error(stderr) == f"negmine: error: {out}: no space left on the device: free some space or write " \
                                "elsewhere"


def test_full_disk_while_writing_the_cache(tmp_path: Path, mount_ns: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    out = tmp_path / "out" / "neg.parquet"
    out.parent.mkdir()
    args = tiny_args(out, "--retriever", "dense", "--cache-dir", cache)
    if mount_ns:
        code, stderr, listed = in_mounts({cache: "16k"}, fake_cli(*args), cache)
        assert not [n for n in listed if n.endswith(".tmp")]
    else:
        inject(monkeypatch, "numpy.save", errno.ENOSPC)
        result = cli_in_process(*args)
        code, stderr = result.exit_code, result.stderr
        assert temporaries(cache) == []
    assert code == 1
    line = one_error(stderr)
    assert str(cache) in line and "no space left on the device" in line
    assert list(out.parent.iterdir()) == []


def test_read_only_cache_dir(tmp_path: Path, mount_ns: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    out = tmp_path / "out" / "neg.parquet"
    out.parent.mkdir()
    args = tiny_args(out, *NO_SCORING, "--cache-dir", cache)
    if mount_ns:
        code, stderr, _ = in_mounts({cache: "ro"}, fake_cli(*args), cache)
    else:
        cache.mkdir()
        inject(monkeypatch, "tempfile.mkstemp", errno.EROFS)
        result = cli_in_process(*args)
        code, stderr = result.exit_code, result.stderr
    assert code == 1
    assert one_error(stderr) == (f"negmine: error: {cache}: cannot be written (read-only), and it lacks the BM25 "
                                 "index of this corpus with these settings (method=lucene k1=1.5 b=0.75 "
                                 "stemmer=english stopwords=en); build that ahead with negmine index and the same "
                                 "options into a writable folder, or give a writable --cache-dir")
    assert list(out.parent.iterdir()) == []


def test_cache_part_that_is_a_file(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "embeddings").write_text("not a folder")
    out = tmp_path / "out" / "neg.parquet"
    out.parent.mkdir()
    proc = run(fake_cli(*tiny_args(out, "--retriever", "dense", "--cache-dir", cache)))
    assert proc.returncode == 1
    line = one_error(proc.stderr)
    assert f"{cache / 'embeddings'}: is a file, but negmine keeps its embeddings cache there" in line
    assert list(out.parent.iterdir()) == []


def test_report_into_a_read_only_folder(tmp_path: Path, mount_ns: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    mined = tmp_path / "neg.parquet"
    negmine.mine(TINY / "corpus.parquet", TINY / "queries.parquet", TINY / "qrels.parquet", output=mined,
                 retriever="bm25", relative_margin=None, max_positive_similarity=None, positive_proximity=None)
    ro = tmp_path / "ro"
    args = ["report", str(mined), "--png", str(ro / "r.png"), "--html", str(tmp_path / "r.html")]
    if mount_ns:
        code, stderr, listed = in_mounts({ro: "ro"}, fake_cli(*args), ro)
        assert listed == []
    else:
        ro.mkdir()
        inject(monkeypatch, "tempfile.mkstemp", errno.EROFS)
        result = cli_in_process(*args)
        code, stderr = result.exit_code, result.stderr
    assert code == 1
    assert f"{ro}: --png folder is not writable" in one_error(stderr)
    assert not (tmp_path / "r.html").exists()


# --- 3. models that must be refused, and runs that write nothing -------------------------------------------------

@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A bare BERT (no head), a sequence-classification config whose checkpoint lacks the head, and a
    sentence-transformers bi-encoder folder: all tiny, built here."""
    root = tmp_path_factory.mktemp("models")
    bare, bi = tiny_bert(root)
    headless = root / "headless"  # claims a classification head, but the weights are a bare BERT's
    shutil.copytree(bare, headless)
    cfg = json.loads((headless / "config.json").read_text())
    cfg["architectures"] = ["BertForSequenceClassification"]
    cfg["num_labels"] = 1
    (headless / "config.json").write_text(json.dumps(cfg))
    return {"bare": bare, "headless": headless, "bi": bi}


@pytest.mark.parametrize(("model", "message"), [
    ("bare", "is a bare transformer without a classification head, not a cross-encoder"),
    ("headless", "its checkpoint lacks the classification weights"),
])
def test_unusable_reranker_is_refused_before_retrieval(tmp_path: Path, tiny_models: dict[str, Path], model: str,
                                                       message: str) -> None:
    cache = tmp_path / "cache"
    out = tmp_path / "out" / "neg.parquet"
    out.parent.mkdir()
    proc = run(fake_cli(*tiny_args(out, "--retriever", "bm25", "--reranker", tiny_models[model], "--cache-dir",
                                   cache)), env={"HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 2, proc.stderr
    line = one_error(proc.stderr)
    assert f"--reranker {tiny_models[model]}: " in line and message in line
    assert not (cache / "bm25").exists() and list(out.parent.iterdir()) == []


def test_a_bi_encoder_reranker_judges_by_cosine(tmp_path: Path, tiny_models: dict[str, Path]) -> None:
    out = tmp_path / "neg.parquet"
    result = negmine.mine(TINY / "corpus.parquet", TINY / "queries.parquet", TINY / "qrels.parquet", output=out,
                          retriever="bm25", reranker=str(tiny_models["bi"]), cache_dir=tmp_path / "cache")
    assert result.stats.negatives_written > 0 and result.stats.pairs_scored > 0
    judge = negmine.read_metadata(out)["models"]["reranker"]
    assert judge["type"] == "bi-encoder" and judge["model"]["model"] == str(tiny_models["bi"])
    assert negmine.read_metadata(out)["resolved"]["relative_margin"] == 0.05  # another model judges: a margin


def test_a_run_that_drops_everything_fails(tmp_path: Path) -> None:
    out = tmp_path / "out" / "neg.parquet"
    out.parent.mkdir()
    args = tiny_args(out, "--retriever", "bm25", "--max-score", "-100", "--cache-dir", tmp_path / "cache")
    proc = run(fake_cli(*args))
    assert proc.returncode == 1
    assert one_error(proc.stderr).startswith("negmine: error: no negatives written: every candidate was dropped, "
                                             "most by the max score rule (")
    assert "raise --max-score" in proc.stderr and list(out.parent.iterdir()) == []
    proc = run(fake_cli(*args, "--allow-empty", "-q"))
    assert proc.returncode == 0 and pq.read_table(out).num_rows == 0


def test_an_unusable_device_is_refused_before_retrieval(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    cache = tmp_path / "cache"
    out = tmp_path / "neg.parquet"
    proc = run(fake_cli(*tiny_args(out, "--device", "cuda", "--cache-dir", cache)))
    assert proc.returncode == 2
    assert "--device cuda: torch" in one_error(proc.stderr) and "sees no cuda device" in proc.stderr
    assert not (cache / "bm25").exists() and not out.exists()


# --- 6. what a new user tripped over (issue 17): a closed pipe, read-only indexes, a full disk mid-segment ---------

def pipe_into_a_reader_that_stops(args: list[str], lines: int) -> tuple[int, str, list[str]]:
    """Run ``args`` with stdout into a pipe whose reader takes ``lines`` lines and closes it (``| head -N``);
    returns the exit code, stderr and the lines read."""
    proc = subprocess.Popen(fake_cli(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    got = [proc.stdout.readline().decode() for _ in range(lines)]
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    return proc.wait(timeout=120), stderr, got


@pytest.mark.parametrize(("batch", "lines"), [(1024, 2), (1, 2), (1024, 0), (7, 150)])
def test_a_reader_that_stops_early_ends_the_run_the_same_way(tmp_path: Path, batch: int, lines: int) -> None:
    args = tiny_args(Path("-"), *NO_SCORING, "--cache-dir", tmp_path / "cache", "--query-batch-size", batch)
    code, stderr, got = pipe_into_a_reader_that_stops(args, lines)
    assert all(json.loads(line)["anchor"] for line in got)
    assert code == 141, stderr
    assert "Traceback" not in stderr and "negatives written" not in stderr  # no summary of rows not written
    assert stderr.strip().splitlines()[-1] == ("negmine: error: stdout: broken pipe: the reader stopped reading, so "
                                               "the rest was not written")
    assert not list((tmp_path / "cache").glob("runs/*/*"))  # nothing left to resume: the run failed, it was not cut


def test_a_reader_that_reads_everything_succeeds(tmp_path: Path) -> None:
    proc = subprocess.run(fake_cli(*tiny_args(Path("-"), *NO_SCORING, "--cache-dir", tmp_path / "cache", "-q")),
                          capture_output=True, timeout=120)
    assert proc.returncode == 0 and len(proc.stdout.splitlines()) == 200


def test_a_read_only_index_dir_is_read(tmp_path: Path, mount_ns: bool) -> None:
    if not mount_ns:
        pytest.skip("needs a private mount namespace (root and unshare)")
    idx, out = tmp_path / "idx", tmp_path / "out"
    out.mkdir()
    corpus = TINY / "corpus.parquet"
    built = run(fake_cli("index", "--corpus", str(corpus), "--index-dir", str(idx), "-q"))
    assert built.returncode == 0, built.stderr
    writable = run(fake_cli(*tiny_args(out / "writable.parquet", "--index-dir", idx, "-q")))
    assert writable.returncode == 0, writable.stderr
    before = sorted(str(p.relative_to(idx)) for p in idx.rglob("*"))

    code, stderr, _ = in_mounts({idx: "ro-bind"}, fake_cli(*tiny_args(out / "ro.parquet", "--index-dir", idx)), out)
    assert code == 0, stderr
    assert (out / "ro.parquet").read_bytes() == (out / "writable.parquet").read_bytes()
    assert "error" not in stderr and "warning" not in stderr

    # a part the run needs is missing there: one line naming it, before any work, nothing written
    code, stderr, listed = in_mounts({idx: "ro-bind"}, fake_cli(*tiny_args(out / "k09.parquet", "--index-dir", idx,
                                                                            "--bm25-k1", "0.9")), out)
    assert code == 1
    assert one_error(stderr) == (f"negmine: error: {idx}: cannot be written (read-only), and it lacks the BM25 index "
                                 "of this corpus with these settings (method=lucene k1=0.9 b=0.75 stemmer=english "
                                 "stopwords=en); build that ahead with negmine index and the same options into a "
                                 "writable folder, or give a writable --cache-dir")
    assert listed == ["ro.parquet", "writable.parquet"]
    assert sorted(str(p.relative_to(idx)) for p in idx.rglob("*")) == before  # nothing was written into it


def test_a_read_only_warm_cache_dir_is_read(tmp_path: Path, mount_ns: bool) -> None:
    if not mount_ns:
        pytest.skip("needs a private mount namespace (root and unshare)")
    cache, out = tmp_path / "cache", tmp_path / "out"
    out.mkdir()
    warm = run(fake_cli(*tiny_args(out / "warm.parquet", "--cache-dir", cache, "-q")))
    assert warm.returncode == 0, warm.stderr
    code, stderr, _ = in_mounts({cache: "ro-bind"}, fake_cli(*tiny_args(out / "ro.parquet", "--cache-dir", cache,
                                                                          "-q")), out)
    assert code == 0 and stderr == "", stderr
    assert (out / "ro.parquet").read_bytes() == (out / "warm.parquet").read_bytes()


def test_a_full_disk_mid_segment_leaves_no_orphan_file(tmp_path: Path, mount_ns: bool,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    cache, out = tmp_path / "cache", tmp_path / "out"
    out.mkdir()
    args = tiny_args(out / "neg.parquet", "--retriever", "dense", "--cache-dir", cache)
    if mount_ns:  # room for the keys of a segment (16 bytes a text), not for its vectors (256 bytes a text)
        code, stderr, listed = in_mounts({cache / "embeddings": "12k"}, fake_cli(*args), cache / "embeddings")
    else:
        import negmine.storage.embeddings as cache_module

        real, calls = cache_module.atomic_save_npy, []

        def second_fails(path: Path, array: np.ndarray) -> None:
            calls.append(path)
            if len(calls) == 2:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            real(path, array)

        monkeypatch.setattr(cache_module, "atomic_save_npy", second_fails)
        result = cli_in_process(*args)
        code, stderr = result.exit_code, result.stderr
        listed = [str(p.relative_to(cache / "embeddings")) for p in (cache / "embeddings").rglob("*")]
    assert code == 1 and "no space left on the device" in one_error(stderr)
    assert not [n for n in listed if n.endswith((".npy", ".tmp"))], listed  # no keys without vectors, no temporary
