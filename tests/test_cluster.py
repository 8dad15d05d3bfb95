"""Replay sharded by member on Dask distributed (engine/run/cluster.py, `loyalty run/diff --cluster`),
issue 24: a `dask scheduler` and two `dask worker` processes started here give exactly the
sequential result, ledger, report and diff on memory, SQLite and PostgreSQL; a worker killed in
the middle of a task is retried and nothing is doubled.

The expected values are the sequential run's (the engine's single-process answer, itself checked
rule by rule in the rule tests): every assertion compares the two. PostgreSQL tests need
LOYALTY_PG_URL. No timing is asserted.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

pytest.importorskip("distributed")

from distributed import Client  # noqa: E402
from distributed.diagnostics.plugin import WorkerPlugin  # noqa: E402

from engine.run.cluster import Chunk, chunks, partition_of, replay_cluster  # noqa: E402
from engine.store import open_store  # noqa: E402
from tests.test_parallel import (ROOT, example, loyalty, pg_schemas, program_path, sequential,  # noqa: E402,F401
                                 snapshot, sqlite_events, with_bad_lines)

CASES = ["andest", "manda"]


@contextmanager
def dask_cluster(workers: int = 2):
    """A `dask scheduler` and ``workers`` `dask worker` processes (one thread each, with a nanny
    that restarts a killed worker): the address of the scheduler."""
    tmp = Path(tempfile.mkdtemp(prefix="loyalty-dask-"))
    bindir = Path(sys.executable).parent
    dask = str(bindir / "dask") if (bindir / "dask").exists() else "dask"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}   # the workers unpickle this module's plugin
    file = tmp / "scheduler.json"
    procs = [subprocess.Popen([dask, "scheduler", "--port", "0", "--no-dashboard", "--scheduler-file", str(file)],
                              cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        for _ in range(300):
            if file.exists() and file.stat().st_size:
                break
            time.sleep(0.1)
        for _ in range(workers):
            procs.append(subprocess.Popen([dask, "worker", "--scheduler-file", str(file), "--nthreads", "1",
                                           "--no-dashboard"], cwd=tmp, env=env,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        address = json.loads(file.read_text())["address"]
        with Client(address, timeout="30s") as client:
            client.wait_for_workers(workers, timeout=60)
        yield address
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def scheduler():
    with dask_cluster(2) as address:
        yield address


def outcome(result) -> tuple:
    return result.applied, result.skipped, result.rejected, result.effects


# -- the partition ---------------------------------------------------------------------------------

def test_issue24_chunks_keep_each_member_on_its_partition_in_order_and_cut_at_a_shared_id():
    lines = with_bad_lines(example("andest"))
    got = list(chunks(lines, 2, chunk_lines=100))
    kept = [n for c in got for p in c.parts for n, _ in p.lines]
    # every non-blank line once; line 11 of with_bad_lines is the blank one (inserted after index 10)
    assert sorted(kept) == [n for n, raw in enumerate(lines, 1) if raw.strip()]
    for c in got:
        assert isinstance(c, Chunk) and c.lines <= 100
        for k, part in enumerate(c.parts):
            assert [n for n, _ in part.lines] == sorted(n for n, _ in part.lines)
            for member in part.members:
                assert partition_of(member, 2) == k
    # the id of line 1 comes back under member 'someone-else' (line 90: 81 lines and 8 inserts
    # before it); on another partition it opens a new chunk, so the first use is judged first
    first = json.loads(lines[0])
    again = next(n for n, raw in enumerate(lines, 1) if b"someone-else" in raw)
    assert again == 90
    assert partition_of("someone-else", 2) != partition_of(first["member"], 2)   # crc32: fixed on every machine
    starts = [min(n for p in c.parts for n, _ in p.lines) for c in got]
    assert 90 in starts, starts


# -- the same answers as a sequential run ----------------------------------------------------------

@pytest.mark.parametrize("pid", CASES)
@pytest.mark.parametrize("kind", ["memory", "sqlite", "postgresql"])
def test_issue24_cluster_replay_equals_the_sequential_one(pid, kind, scheduler, tmp_path, request):
    lines = with_bad_lines(example(pid))
    if kind == "postgresql":
        seq_spec, spec = request.getfixturevalue("pg_schemas")
    elif kind == "sqlite":
        seq_spec, spec = str(tmp_path / "seq.db"), str(tmp_path / "par.db")
    else:
        seq_spec = spec = ":memory:"
    expected, seq_store, program = sequential(pid, lines, seq_spec)
    assert expected.rejected and expected.applied and expected.skipped   # the bad lines are there
    store = open_store(spec, program.id)
    # chunks of 50 lines: many chunks, a member's events spread over them
    got = replay_cluster(program_path(pid), lines, store, spec, address=scheduler, chunk_lines=50)
    assert outcome(got) == outcome(expected)
    assert snapshot(store, program) == snapshot(seq_store, program)
    if kind == "sqlite":
        assert sqlite_events(tmp_path / "par.db") == sqlite_events(tmp_path / "seq.db")
    # a rerun skips everything, on the cluster as sequentially
    if kind != "memory":
        from engine.run.runner import Runner

        again = replay_cluster(program_path(pid), lines, store, spec, address=scheduler, chunk_lines=50)
        seq_again = Runner(program, seq_store).run(lines)
        assert outcome(again) == outcome(seq_again) and again.applied == []
        assert snapshot(store, program) == snapshot(seq_store, program)
    store.close()
    seq_store.close()


@pytest.mark.parametrize("kind", ["memory", "sqlite", "postgresql"])
def test_issue24_cli_run_with_cluster_reports_as_the_sequential_run(kind, scheduler, tmp_path, request):
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"".join(with_bad_lines(example("manda"))))
    if kind == "postgresql":
        dbs = request.getfixturevalue("pg_schemas")
    elif kind == "sqlite":
        dbs = [str(tmp_path / "1.db"), str(tmp_path / "2.db")]
    else:
        dbs = [":memory:", ":memory:"]
    seq = subprocess.run([*loyalty(), "run", program_path("manda"), str(events), "--db", dbs[0], "--json"],
                         capture_output=True, text=True, timeout=120)
    par = subprocess.run([*loyalty(), "run", program_path("manda"), str(events), "--db", dbs[1], "--json",
                          "--cluster", scheduler], capture_output=True, text=True, timeout=120)
    assert par.returncode == seq.returncode == 1, par.stderr     # bad lines: exit 1 both ways
    assert "Traceback" not in par.stderr
    assert par.stderr == seq.stderr
    assert json.loads(par.stdout) == json.loads(seq.stdout)


def test_issue24_cli_run_reads_a_folder_of_files_as_one_stream(scheduler, tmp_path):
    lines = with_bad_lines(example("andest"))
    whole = tmp_path / "all.jsonl"
    whole.write_bytes(b"".join(lines))
    folder = tmp_path / "parts"
    folder.mkdir()
    third = len(lines) // 3
    for i, part in enumerate((lines[:third], lines[third:2 * third], lines[2 * third:])):
        (folder / f"events-{i}.jsonl").write_bytes(b"".join(part))
    seq = subprocess.run([*loyalty(), "run", program_path("andest"), str(whole), "--db", ":memory:", "--json"],
                         capture_output=True, text=True, timeout=120)
    par = subprocess.run([*loyalty(), "run", program_path("andest"), str(folder), "--db", ":memory:", "--json",
                          "--cluster", scheduler], capture_output=True, text=True, timeout=120)
    assert par.returncode == seq.returncode and "Traceback" not in par.stderr, par.stderr
    assert json.loads(par.stdout) == json.loads(seq.stdout)


def test_issue24_cli_diff_with_cluster_equals_the_sequential_diff(scheduler, tmp_path):
    # the ANS campaign candidate against the live program: a diff with changes in it
    old, new = program_path("ansage"), str(ROOT / "examples" / "ansage" / "campaign.yaml")
    events = str(ROOT / "examples" / "ansage" / "events.jsonl")
    seq = subprocess.run([*loyalty(), "diff", old, new, events, "--json"], capture_output=True, text=True, timeout=120)
    par = subprocess.run([*loyalty(), "diff", old, new, events, "--json", "--cluster", scheduler],
                         capture_output=True, text=True, timeout=120)
    assert par.returncode == seq.returncode == 0, par.stderr
    assert json.loads(par.stdout) == json.loads(seq.stdout)


def test_issue24_cli_cluster_with_no_scheduler_says_so(tmp_path):
    proc = subprocess.run([*loyalty(), "run", program_path("andest"), str(ROOT / "examples/andest/events.jsonl"),
                           "--db", ":memory:", "--cluster", "tcp://127.0.0.1:9"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1
    assert "no Dask scheduler answers there" in proc.stderr and "Traceback" not in proc.stderr


# -- a worker killed mid-run -----------------------------------------------------------------------

class KillOnce(WorkerPlugin):
    """Kills the worker process (os._exit, as a crash or an OOM kill would) at the ``at``-th event it
    applies, once across the cluster (the first worker to create ``flag`` does it). The nanny then
    starts a new worker; the scheduler runs the lost task again."""

    def __init__(self, flag: str, at: int):
        self.flag, self.at = flag, at

    def setup(self, worker):
        from engine.run import runner as runner_module

        flag, at = self.flag, self.at
        original = runner_module.Runner._apply_event
        count = [0]

        def apply_event(self, event, result):
            count[0] += 1
            if count[0] == at:
                try:
                    fd = os.open(flag, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                except FileExistsError:
                    pass
                else:
                    os.close(fd)
                    os._exit(9)
            return original(self, event, result)

        runner_module.Runner._apply_event = apply_event


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_issue24_a_worker_killed_mid_task_is_retried_without_doubling(kind, tmp_path, request):
    """Its own cluster (the plugin stays with the workers): the kill lands in the middle of a task
    (the 60th event a worker applies; each task has some 120, chunks of 240 lines on 2 partitions),
    so for PostgreSQL inside the task's open transaction."""
    lines = example("andest")
    if kind == "postgresql":
        seq_spec, spec = request.getfixturevalue("pg_schemas")
    else:
        seq_spec, spec = str(tmp_path / "seq.db"), str(tmp_path / "par.db")
    expected, seq_store, program = sequential("andest", lines, seq_spec)
    flag = str(tmp_path / "killed")
    with dask_cluster(2) as address, Client(address, timeout="30s") as client:
        client.register_plugin(KillOnce(flag, 60))
        store = open_store(spec, program.id)
        got = replay_cluster(program_path("andest"), lines, store, spec, client=client, chunk_lines=240)
    assert Path(flag).exists()          # a worker was killed
    assert outcome(got) == outcome(expected)
    assert snapshot(store, program) == snapshot(seq_store, program)   # nothing doubled, nothing lost
    if kind == "sqlite":
        assert sqlite_events(tmp_path / "par.db") == sqlite_events(tmp_path / "seq.db")
    store.close()
    seq_store.close()


class KillAfterCommit(WorkerPlugin):
    """Kills the worker process right after the first COMMIT of a replay chunk on PostgreSQL, once
    across the cluster: the task's events are in the ledger, its answer never reached the scheduler,
    and the task runs again on a new worker."""

    def __init__(self, flag: str):
        self.flag = flag

    def setup(self, worker):
        from engine.store.postgres import PostgresStore

        flag = self.flag
        original = PostgresStore._flush_chunk

        def flush_chunk(self, commit):
            original(self, commit)
            if commit:
                try:
                    fd = os.open(flag, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                except FileExistsError:
                    return
                os.close(fd)
                os._exit(9)

        PostgresStore._flush_chunk = flush_chunk


def test_issue24_a_task_retried_after_its_commit_reports_what_it_applied(tmp_path, request):
    """The gap in retry reporting: a task whose worker is lost after its transaction committed is run
    again; it must answer its events as applied (with their effects), as the sequential run lists
    them, not as skipped replays. Its outcome was written with its commit (``note_commit``)."""
    lines = example("andest")
    seq_spec, spec = request.getfixturevalue("pg_schemas")
    expected, seq_store, program = sequential("andest", lines, seq_spec)
    flag = str(tmp_path / "killed")
    with dask_cluster(2) as address, Client(address, timeout="30s") as client:
        client.register_plugin(KillAfterCommit(flag))
        store = open_store(spec, program.id)
        got = replay_cluster(program_path("andest"), lines, store, spec, client=client, chunk_lines=240)
    assert Path(flag).exists()          # a worker was killed after a commit
    assert not expected.skipped and len(got.applied) == len(expected.applied) == 485   # every line once
    assert outcome(got) == outcome(expected)
    assert snapshot(store, program) == snapshot(seq_store, program)
    assert store.notes("cluster-task:") == {}     # the run's notes are gone with it
    store.close()
    seq_store.close()
