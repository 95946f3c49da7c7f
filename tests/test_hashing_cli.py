"""challenge_consistent_hashing.py as a learner runs it: the report, Ctrl-C, two copies at once."""

from __future__ import annotations

import re
from collections.abc import Callable

from kazoo.client import KazooClient

from tests.cli import interrupt, read_until, run_script, start_script
from zklab.faults import wait_until

SCRIPT = "challenge_consistent_hashing.py"
MEMBERS = "/lab/consistent-hashing/members"
FAST = ["--session-timeout", "2", "--keys", "5000", "--show", "3"]


def test_duration_run_reports_each_change(zk_hosts: str, make_client: Callable[..., KazooClient]) -> None:
    """A seeded chaos run prints membership, moved keys, load and agreement, then a summary."""
    result = run_script(SCRIPT, "--zk", zk_hosts, "--duration", "5", "--interval", "0.7", "--seed", "7", *FAST)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Traceback" not in result.stderr
    assert re.search(r"moved +\d+\.\d+% of 5,000 keys +\(ideal +\d+\.\d+%", out)
    assert re.search(r"key:\d+: m\d+-\w+ \u2192 m\d+-\w+", out)
    assert "max/mean" in out and "routers agree: yes" in out and "routers agree: NO" not in out
    assert re.search(r"routers agreed +(\d+) of \1 checks", out)
    assert make_client().get_children(MEMBERS) == []


def test_ctrl_c_closes_every_session(zk_hosts: str, make_client: Callable[..., KazooClient]) -> None:
    """SIGINT: exit 0, no traceback, a summary, and no member znode left."""
    proc = start_script(SCRIPT, "--zk", zk_hosts, "--members", "3", "--interval", "600", *FAST)
    read_until(proc, "members (3)")
    observer = make_client()
    assert len(observer.get_children(MEMBERS)) == 3
    code, out, err = interrupt(proc)
    assert code == 0, err
    assert "Traceback" not in err and "summary" in out
    assert observer.get_children(MEMBERS) == []


def test_two_copies_see_each_others_members(zk_hosts: str) -> None:
    """Two processes against one ZooKeeper route over one ring holding both processes' members."""
    first = start_script(SCRIPT, "--zk", zk_hosts, "--members", "2", "--interval", "600", *FAST)
    try:
        read_until(first, "members (2)")
        second = start_script(SCRIPT, "--zk", zk_hosts, "--members", "2", "--interval", "600", *FAST)
        try:
            read_until(second, "members (4)")
            read_until(first, "members (4)")
        finally:
            assert interrupt(second)[0] == 0
    finally:
        assert interrupt(first)[0] == 0


def test_members_named_uniquely_across_copies(zk_hosts: str, make_client: Callable[..., KazooClient]) -> None:
    """Member names carry a per-run suffix, so two copies never collide on a znode."""
    procs = [start_script(SCRIPT, "--zk", zk_hosts, "--members", "2", "--interval", "600", *FAST) for _ in range(2)]
    try:
        for proc in procs:
            read_until(proc, "routers agree")
        observer = make_client()
        names = wait_until(lambda: (n := observer.get_children(MEMBERS)) and len(n) == 4 and n, 20, "4 members")
        assert len({name.split("-")[1] for name in names}) == 2
    finally:
        assert [interrupt(p)[0] for p in procs] == [0, 0]
