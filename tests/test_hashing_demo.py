"""The rich hashing demo (python -m zklab.demo_hashing) under faults a learner can cause: ZooKeeper gone, a
leader killed, signals, `| head`, a full disk, ACLs, and a learner's code that never returns."""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from kazoo.client import KazooClient

import challenge_consistent_hashing as script
from challenge_consistent_hashing import HashRing
from tests.cli import ROOT, interrupt, read_until, start_script
from tests.test_hashing_cli import demo_command, run_demo, start_demo
from zklab.demo_hashing import BAR_UNIT, Output, Report, ring_strip, strip_changes
from zklab.faults import wait_until
from zklab.launcher import ZooKeeperCluster
from zklab.plumbing import Shutdown
from zklab.proxy import PartitionProxy

SCRIPT = "challenge_consistent_hashing.py"
SHUTDOWN_BOUND = 2.0  # the demo's documented shutdown: at most the session timeout + 2 s
MEMBERS = "/lab/consistent-hashing/members"
QUIET = ["--keys", "2000", "--interval", "600", "--no-strip"]
MakeClient = Callable[..., KazooClient]


def events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def ring_of(path: Path, router: int) -> list[str] | None:
    """The members `router` holds now, by the --events log."""
    rings = [e["members"] for e in events(path) if e["event"] == "ring" and e["router"] == router]
    return rings[-1] if rings else None


def both_routers_hold(path: Path, check: Callable[[list[str]], bool]) -> bool:
    return all((ring := ring_of(path, r)) is not None and check(ring) for r in (0, 1))


# ---------------------------------------------------------------- --events (CONTRACTS B)

def test_events_log_one_json_line_per_event(zk_hosts: str, tmp_path: Path,
                                            make_client: MakeClient) -> None:
    """--events appends start, every router's ring swaps, and an exit line saying the run left nothing."""
    log = tmp_path / "events.jsonl"
    result = run_demo("--zk", zk_hosts, "--duration", "2", "--interval", "0.5", "--seed", "1",
                        "--session-timeout", "2", "--keys", "2000", "--events", str(log))
    assert result.returncode == 0, result.stderr
    lines = events(log)
    assert all({"t", "pid", "run", "event"} <= set(e) for e in lines)
    assert lines[0]["event"] == "start" and lines[0]["session_timeout"] == 2.0
    assert lines[-1] == {**lines[-1], "event": "exit", "clean": True, "left": []}
    assert [e["t"] for e in lines] == sorted(e["t"] for e in lines)
    rings = [e for e in lines if e["event"] == "ring"]
    assert {e["router"] for e in rings} == {0, 1}
    assert ring_of(log, 0) == ring_of(log, 1) and len(ring_of(log, 0)) >= 3
    assert make_client().get_children(MEMBERS) == []


def test_unwritable_events_file_is_a_bad_argument(tmp_path: Path) -> None:
    """--events in a folder that does not exist: exit 2, one line, before any session."""
    result = run_demo("--events", str(tmp_path / "no" / "such.jsonl"))
    assert result.returncode == 2 and "argument --events" in result.stderr and "Traceback" not in result.stderr


def test_hostile_member_is_reported_once(zk_hosts: str, tmp_path: Path, make_client: MakeClient) -> None:
    """A member znode with weight 1e9: the demo says once that it ignored it, and why (not again on stderr,
    once per router); both routers log it. A name holding U+202E (right-to-left override) is shown escaped."""
    log = tmp_path / "events.jsonl"
    make_client().create(f"{MEMBERS}/m9", b'{"weight": 1e9}', makepath=True)  # persistent: outlives a session
    make_client().create(f"{MEMBERS}/m\u202e8", b"junk")
    proc = start_demo("--zk", zk_hosts, "--members", "2", *QUIET, "--events", str(log))
    seen = read_until(proc, "members (2)") + read_until(proc, "routers agree")
    code, rest, err = interrupt(proc)
    out = "".join(seen) + rest
    assert code == 0, err
    assert out.count("ignored m9:") == 1 and "is not on the ring" not in err, out + err
    assert "ignored m\\u202e8:" in out and "\u202e" not in out, out
    ignored = [e for e in events(log) if e["event"] == "ignored" and e["member"] == "m9"]
    assert sorted(e["router"] for e in ignored) == [0, 1]
    assert ignored[0]["why"] == "weight 1e9 is outside 0.01..100"
    assert ring_of(log, 0) == ring_of(log, 1) and "m9" not in ring_of(log, 0)


# ---------------------------------------------------------------- shutdown is bounded and complete

@pytest.mark.parametrize("seed, departure", [(3, "crashes")])  # the crash path is the slower one to bound
def test_duration_holds_with_zookeeper_gone_for_good(own_server: ZooKeeperCluster, tmp_path: Path,
                                                    seed: int, departure: str) -> None:
    """ZooKeeper dies for good before a departure: the run still ends within --duration + session timeout + 5 s,
    exits 0 and lists the znodes it could not delete."""
    log, duration, session = tmp_path / "events.jsonl", 4.0, 2.0
    proc = start_demo("--zk", own_server.hosts, "--members", "3", "--keys", "2000", "--interval", "1",
                        "--duration", str(duration), "--session-timeout", str(session), "--seed", str(seed),
                        "--events", str(log))
    began = time.monotonic()
    read_until(proc, "members (4)")  # the first change, a join; the second will be the departure
    own_server.kill_server(1)
    out, err = proc.communicate(timeout=duration + session + 20)
    assert time.monotonic() - began <= duration + session + 5, out
    assert proc.returncode == 0 and "Traceback" not in err, err
    assert departure in out and "left behind: /lab/consistent-hashing/members/m" in out
    exit_line = events(log)[-1]
    assert exit_line["event"] == "exit" and not exit_line["clean"] and exit_line["left"]


def test_signals_during_shutdown_do_not_skip_the_cleanup(zk_hosts: str, make_client: MakeClient) -> None:
    """SIGTERM, then SIGTERM and Ctrl-C during the shutdown: exit 0, no traceback, no member znode left."""
    proc = start_demo("--zk", zk_hosts, "--members", "30", *QUIET)
    read_until(proc, "members (30)", timeout=60)
    observer = make_client()
    assert len(observer.get_children(MEMBERS)) == 30
    proc.send_signal(signal.SIGTERM)
    read_until(proc, "shutting down")
    proc.send_signal(signal.SIGTERM)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "Traceback" not in err, err
    assert observer.get_children(MEMBERS) == []


def test_a_second_signal_right_behind_the_first_still_closes_every_session(zk_hosts: str,
                                                                         make_client: MakeClient) -> None:
    """Two SIGTERMs within a millisecond (`timeout` signals the whole group; run.sh passes it on): the second
    only hurries the clean-up, which still closes every session (30 s ones: no expiry did this)."""
    proc = start_demo("--zk", zk_hosts, "--session-timeout", "30", *QUIET)
    read_until(proc, "members (4)")
    observer = make_client()
    proc.send_signal(signal.SIGTERM)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "Traceback" not in err, err
    assert "shutting down" in out
    assert observer.get_children(MEMBERS) == []


def test_closed_stdout_still_closes_every_session(zk_hosts: str, make_client: MakeClient) -> None:
    """`| head`: once stdout is gone the demo stops, closes every session, leaves no node, exits 0 quietly."""
    proc = subprocess.Popen(demo_command("--zk", zk_hosts, "--members", "3", "--keys", "2000", "--interval", "0.3",
                                         "--session-timeout", "2"),
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    read_until(proc, "members (3)")
    observer = make_client()
    proc.stdout.close()  # what head does after its 10 lines
    assert proc.wait(timeout=20) == 0
    err = proc.stderr.read()
    assert err == "", err
    assert observer.get_children(MEMBERS) == []


def catches_sigterm(pid: int) -> bool:
    """True once the process handles SIGTERM: the script's first lines have run (Python alone does not)."""
    caught = int(re.search(r"SigCgt:\s*([0-9a-f]+)", Path(f"/proc/{pid}/status").read_text())[1], 16)
    return bool(caught & 1 << (signal.SIGTERM - 1))


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the signal mask from /proc")
@pytest.mark.parametrize("delay", [0.0, 0.02, 0.04, 0.06])
@pytest.mark.parametrize("demo", ["script", "rich"])
def test_ctrl_c_while_starting_is_quiet(zk_hosts: str, delay: float, demo: str) -> None:
    """Ctrl-C in the first 60 ms (Python still loading kazoo), of the script or the rich demo: exit 0, stderr empty.

    Timed from the first line of ours: before it, the interpreter itself is starting and reports a Ctrl-C
    its own way; no program can catch a signal before it runs."""
    proc = start_script(SCRIPT, "--zk", zk_hosts, *QUIET[:-1]) if demo == "script" else start_demo("--zk", zk_hosts)
    wait_until(lambda: catches_sigterm(proc.pid) or "mmh3" in Path(f"/proc/{proc.pid}/maps").read_text(),
               10, "the program to start", interval=0.001)
    assert catches_sigterm(proc.pid), "it loaded mmh3 before it handled signals"
    time.sleep(delay)  # the moment of the Ctrl-C is the fault itself
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and err == "", err


# ---------------------------------------------------------------- recovery

def test_routers_are_current_soon_after_an_outage(own_server: ZooKeeperCluster, tmp_path: Path,
                                                  make_proxy: Callable[..., PartitionProxy],
                                                  make_client: MakeClient) -> None:
    """After a 7 s outage, routers follow a change within 2 s of ZooKeeper's return (kazoo's own backoff: ~6 s)."""
    log = tmp_path / "events.jsonl"
    gate = make_proxy(own_server.servers[0].address)
    proc = start_demo("--zk", gate.address, "--members", "2", *QUIET, "--session-timeout", "30",
                        "--events", str(log))
    try:
        read_until(proc, "members (2)")
        gate.cut()  # clients see the server go; the gate keeps them off it while it restarts
        own_server.stop_server(1)
        time.sleep(7)  # the outage is the fault: long enough for kazoo's uncapped backoff to reach 6.4 s
        own_server.start_server(1)
        gate.heal()
        back = time.monotonic()
        make_client(hosts=own_server.hosts).create(f"{MEMBERS}/late", b'{"weight": 1}', ephemeral=True)
        wait_until(lambda: both_routers_hold(log, lambda ring: "late" in ring), 10, "both routers to hold 'late'")
        caught_up = time.monotonic() - back
        assert caught_up < 2.0, f"routers caught up {caught_up:.1f} s after ZooKeeper came back"
    finally:
        assert interrupt(proc)[0] == 0


def test_killing_zookeepers_leader_loses_no_session(ensemble: ZooKeeperCluster, tmp_path: Path,
                                                    make_client: MakeClient) -> None:
    """kill -9 of the ensemble's leader with 4 s sessions: every member keeps its session, routers agree."""
    log = tmp_path / "events.jsonl"
    proc = start_demo("--zk", ensemble.hosts, "--members", "3", *QUIET, "--session-timeout", "4",
                        "--events", str(log))
    observer = make_client(hosts=ensemble.hosts, timeout=10.0)
    try:
        read_until(proc, "members (3)")
        owners = {n: observer.exists(f"{MEMBERS}/{n}").ephemeralOwner for n in observer.get_children(MEMBERS)}
        ensemble.kill_server(ensemble.leader().sid)
        wait_until(lambda: any(s.mode() == "leader" for s in ensemble.servers), 20, "a new ZooKeeper leader")
        observer.retry(observer.create, f"{MEMBERS}/late", b'{"weight": 1}', ephemeral=True)
        wait_until(lambda: both_routers_hold(log, lambda ring: len(ring) == 4), 10, "both routers to hold 4 members")
        # A session the kill cost would expire within one session timeout of the new leader: watch that long.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            now = {n: s.ephemeralOwner for n in owners if (s := observer.retry(observer.exists, f"{MEMBERS}/{n}"))}
            assert now == owners, "a member lost its session"
            time.sleep(0.1)
    finally:
        code, out, err = interrupt(proc)
    assert code == 0 and "lost its session" not in out and "routers agree: NO" not in out, out + err
    assert ring_of(log, 0) == ring_of(log, 1)


def test_overlapping_changes_are_not_a_disagreement(zk_hosts: str, tmp_path: Path, make_client: MakeClient) -> None:
    """Members that join and leave in quick pairs never make the demo report a false 'routers agree: NO'."""
    log = tmp_path / "events.jsonl"
    proc = start_demo("--zk", zk_hosts, "--members", "2", *QUIET, "--events", str(log))
    writer = make_client()
    try:
        read_until(proc, "members (2)")
        for round_ in range(8):
            for name in ("x", "y"):
                writer.create(f"{MEMBERS}/{name}", b"", ephemeral=True)
            wait_until(lambda: both_routers_hold(log, lambda ring: len(ring) == 4), 5, f"round {round_}: a join")
            for name in ("x", "y"):
                writer.delete(f"{MEMBERS}/{name}")
            wait_until(lambda: both_routers_hold(log, lambda ring: len(ring) == 2), 5, f"round {round_}: a leave")
    finally:
        code, out, err = interrupt(proc)
    assert code == 0 and "routers agree: NO" not in out, out
    assert ring_of(log, 0) == ring_of(log, 1)


# ---------------------------------------------------------------- what a short run shows

def test_ten_second_run_shows_a_join_and_a_departure(zk_hosts: str) -> None:
    """`--duration 10` with default options shows a join and a departure, each with its movement, <= 3 keys each."""
    result = run_demo("--zk", zk_hosts, "--duration", "10")
    assert result.returncode == 0, result.stderr
    after_start = result.stdout.split("routers agree", 4)[-1]  # past the 4 starting members
    assert re.search(r"\+ m5-\w+ joins\n.*?moved", after_start, re.S)
    assert re.search(r"(- m\d+-\w+ leaves cleanly|x m\d+-\w+ crashes).*?\n.*?moved", after_start, re.S)
    changes = re.split(r"\n\s+moved ", result.stdout)[1:]
    assert changes and all(len(re.findall(r"^\s+key:\d+:", c, re.M)) <= 3 for c in changes)


def _load_bars(weights: dict[str, float]) -> dict[str, int]:
    ring = HashRing(160, weights)
    keys = [f"key:{i}" for i in range(20_000)]
    args = argparse.Namespace(keys=len(keys), show=0, strip=False, verbose=True)
    report = Report(Output(Shutdown(), None), script, args, [])
    lines = report._load(ring, [ring.owner(k) for k in keys])
    return {line.split()[0]: line.count(report.out.block) for line in lines if line.split()[0] in weights}


def test_load_bars_share_one_scale() -> None:
    """A weight-3 member's bar is about 3x a weight-1 member's; weight and fair share are printed beside it."""
    bars = _load_bars({"heavy": 3, "a": 1, "b": 1, "c": 1})
    assert bars["heavy"] / (sum(bars[n] for n in "abc") / 3) == pytest.approx(3, rel=0.2)
    assert bars["a"] == pytest.approx(BAR_UNIT * 4 / 6, rel=0.2)  # an equal share is BAR_UNIT blocks


# ---------------------------------------------------------------- the ring strip

def test_after_a_join_only_the_joiners_columns_change() -> None:
    """In the ring strip, a join changes only columns to the joiner; a leave, only the leaver's columns."""
    letters = {n: n[-1].upper() for n in ("n-a", "n-b", "n-c", "n-d", "n-e")}
    ring = HashRing(160, ["n-a", "n-b", "n-c", "n-d"])
    joined = HashRing(160, ["n-a", "n-b", "n-c", "n-d", "n-e"])
    before, after = ring_strip(ring, letters), ring_strip(joined, letters)
    assert len(before) == 80 and strip_changes(before, after).strip()
    assert {a for b, a in zip(before, after, strict=True) if b != a} == {"E"}
    left = HashRing(160, ["n-a", "n-c", "n-d"])
    assert {b for b, a in zip(before, ring_strip(left, letters), strict=True) if b != a} == {"B"}


def test_strip_is_drawn_and_plain_ascii_off_utf8(zk_hosts: str) -> None:
    """The demo draws the ring before and after each change, in ASCII off UTF-8; --no-strip hides it."""
    env = {**os.environ, "PYTHONIOENCODING": "ascii"}
    env.pop("ZK_HOSTS", None)
    args = demo_command("--zk", zk_hosts, "--duration", "1", "--members", "2", "--keys", "500")
    drawn = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, timeout=60)
    assert drawn.returncode == 0 and drawn.stdout.isascii(), drawn.stderr
    assert re.search(rb"before \|[.A]{80}\|[^\n]*\n.*after  \|[AB]{80}\|\n +[ ^]*\^", drawn.stdout)
    hidden = subprocess.run([*args, "--no-strip"], cwd=ROOT, env=env, capture_output=True, timeout=60)
    assert hidden.returncode == 0 and b"before |" not in hidden.stdout


# ---------------------------------------------------------------- --duration holds, whatever the run costs

@pytest.mark.parametrize("args, duration", [(["--members", "100"], 3.0),
                                            (["--members", "100", "--vnodes", "1000", "--keys", "1000000"], 8.0)])
def test_duration_counts_from_the_start(zk_hosts: str, make_client: MakeClient, args: list[str],
                                        duration: float) -> None:
    """100 members (and 1,000 vnodes, 1,000,000 keys): the run ends within --duration + the shutdown bound
    (+ the interpreter's start-up), the first members join in one line, and sampled counts say so."""
    started = time.monotonic()
    result = run_demo("--zk", zk_hosts, *args, "--duration", str(duration), "--session-timeout", "2")
    elapsed = time.monotonic() - started
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert elapsed < duration + 2 + SHUTDOWN_BOUND + 1.5, f"ran {elapsed:.1f} s"
    assert re.search(r"\+ 100 members join: m1-\w+ \.\. m100-\w+", result.stdout), result.stdout
    assert len(result.stdout.splitlines()) < 40
    if "1000000" in args and "moved" in result.stdout:
        assert "counted on a sample of 20,000: +-" in result.stdout
    assert make_client().get_children(MEMBERS) == []


# ---------------------------------------------------------------- hostile arguments and environments

def test_an_empty_events_path_is_a_usage_error() -> None:
    """--events "": one line, exit 2, no traceback."""
    result = run_demo("--events", "")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    said = result.stderr.strip().splitlines()
    assert len(said) == 1 and "argument --events: cannot append to '': name a file" in said[0], result.stderr


def test_an_acl_that_denies_the_demo_is_one_line(zk_hosts: str, make_client: MakeClient) -> None:
    """/lab readable by anyone but creatable only by its owner: one line naming the node and the permission, exit 1."""
    from kazoo.security import make_acl, make_digest_acl
    make_client().create("/lab", acl=[make_acl("world", "anyone", read=True), make_digest_acl("o", "pw", all=True)])
    result = run_demo("--zk", zk_hosts, "--duration", "3")
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "CREATE permission on" in lines[0] and lines[0].rstrip().find("/lab") > 0, lines
    assert "stopped answering" not in result.stdout + result.stderr


def test_stdout_to_a_full_disk_ends_cleanly(zk_hosts: str, make_client: MakeClient) -> None:
    """stdout on /dev/full: the demo stops at its first line, closes every session, and says so in one line on
    stderr, exit 1 (the lab's rule for an environment that refuses; a reader that left is not worth a line)."""
    with open("/dev/full", "w") as full:
        proc = subprocess.run(demo_command("--zk", zk_hosts, "--duration", "5"), cwd=ROOT, stdout=full,
                              stderr=subprocess.PIPE, text=True, timeout=60)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot write to stdout" in lines[0]
    assert make_client().get_children(MEMBERS) == []


# ---------------------------------------------------------------- the learner's code never takes the demo hostage

BLOCKED = """
import sys
sys.path.insert(0, sys.argv[1])
import challenge_consistent_hashing  # the copy, found first
from zklab.demo_hashing import main
from zklab.plumbing import leave_now
leave_now(main(sys.argv[2:]))
"""


def blocked_copy(folder: Path, function: str) -> Path:
    """A copy of the script whose `function` (a `def` line, as written) first blocks forever."""
    text = (ROOT / SCRIPT).read_text()
    head = text.index(function)
    body = text.index('"""', text.index('"""', head) + 3) + 3  # past its docstring
    (folder / SCRIPT).write_text(text[:body] + "\n        threading.Event().wait()" + text[body:])
    return folder


@pytest.mark.parametrize("function", ["    def __init__(self, client: KazooClient, root: str",
                                      "    def _rebuild(self, children: list[str]) -> None:"])
def test_learners_code_that_never_returns_does_not_hold_the_duration(zk_hosts: str, tmp_path: Path,
                                                                     function: str) -> None:
    """RingWatcher.__init__ or _rebuild blocked forever: --duration 3 still ends within duration + the shutdown
    bound, exit 0."""
    folder = blocked_copy(tmp_path, function)
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-c", BLOCKED, str(folder), "--zk", zk_hosts, "--duration", "3",
                             "--session-timeout", "2"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert time.monotonic() - started < 3 + 2 + SHUTDOWN_BOUND + 1.5
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr


def test_a_second_sigterm_ends_a_stuck_shutdown_within_a_second(zk_hosts: str, tmp_path: Path,
                                                                make_proxy: Callable[..., PartitionProxy],
                                                                zk_server: ZooKeeperCluster) -> None:
    """ZooKeeper unreachable during the clean-up (30 s sessions, so it would wait): a second SIGTERM ends it
    within a second, exit 0, and the line says what it left behind."""
    gate = make_proxy(zk_server.servers[0].address)
    chroot = zk_hosts[len(zk_server.hosts):]
    proc = start_demo("--zk", gate.address + chroot, "--members", "2", "--session-timeout", "30", *QUIET)
    read_until(proc, "members (2)")
    gate.blackhole()
    proc.send_signal(signal.SIGTERM)
    read_until(proc, "shutting down")
    time.sleep(0.3)  # the clean-up is waiting on ZooKeeper now: that wait is the situation under test
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert time.monotonic() - sent < 1.0 + 0.3, f"{time.monotonic() - sent:.2f} s after the second SIGTERM"
    assert proc.returncode == 0 and "Traceback" not in err, err
    assert "left behind" in out


def test_members_keep_their_letters_across_a_leave_and_a_join() -> None:
    """m2 leaves, m4 joins: m3 is still C and m4 takes a fresh letter, not m2's B, so one change's 'after'
    strip reads as the next change's 'before' (the letters were handed out again in name order)."""
    args = argparse.Namespace(keys=100, show=0, strip=True, verbose=False)
    report = Report(Output(Shutdown(), None), script, args, [])
    memberships = (["m1", "m2", "m3"], ["m1", "m3"], ["m1", "m3", "m4"])
    rings = [HashRing(16, dict.fromkeys(names, 1.0)) for names in memberships]
    report._members(rings[0], rings[1])
    assert report.letters == {"m1": "A", "m2": "B", "m3": "C"}
    legend = report._members(rings[1], rings[2])[0]
    assert report.letters["m3"] == "C" and report.letters["m4"] == "D" and "C=m3" in legend and "D=m4" in legend
