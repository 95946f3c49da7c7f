"""The hashing demos as a learner runs them: the rich demo's report, Ctrl-C, two copies at once; the compact
demo in the script itself, copied alone into an empty folder."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from kazoo.client import KazooClient

from tests.cli import ROOT, interrupt, read_until, run_script, start_script, unreachable_hosts
from zklab.faults import wait_until

SCRIPT = "challenge_consistent_hashing.py"
MEMBERS = "/lab/consistent-hashing/members"
FAST = ["--session-timeout", "2", "--keys", "5000", "--show", "3"]


def demo_command(*args: str) -> list[str]:
    return [sys.executable, "-u", "-m", "zklab.demo_hashing", *args]


def run_demo(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "ZK_HOSTS"}
    return subprocess.run(demo_command(*args), cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def start_demo(*args: str) -> subprocess.Popen:
    return subprocess.Popen(demo_command(*args), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


# ---------------------------------------------------------------- the rich demo: python -m zklab.demo_hashing

def test_duration_run_reports_each_change(zk_hosts: str, make_client: Callable[..., KazooClient]) -> None:
    """A seeded chaos run prints membership, moved keys, load and agreement, then a summary."""
    result = run_demo("--zk", zk_hosts, "--duration", "5", "--interval", "0.7", "--seed", "7", *FAST)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Traceback" not in result.stderr
    assert re.search(r"moved +\d+\.\d+% of 5,000 keys +\(ideal +\d+\.\d+%", out)
    assert re.search(r"key:\d+: m\d+-\w+ \u2192 m\d+-\w+", out)
    assert "max/mean" in out and "routers agree: yes" in out and "routers agree: NO" not in out
    assert re.search(r"routers agreed +(\d+) of \1 checks", out)
    assert make_client().get_children(MEMBERS) == []


def test_a_change_prints_about_eight_lines_and_the_load_table_with_v(zk_hosts: str) -> None:
    """By default a change is its event, the members, the strip, moved vs ideal with max/mean, and the
    routers' agreement; -v adds the load table."""
    quiet = run_demo("--zk", zk_hosts, "--duration", "2", "--members", "3", "--keys", "2000")
    assert quiet.returncode == 0, quiet.stderr
    changes = re.findall(r"^ +[\d.]+s  \+ .*?routers agree[^\n]*", quiet.stdout, flags=re.M | re.S)
    assert len(changes) == 3 and all(len(c.splitlines()) <= 8 for c in changes), quiet.stdout
    assert "load (a bar of" not in quiet.stdout
    loud = run_demo("--zk", zk_hosts, "--duration", "1", "--members", "2", "--keys", "2000", "-v")
    assert loud.returncode == 0 and "load (a bar of" in loud.stdout, loud.stderr


def test_ctrl_c_closes_every_session(zk_hosts: str, make_client: Callable[..., KazooClient]) -> None:
    """SIGINT: exit 0, no traceback, a summary, and no member znode left."""
    proc = start_demo("--zk", zk_hosts, "--members", "3", "--interval", "600", *FAST)
    read_until(proc, "members (3)")
    observer = make_client()
    assert len(observer.get_children(MEMBERS)) == 3
    code, out, err = interrupt(proc)
    assert code == 0, err
    assert "Traceback" not in err and "summary" in out
    assert observer.get_children(MEMBERS) == []


def test_two_copies_see_each_others_members(zk_hosts: str) -> None:
    """Two processes against one ZooKeeper route over one ring holding both processes' members."""
    first = start_demo("--zk", zk_hosts, "--members", "2", "--interval", "600", *FAST)
    try:
        read_until(first, "members (2)")
        second = start_demo("--zk", zk_hosts, "--members", "2", "--interval", "600", *FAST)
        try:
            read_until(second, "members (4)")
            read_until(first, "members (4)")
        finally:
            assert interrupt(second)[0] == 0
    finally:
        assert interrupt(first)[0] == 0


def test_members_named_uniquely_across_copies(zk_hosts: str, make_client: Callable[..., KazooClient]) -> None:
    """Member names carry a per-run suffix, so two copies never collide on a znode."""
    procs = [start_demo("--zk", zk_hosts, "--members", "2", "--interval", "600", *FAST) for _ in range(2)]
    try:
        for proc in procs:
            read_until(proc, "routers agree")
        observer = make_client()
        names = wait_until(lambda: (n := observer.get_children(MEMBERS)) and len(n) == 4 and n, 20, "4 members")
        assert len({name.split("-")[1] for name in names}) == 2
    finally:
        assert [interrupt(p)[0] for p in procs] == [0, 0]


# ---------------------------------------------------------------- the compact demo, in the script

def test_the_script_alone_shows_a_join_a_leave_and_a_crash(zk_server: object, chroot: str, tmp_path: Path) -> None:
    """Copied alone into an empty folder, the script runs 10 s: joins, a leave and a crash, each with keys
    moved vs the ideal; the crash says its session was expired at once; exit 0."""
    shutil.copy(ROOT / SCRIPT, tmp_path / SCRIPT)
    env = {k: v for k, v in os.environ.items() if k not in ("ZK_HOSTS", "PYTHONPATH")}
    result = subprocess.run([sys.executable, SCRIPT, "--zk", zk_server.hosts + chroot, "--duration", "10"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    out = result.stdout
    moved = r"\n.*moved \d+\.\d+% of 10,000 keys \(ideal \d+\.\d+%"
    assert re.search(r"\+ m5-\w+ joins.*" + moved, out), out
    assert re.search(r"- m\d+-\w+ leaves.*" + moved, out), out
    assert re.search(r"x m\d+-\w+ crash: its session is expired at once, where a real crash waits one session "
                     r"timeout" + moved, out), out
    assert "summary: keys moved / ideal" in out


def test_the_script_closes_every_session_on_ctrl_c(zk_hosts: str, make_client: Callable[..., KazooClient]) -> None:
    """The compact demo on SIGINT: exit 0, nothing on stderr, no member znode left."""
    proc = start_script(SCRIPT, "--zk", zk_hosts, "--members", "3", "--interval", "600")
    read_until(proc, "ring of 3")
    observer = make_client()
    assert len(observer.get_children(MEMBERS)) == 3
    code, _, err = interrupt(proc)
    assert code == 0 and err == "", err
    assert observer.get_children(MEMBERS) == []


def test_the_script_with_its_reader_gone_closes_every_session(zk_hosts: str,
                                                             make_client: Callable[..., KazooClient]) -> None:
    """`| head`: once stdout is gone the compact demo stops, closes every session and exits 0, quietly."""
    proc = start_script(SCRIPT, "--zk", zk_hosts, "--members", "3", "--interval", "0.3")
    read_until(proc, "ring of 3")
    observer = make_client()
    proc.stdout.close()  # what head does after its lines
    assert proc.wait(timeout=20) == 0
    assert proc.stderr.read() == ""
    assert observer.get_children(MEMBERS) == []


def test_the_script_under_a_denying_acl_is_one_line(zk_hosts: str, make_client: Callable[..., KazooClient]) -> None:
    """/lab readable by anyone but creatable only by its owner: the compact demo says so in one line, exit 1."""
    from kazoo.security import make_acl, make_digest_acl
    make_client().create("/lab", acl=[make_acl("world", "anyone", read=True), make_digest_acl("o", "pw", all=True)])
    result = run_script(SCRIPT, "--zk", zk_hosts, "--duration", "3")
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    chroot = zk_hosts.partition("/")[1] + zk_hosts.partition("/")[2]
    assert lines == [f"error: ZooKeeper refused to create or read {chroot}/lab/consistent-hashing (NoAuthError); grant "
                     "CREATE and READ on the way, or choose another chroot in --zk"], lines  # the leader's words


@pytest.mark.parametrize("args", [["--vnodes", "0"], ["--vnodes", "10000000"], ["--keys", "many"],
                                  ["--keys", "1000000000"], ["--members", "100000"], ["--show", "-2"],
                                  ["--duration", "nan"], ["--zk", "host_1:2181"], ["--events", ""],
                                  ["--session-timeout", "0.1"], ["--bogus"]])
def test_the_rich_demo_refuses_bad_arguments_in_one_line(args: list[str]) -> None:
    """Bad input: argparse's one error line, exit 2, and nothing started (parse_args opens and connects nothing)."""
    result = run_demo(*args)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert sum("error:" in line for line in result.stderr.splitlines()) == 1


def test_the_rich_demo_help_starts_nothing_and_names_the_session_range() -> None:
    """--help: the options, with the session timeouts a server grants, and no connection attempted."""
    result = run_demo("--help", "--zk", "127.0.0.1:1")
    assert result.returncode == 0 and "0.5-60 s" in result.stdout and "4-40 s" in result.stdout


def test_an_events_file_that_fails_mid_run_is_said_once(zk_hosts: str) -> None:
    """--events on a full disk (/dev/full): one warning line, and the demo still runs to a clean exit."""
    result = run_demo("--zk", zk_hosts, "--duration", "1", "--events", "/dev/full")
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("warning: --events: cannot write") == 1 and "Traceback" not in result.stderr


def test_the_rich_demo_unreachable_is_one_line_and_fast() -> None:
    """No ZooKeeper: exit 1 within the connect timeout, one line naming the hosts and how to start one."""
    hosts = unreachable_hosts()
    started = time.monotonic()
    result = run_demo("--zk", hosts)
    assert result.returncode == 1 and time.monotonic() - started < 5.0 + 4
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and hosts in lines[0] and "docker compose up -d" in lines[0]
