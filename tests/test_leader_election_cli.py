"""challenge_leader_election.py as a learner runs it: output, Ctrl-C, bad input, two copies at once."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable

import pytest
from kazoo.client import KazooClient

from tests.cli import ROOT, interrupt, read_until, run_script, start_script, third_party_imports, unreachable_hosts
from zklab.faults import wait_until

SCRIPT = "challenge_leader_election.py"
CANDIDATES = "/lab/leader-election/candidates"
FAST = ["--session-timeout", "1.5", "--interval", "1"]


def test_imports_only_kazoo_and_the_standard_library() -> None:
    """The script stands alone: a learner can copy this one file."""
    assert third_party_imports(SCRIPT) == {"kazoo"}


def test_import_has_no_side_effects() -> None:
    """Importing the module prints nothing and connects to nothing."""
    result = subprocess.run([sys.executable, "-c", "import challenge_leader_election"], cwd=ROOT,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and result.stdout == "" and result.stderr == ""


def test_duration_run_prints_timeline_and_summary(zk_hosts: str, make_client: Callable[..., KazooClient]) -> None:
    """A seeded chaos run ends by itself, with one leader at a time and no node left behind."""
    result = run_script(SCRIPT, "--zk", zk_hosts, "--duration", "7", "--workers", "3", "--seed", "4", *FAST)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    out = result.stdout
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


def test_unreachable_zookeeper_is_one_line_and_fast() -> None:
    """No ZooKeeper: exit 1 within the connect timeout, one line naming the hosts and the fix."""
    hosts = unreachable_hosts()
    started = time.monotonic()
    result = run_script(SCRIPT, "--zk", hosts)
    assert result.returncode == 1
    assert time.monotonic() - started < 5.0 + 4  # connect timeout, plus interpreter start-up
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and hosts in lines[0] and "docker compose up -d" in lines[0]


@pytest.mark.parametrize("args", [["--duration", "-1"], ["--zk", ""], ["--seed", "abc"], ["--workers", "0"],
                                  ["--zk", "host:port"]])
def test_bad_arguments_exit_2(args: list[str]) -> None:
    """Bad input gets argparse's one-line error and exit code 2, never a traceback."""
    result = run_script(SCRIPT, *args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "error:" in result.stderr
