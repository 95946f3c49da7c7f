"""The leader demos as a learner runs them: the compact one in challenge_leader_election.py, and the rich one
(python -m zklab.demo_leader) that drives the script as edited. Timeline, Ctrl-C, two copies at once, an edit
that breaks the rule, a recipe that hangs, ACLs that deny, a stdout that cannot be written."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from kazoo.security import make_acl, make_digest_acl

from challenge_leader_election import LEASE_FRACTION, RENEW_FRACTION
from tests.cli import ROOT, interrupt, read_until
from zklab.faults import wait_until

SCRIPT = ("challenge_leader_election.py",)
DEMO = ("-m", "zklab.demo_leader")
DEMOS = {"compact": SCRIPT, "rich": DEMO}
CANDIDATES = "/lab/leader-election/candidates"
FAST = ["--session-timeout", "1.5", "--interval", "1"]
# The rich demo's bound on its shutdown past --duration: connect + session timeout + grace, in its main().
SHUTDOWN_BOUND = 5.0 + 4.0 + 1.0 + 0.5
MakeClient = Callable[..., KazooClient]


def command(demo: tuple[str, ...], *args: str) -> list[str]:
    return [sys.executable, "-u", *demo, *args]


def run(demo: tuple[str, ...], *args: str, cwd: Path = ROOT, timeout: float = 60,
        **kwargs: object) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "ZK_HOSTS"}
    kwargs.setdefault("capture_output", True)
    return subprocess.run(command(demo, *args), cwd=cwd, env=env, text=True, timeout=timeout, **kwargs)


def start(demo: tuple[str, ...], *args: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> subprocess.Popen:
    environ = {k: v for k, v in os.environ.items() if k != "ZK_HOSTS"} | (env or {})
    return subprocess.Popen(command(demo, *args), cwd=cwd, env=environ, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def edited_copy(tmp: Path, edits: list[tuple[str, str]], with_lab: bool = True) -> Path:
    """The script with `edits` (find, replace; each find must occur once) in `tmp`, beside a copy of zklab/:
    the rich demo run from there drives the edited script, as it drives a learner's."""
    text = (ROOT / SCRIPT[0]).read_text()
    for find, replace in edits:
        assert text.count(find) == 1, f"{find!r} is not in the script exactly once"
        text = text.replace(find, replace)
    (tmp / SCRIPT[0]).write_text(text)
    if with_lab:
        shutil.copytree(ROOT / "zklab", tmp / "zklab", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp


def exercise_edits(name: str) -> list[tuple[str, str]]:
    return [(e["find"], e["replace"]) for e in json.loads((ROOT / "exercises" / name).read_text())["edits"]]


def namespace(make_client: MakeClient, zk_hosts: str, name: str) -> str:
    make_client().ensure_path(f"/{name}")
    return f"{zk_hosts}/{name}"


# ---------------------------------------------------------------- a run, start to end

def test_duration_run_prints_timeline_and_summary(zk_hosts: str, make_client: MakeClient) -> None:
    """A seeded chaos run of the rich demo ends by itself, with one leader at a time and no node left behind;
    --no-timeline leaves the picture out."""
    result = run(DEMO, "--zk", zk_hosts, "--duration", "7", "--workers", "3", "--seed", "4", "--no-timeline", *FAST)
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


def test_the_script_copied_alone_runs_an_election_a_crash_and_a_hand_off(zk_server: object, chroot: str,
                                                                         make_client: MakeClient,
                                                                         tmp_path: Path) -> None:
    """Copied alone into an empty folder, the script runs 10 s: an election, a crash whose session ZooKeeper
    has to expire (the wait shows), a hand-off, a measured summary, exit 0 and no node left. ZooKeeper counts
    the session timeout (4 s) from the last it heard: the leader's last lease renewal, at most a renewal
    period (4 s x LEASE_FRACTION x RENEW_FRACTION) before the crash."""
    shutil.copy(ROOT / SCRIPT[0], tmp_path)
    result = run(SCRIPT, "--zk", zk_server.hosts + chroot, "--duration", "10", "--seed", "1", cwd=tmp_path)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    out = result.stdout
    first = re.search(r"(w\d+-\w+) +ELECTED leader, epoch \d+\n", out)
    assert first and re.search(rf"{first[1]} +CRASHES: no goodbye; ZooKeeper waits 4 s from the last", out), out
    expiry = re.search(rf"ELECTED leader, epoch \d+; ([\d.]+) s after {first[1]} crashed \(ZooKeeper had to "
                       r"expire its session\)", out)
    renewal = 4 * LEASE_FRACTION * RENEW_FRACTION
    assert expiry and 4 - renewal - 0.1 < float(expiry[1]) < 6, out
    assert "most leaders at once      1" in out and "sessions not closed       0" in out
    assert make_client().get_children(CANDIDATES) == []


@pytest.mark.parametrize("demo", DEMOS)
def test_ctrl_c_closes_every_session(demo: str, zk_hosts: str, make_client: MakeClient) -> None:
    """SIGINT: exit 0, no traceback, a summary, and no ephemeral node left."""
    proc = start(DEMOS[demo], "--zk", zk_hosts, "--workers", "4", *FAST)
    read_until(proc, "ELECTED leader")
    observer = make_client()
    wait_until(lambda: len(observer.get_children(CANDIDATES)) == 4, 10, "all four candidates")
    code, out, err = interrupt(proc)
    assert code == 0, err
    assert "Traceback" not in err and "summary" in out
    assert observer.get_children(CANDIDATES) == []


@pytest.mark.parametrize("demo", DEMOS)
def test_two_copies_join_one_election(demo: str, zk_hosts: str, make_client: MakeClient) -> None:
    """Two processes against one ZooKeeper: one queue, unique names; the run whose candidate is first in line
    says it was elected (read before the Ctrl-C, which would silence a line still to come)."""
    procs = [start(DEMOS[demo], "--zk", zk_hosts, "--workers", "2", "--interval", "600") for _ in range(2)]
    try:
        runs = {re.search(r"w\d+-(\w+)", read_until(proc, "joined the election")[-1])[1]: proc for proc in procs}
        observer = make_client()
        queue = wait_until(lambda: len(n := observer.get_children(CANDIDATES)) == 4 and n, 15,
                           "four candidates from two processes")
        names = [c.split("__")[1] for c in queue]
        assert len(set(names)) == 4
        assert {name.split("-")[1] for name in names} == set(runs)  # two runs, two suffixes
        first = min(queue, key=lambda c: int(c.rsplit("__", 1)[1])).split("__")[1]
        # Its "joined" line comes before its "ELECTED" one, so the reads above left that one to read.
        assert first in read_until(runs[first.split("-")[1]], "ELECTED leader")[-1]
    finally:
        results = [interrupt(proc) for proc in procs]
    assert [code for code, _, _ in results] == [0, 0]


def test_unwritable_events_file_is_one_line(tmp_path: Path) -> None:
    """--events naming a file that cannot be appended to: argparse's one-line error, exit 2, and nothing made."""
    result = run(DEMO, "--events", str(tmp_path / "no-such-dir" / "events.jsonl"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    said = result.stderr.strip().splitlines()
    assert len(said) == 1 and "No such file or directory" in said[0], result.stderr
    result = run(DEMO, "--events", "")
    assert result.returncode == 2 and "Traceback" not in result.stderr and "error:" in result.stderr


def test_help_starts_nothing_and_parse_args_opens_nothing(tmp_path: Path) -> None:
    """--help prints the options at once; parse_args validates without creating the --events file."""
    from zklab.demo_leader import parse_args
    result = run(DEMO, "--help", timeout=20)
    assert result.returncode == 0 and "--session-timeout" in result.stdout and "--events" in result.stdout
    args = parse_args(["--zk", "127.0.0.1:2181", "--events", str(tmp_path / "e.jsonl")])
    assert args.zk == "127.0.0.1:2181" and not (tmp_path / "e.jsonl").exists()
    with pytest.raises(SystemExit) as exit_:
        parse_args(["--workers", "0"])
    assert exit_.value.code == 2


# ---------------------------------------------------------------- the figures are measured, not believed

def overlap_in_lanes(out: str) -> bool:
    lanes = [line[line.index("|") + 1:-1] for line in out.splitlines() if line.endswith("|") and "|" in line[:-1]]
    return any(sum(lane[i] == "#" for lane in lanes) > 1 for i in range(len(lanes[0]))) if lanes else False


def test_exercise_5_shows_two_leaders_in_both_demos_and_the_recipe_one(make_client: MakeClient, zk_hosts: str,
                                                                       tmp_path: Path) -> None:
    """Exercise 5 (SUSPENDED and the lease ignored), seed 5: the first fault partitions the leader, ZooKeeper
    elects the next one, and the old one goes on acting until the link heals. Both demos report 2 leaders at
    once, and the rich demo's lanes show the overlap. The recipe intact, in the same scenario: 1."""
    broken = edited_copy(tmp_path, exercise_edits("leader-5-no-suspended-no-lease.json"))
    args = ["--seed", "5", "--workers", "3", "--duration", "12"]
    env = {"PYTHONIOENCODING": "ascii"}
    procs = {
        "compact, exercise 5": start(SCRIPT, "--zk", namespace(make_client, zk_hosts, "c5"), *args, cwd=broken),
        "rich, exercise 5": start(DEMO, "--zk", namespace(make_client, zk_hosts, "r5"), *args, cwd=broken, env=env),
        "compact, intact": start(SCRIPT, "--zk", namespace(make_client, zk_hosts, "c"), *args),
        "rich, intact": start(DEMO, "--zk", namespace(make_client, zk_hosts, "r"), *args, env=env),
    }
    outs = {name: proc.communicate(timeout=60) for name, proc in procs.items()}
    for name, (out, err) in outs.items():
        assert procs[name].returncode == 0 and "Traceback" not in err, f"{name}: {err}"
        assert "PARTITIONED" in out, f"{name}: seed 5 should partition the leader first\n{out}"
        most = re.search(r"most leaders at once +(\d+)", out)
        assert most and most[1] == ("2" if "exercise" in name else "1"), f"{name}:\n{out}"
    assert overlap_in_lanes(outs["rich, exercise 5"][0]) and not overlap_in_lanes(outs["rich, intact"][0])


# ---------------------------------------------------------------- the learner's code never takes the demo hostage

BLOCK_START = ('        """Join the election and return at once; the work happens on a thread of our own."""\n',
               '        """Join the election and return at once; the work happens on a thread of our own."""\n'
               '        threading.Event().wait()  # a learner\'s bug: it never returns\n')
BLOCK_LEAVE = ('        """Stop acting and ask ZooKeeper to delete our node, handing leadership on; do not wait."""\n',
               '        """Stop acting and ask ZooKeeper to delete our node, handing leadership on; do not wait."""\n'
               '        threading.Event().wait()  # a learner\'s bug: it never returns\n')


@pytest.mark.parametrize("demo", DEMOS)
def test_a_start_that_never_returns_does_not_stop_duration(demo: str, zk_hosts: str, tmp_path: Path) -> None:
    """start() blocked forever: --duration 3 still ends the demo within its shutdown bound, exit 0."""
    where = edited_copy(tmp_path, [BLOCK_START])
    started = time.monotonic()
    result = run(DEMOS[demo], "--zk", zk_hosts, "--duration", "3", "--workers", "3", cwd=where, timeout=30)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert time.monotonic() - started < 3 + SHUTDOWN_BOUND, f"it took {time.monotonic() - started:.1f} s"


@pytest.mark.parametrize("demo", DEMOS)
@pytest.mark.parametrize("signals", [(signal.SIGINT, signal.SIGINT), (signal.SIGTERM, signal.SIGTERM)])
def test_a_second_signal_ends_a_hung_recipe_within_a_second(demo: str, signals: tuple[int, int], zk_hosts: str,
                                                           tmp_path: Path) -> None:
    """start() and leave() both blocked: the first Ctrl-C (or SIGTERM) asks for a clean stop that cannot come;
    the second ends the demo within a second."""
    where = edited_copy(tmp_path, [BLOCK_START, BLOCK_LEAVE])
    proc = start(DEMOS[demo], "--zk", zk_hosts, "--workers", "2", cwd=where)
    read_until(proc, " starts")
    proc.send_signal(signals[0])
    read_until(proc, "shutting down")  # the clean stop is under way, and hangs in leave()
    assert proc.poll() is None, "the first signal ended the demo at once: nothing was hung"
    proc.send_signal(signals[1])
    sent = time.monotonic()
    proc.wait(timeout=10)
    assert time.monotonic() - sent < 1.0 + 0.5, f"it took {time.monotonic() - sent:.2f} s"  # 0.5: a busy machine
    assert "Traceback" not in proc.stderr.read()


def test_the_compact_summary_counts_sessions_left_open_when_leave_hangs(zk_hosts: str, tmp_path: Path) -> None:
    """leave() that never returns: the shutdown ends at its bound, and the summary says both sessions were not
    closed (a hostile trial read 'sessions not closed 0' while three candidates' nodes were still there)."""
    where = edited_copy(tmp_path, [BLOCK_LEAVE], with_lab=False)
    proc = start(SCRIPT, "--zk", zk_hosts, "--workers", "2", cwd=where)
    read_until(proc, "ELECTED")
    proc.send_signal(signal.SIGINT)
    read_until(proc, "shutting down")  # hangs in leave(): a second Ctrl-C ends it at once
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0 and "Traceback" not in err, err
    assert re.search(r"sessions not closed +2$", out, re.MULTILINE), out


@pytest.mark.parametrize("demo", DEMOS)
def test_ctrl_c_while_python_loads_kazoo_is_quiet(demo: str, zk_hosts: str) -> None:
    """Ctrl-C while the demo still imports kazoo: exit 0, no KeyboardInterrupt traceback."""
    proc = subprocess.Popen([sys.executable, "-X", "importtime", *DEMOS[demo], "--zk", zk_hosts], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while "kazoo" not in (line := proc.stderr.readline()):
        assert line, "the demo ended before importing kazoo"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0 and "Traceback" not in err and "KeyboardInterrupt" not in err, err


# ---------------------------------------------------------------- ZooKeeper that refuses, a stdout that fails

@pytest.mark.parametrize("demo", DEMOS)
@pytest.mark.parametrize("denied", ["READ", "CREATE"])
def test_an_acl_that_denies_the_demo_is_one_line(demo: str, denied: str, zk_server: object, chroot: str,
                                                  make_client: MakeClient) -> None:
    """The candidates node unreadable, or its parent not creatable (a real digest ACL): one line naming the path
    (and, in the rich demo, the permission), exit 1, within the connect timeout."""
    owner = make_digest_acl("owner", "secret", all=True)
    admin = make_client(auth_data=[("digest", "owner:secret")])
    if denied == "READ":
        admin.ensure_path("/lab/leader-election")
        admin.create(CANDIDATES, acl=[owner])
        path = f"{chroot}{CANDIDATES}"
    else:
        admin.create("/lab", acl=[owner, make_acl("world", "anyone", read=True)])
        path = f"{chroot}/lab"
    started = time.monotonic()
    result = run(DEMOS[demo], "--zk", zk_server.hosts + chroot, "--duration", "5", timeout=30)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    # The rich demo names the permission and the node; the compact one the election path and ZooKeeper's error.
    said = f"{denied} permission on {path}" if demo == "rich" else f"{chroot}{CANDIDATES} (NoAuthError)"
    assert len(lines) == 1 and said in lines[0], result.stderr
    assert time.monotonic() - started < 5 + 3


@pytest.mark.parametrize("demo", DEMOS)
def test_stdout_to_dev_full_is_no_crash(demo: str, zk_hosts: str, make_client: MakeClient) -> None:
    """stdout on a full disk (/dev/full): the first line cannot be written, so the demo stops cleanly, no
    traceback, no node left, says so in one line on stderr and exits 1 (a reader who left is exit 0)."""
    with open("/dev/full", "w") as full:
        result = run(DEMOS[demo], "--zk", zk_hosts, "--duration", "5", "--workers", "2", timeout=30,
                     stdout=full, capture_output=False, stderr=subprocess.PIPE)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot write to stdout" in lines[0], result.stderr
    observer = make_client()
    assert not observer.exists(CANDIDATES) or observer.get_children(CANDIDATES) == []
