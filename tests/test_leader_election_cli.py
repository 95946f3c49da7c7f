"""challenge_leader_election.py as a learner runs it: the timeline, Ctrl-C, two copies at once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from kazoo.client import KazooClient

from tests.cli import interrupt, read_until, run_script, start_script
from zklab.faults import wait_until

SCRIPT = "challenge_leader_election.py"
CANDIDATES = "/lab/leader-election/candidates"
FAST = ["--session-timeout", "1.5", "--interval", "1"]


def test_duration_run_prints_timeline_and_summary(zk_hosts: str, make_client: Callable[..., KazooClient]) -> None:
    """A seeded chaos run ends by itself, with one leader at a time and no node left behind; --no-timeline
    leaves the picture out."""
    result = run_script(SCRIPT, "--zk", zk_hosts, "--duration", "7", "--workers", "3", "--seed", "4", "--no-timeline",
                        *FAST)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    out = result.stdout
    assert "waiting in line" not in out  # --no-timeline leaves the picture out
    assert "ELECTED leader, epoch" in out and "joined the election" in out
    assert "most leaders at once      1" in out
    assert "ledger writes accepted" in out and "hand-off p50 / p95" in out
    observer = make_client()
    assert observer.get_children(CANDIDATES) == []
    assert b'"epoch"' in observer.get("/lab/leader-election/ledger")[0]  # it ran in our namespace


def test_ctrl_c_closes_every_session(zk_hosts: str, make_client: Callable[..., KazooClient]) -> None:
    """SIGINT: exit 0, no traceback, a summary, and no ephemeral node left."""
    proc = start_script(SCRIPT, "--zk", zk_hosts, "--workers", "4", *FAST)
    read_until(proc, "ELECTED leader")
    observer = make_client()
    wait_until(lambda: len(observer.get_children(CANDIDATES)) == 4, 10, "all four candidates")
    code, out, err = interrupt(proc)
    assert code == 0, err
    assert "Traceback" not in err and "summary" in out
    assert observer.get_children(CANDIDATES) == []


def test_two_copies_join_one_election(zk_hosts: str, make_client: Callable[..., KazooClient]) -> None:
    """Two processes against one ZooKeeper: one queue, unique names, a single leader."""
    procs = [start_script(SCRIPT, "--zk", zk_hosts, "--workers", "2", "--interval", "600") for _ in range(2)]
    try:
        for proc in procs:
            read_until(proc, "joined the election")
        observer = make_client()
        names = wait_until(lambda: (n := [c.split("__")[1] for c in observer.get_children(CANDIDATES)])
                           and len(n) == 4 and n, 15, "four candidates from two processes")
        assert len(set(names)) == 4
        assert len({name.split("-")[1] for name in names}) == 2  # two runs, two suffixes
    finally:
        results = [interrupt(proc) for proc in procs]
    assert [code for code, _, _ in results] == [0, 0]
    elected = sum(out.count("ELECTED") for _, out, _ in results)
    assert elected >= 1


def test_unwritable_events_file_is_one_line(tmp_path: Path) -> None:
    """--events naming a file that cannot be appended to: argparse's one-line error, exit 2."""
    result = run_script(SCRIPT, "--events", str(tmp_path / "no-such-dir" / "events.jsonl"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].endswith("No such file or directory")
