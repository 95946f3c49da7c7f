"""The rich leader demo (python -m zklab.demo_leader) under the faults it teaches: ZooKeeper gone, signals at any
moment, a closed stdout, dead hosts, a killed ZooKeeper leader; and the picture of a run it ends with."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from tests.cli import ROOT, interrupt, read_until
from zklab.demo_leader import Link
from zklab.faults import StateLog, wait_until
from zklab.lanes import Lane, draw_timeline
from zklab.launcher import ZooKeeperCluster, free_ports
from zklab.plumbing import RECONNECT, chroot_hint, parse_zk
from zklab.proxy import PartitionProxy

DEMO = ["-m", "zklab.demo_leader"]
CANDIDATES = "/lab/leader-election/candidates"
MakeClient = Callable[..., KazooClient]


def start(*args: str, python: tuple[str, ...] = (), env: dict[str, str] | None = None) -> subprocess.Popen:
    environ = {k: v for k, v in os.environ.items() if k != "ZK_HOSTS"} | (env or {})
    return subprocess.Popen([sys.executable, "-u", *python, *DEMO, *args], cwd=ROOT, env=environ,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, timeout: float) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def read_events(path: Path) -> list[dict]:
    """Every complete line so far (the demo may be writing the next one)."""
    return [json.loads(line) for line in path.read_text().split("\n")[:-1]]


def candidates(client: KazooClient, path: str = CANDIDATES) -> list[str]:
    try:
        return client.get_children(path)
    except NoNodeError:
        return []  # the demo has not made its path (yet)


def wait_for_candidates(client: KazooClient, path: str, count: int) -> None:
    wait_until(lambda: len(candidates(client, path)) == count, 15, f"{count} candidates under {path}")


def namespace(make_client: MakeClient, zk_hosts: str, name: str) -> str:
    """A sub-namespace of the test's chroot, so that several demos at once hold separate elections."""
    make_client().ensure_path(f"/{name}")
    return f"{zk_hosts}/{name}"


# ---------------------------------------------------------------- a short run shows the lesson

FIRST_STRIKE = {"1": "CRASHES", "5": "PARTITIONED", "7": "resigns"}  # the seeded first fault, per seed


def check_lesson(out: str, fault: str) -> None:
    lines = out.splitlines()
    first_leader = next(line.split()[1] for line in lines if "ELECTED leader" in line)
    assert any(fault in line and line.split()[1] == first_leader for line in lines), \
        f"the first fault did not strike the leader {first_leader}:\n{out}"
    assert any("ELECTED leader" in line and "hand-off" in line for line in lines), out
    assert any("notified: the candidate just before me left" in line for line in lines), out
    for i, line in enumerate(lines):  # a hand-off is the gap between the stamps of its two lines
        if found := re.search(r"^\s*([\d.]+)s\s+(\S+)\s+ELECTED leader.*hand-off ([\d.]+) ms", line):
            notified = next(n for n in reversed(lines[:i]) if n.split()[1:3] == [found[2], "notified:"])
            gap_ms = (float(found[1]) - float(notified.split()[0].rstrip("s"))) * 1000
            assert abs(gap_ms - float(found[3])) <= 1.5, f"{notified}\n{line}"


def check_events(events: list[dict]) -> None:
    """The --events contract: start first, exit last, lead/unlead alternate, writes inside a term."""
    assert events[0]["event"] == "start" and events[0]["session_timeout"] == 4.0
    assert events[-1] == {**events[-1], "event": "exit", "clean": True, "left": []}
    assert {e["pid"] for e in events} == {events[0]["pid"]} and len({e["run"] for e in events}) == 1
    terms: dict[str, list[tuple[float, float, int]]] = {}
    open_terms: dict[str, tuple[float, int]] = {}
    for e in (e for e in events if e["event"] in ("lead", "unlead")):
        if e["event"] == "lead":
            assert e["worker"] not in open_terms, f"two leads in a row: {e}"
            open_terms[e["worker"]] = (e["t"], e["epoch"])
        else:
            t, epoch = open_terms.pop(e["worker"])
            assert e["epoch"] == epoch and e["t"] >= t
            terms.setdefault(e["worker"], []).append((t, e["t"], epoch))
    assert not open_terms, f"terms never closed: {open_terms}"
    spans = sorted(span for worker_terms in terms.values() for span in worker_terms)
    assert all(a[1] <= b[0] for a, b in pairwise(spans)), "two workers led at the same instant"
    for write in (e for e in events if e["event"] == "write"):
        assert any(s <= write["t"] and epoch == write["epoch"] for s, _, epoch in terms[write["worker"]])


def summary_at(lines: list[str]) -> int:
    return next(i for i, line in enumerate(lines) if line.startswith("summary"))


def check_picture(out: str, workers: int, lead: str) -> None:
    """Lanes fit in 100 columns, one per worker, and no column shows two leaders."""
    lines = out.splitlines()
    lanes = [line for line in lines if line.endswith("|") and "|" in line[:-1]]
    assert len(lanes) == workers and all(len(line) <= 100 for line in lines[summary_at(lines):])
    cells = [lane[lane.index("|") + 1:-1] for lane in lanes]
    assert all(sum(cell[i] == lead for cell in cells) <= 1 for i in range(len(cells[0])))
    assert sum(lead in cell for cell in cells) >= 2, "the picture shows no hand-off"


def test_ten_second_run_with_defaults_shows_a_leader_fault_and_a_hand_off(
        make_client: MakeClient, zk_hosts: str, tmp_path: Path) -> None:
    """With default options, 10 s show a fault of the leader (crash, partition or resign, per seed),
    a hand-off with its notification, --events per the contract, and a picture with one leader per column."""
    procs = {seed: start("--zk", namespace(make_client, zk_hosts, f"s{seed}"), "--duration", "10", "--seed", seed,
                         "--events", str(tmp_path / f"{seed}.jsonl"),
                         env={"PYTHONIOENCODING": "ascii"} if seed == "7" else None)
             for seed in FIRST_STRIKE}
    results = {seed: finish(proc, 30) for seed, proc in procs.items()}
    for seed, (code, out, err) in results.items():
        assert code == 0 and "Traceback" not in err, err
        check_lesson(out, FIRST_STRIKE[seed])
        check_events(read_events(tmp_path / f"{seed}.jsonl"))
        workers = max(int(line.split()[1].split("-")[0][1:]) for line in out.splitlines()
                      if line.endswith((" starts", " joins (chaos)")))
        check_picture(out, workers, "#" if seed == "7" else "\u2588")


def test_a_partition_cut_short_by_the_end_is_followed_by_no_stale_write(make_client: MakeClient,
                                                                         zk_hosts: str) -> None:
    """A partition that the end of the run cuts short, before the session could expire, is not followed by a
    "stale" write: the leader's epoch is still the current one, and no rejection is counted."""
    code, out, err = finish(start("--zk", namespace(make_client, zk_hosts, "short"), "--duration", "3",
                                  "--seed", "5", "--no-timeline"), 30)
    assert code == 0 and "Traceback" not in err, err
    assert "PARTITIONED" in out  # seed 5's first misfortune, at 2 s: 1 s before the end
    assert "retries a write" not in out and "STALE WRITE" not in out, out


def test_a_shared_election_says_that_other_runs_candidates_were_there(make_client: MakeClient,
                                                                       zk_hosts: str) -> None:
    """With another run's candidate in the queue, the summary says so: its departures wake our workers and its
    leaders are not in our count, so our figures are this run's share of the election."""
    hosts = namespace(make_client, zk_hosts, "shared")
    other = make_client(hosts)
    other.create(f"{CANDIDATES}/{'0' * 32}__w1-othr__", b"w1-othr", ephemeral=True, sequence=True, makepath=True)
    code, out, err = finish(start("--zk", hosts, "--duration", "1", "--no-timeline"), 30)
    assert code == 0 and "Traceback" not in err, err
    line = next((line for line in out.splitlines() if "other runs' candidates" in line), None)
    assert line is not None and line.split()[3] == "1" and len(line) <= 100, out


@pytest.mark.parametrize("demo", ["zklab.demo_leader", "zklab.demo_hashing"])
def test_a_missing_two_level_chroot_says_how_to_create_each_level(zk_hosts: str, demo: str) -> None:
    """Both rich demos give the zkCli commands that make a missing chroot, one per level (create makes no
    parents), as smoke and tree do: one line, exit 1."""
    zk = f"{zk_hosts}/no-such/deeper"
    result = subprocess.run([sys.executable, "-m", demo, "--zk", zk, "--duration", "5"], cwd=ROOT, text=True,
                            capture_output=True, timeout=30)
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert f"create it with: {chroot_hint(zk)}; or drop" in result.stderr, result.stderr
    assert chroot_hint(zk).endswith("create /" + zk.split("/", 1)[1]), chroot_hint(zk)


def test_an_events_file_that_fails_mid_run_is_said_once(zk_hosts: str) -> None:
    """--events on a full disk (/dev/full): one warning line, and the demo still runs to a clean exit."""
    code, _, err = finish(start("--zk", zk_hosts, "--duration", "1", "--events", "/dev/full"), 30)
    assert code == 0, err
    assert err.count("warning: --events: cannot write") == 1 and "Traceback" not in err


# ---------------------------------------------------------------- the picture, from measured history

def lane(name: str, terms: list[tuple[float, float]], **kwargs: object) -> Lane:
    history = [entry for s, e in terms for entry in ((s, True, "elected"), (e, False, "resigned"))]
    return Lane(name, history, kwargs.pop("joined", 0.0), kwargs.pop("gone", None), kwargs.pop("crashed", False),
                kwargs.pop("partitions", []), kwargs.pop("rejections", []))


def cells(rows: list[str]) -> dict[str, str]:
    return {row.split("|")[0].strip(): row.split("|")[1] for row in rows if row.endswith("|")}


def test_picture_marks_the_majority_leader_of_each_column() -> None:
    """A hand-off inside a column marks only the worker that led for most of it; each lane shows
    waiting, partitioned, crashed and rejected writes where they were measured."""
    # Names padded to 5 leave 93 columns; over 9.3 s one column is 0.1 s, and the hand-off at 4.03 s
    # falls inside column 40.
    lanes = [lane("a", [(0.0, 4.03)], partitions=[(5.05, 5.95)], rejections=[6.55]),
             lane("bb", [(4.03, 9.3)]),
             lane("c", [], joined=1.05, gone=3.05, crashed=True)]
    rows = draw_timeline(lanes, 0.0, 9.3, utf8=False)
    got = cells(rows)
    assert all(len(row) <= 100 for row in rows) and len(got["a"]) == 93
    assert got["a"][:40] == "#" * 40 and got["a"][40] == "-" and got["bb"][40] == "#"
    assert got["a"][50:60] == "~" * 10 and got["a"][65] == "!"
    assert got["c"][:10] == " " * 10 and got["c"][10:30] == "-" * 20 and got["c"][30] == "x" and got["c"][31:].isspace()
    assert "# leading" in rows[-2] and "waiting in line" in rows[-2] and "one column = 0.10 s" in rows[-1]
    assert "\u2588" in "".join(draw_timeline(lanes, 0.0, 9.3, utf8=True))


def test_picture_shows_two_leaders_when_they_overlapped() -> None:
    """Two workers acting at the same instant both show as leading in that column: the picture hides no
    overlap, even one shorter than a column."""
    lanes = [lane("a", [(0.0, 4.05)]), lane("b", [(4.02, 9.3)])]
    got = cells(draw_timeline(lanes, 0.0, 9.3, utf8=False))
    assert got["a"][40] == got["b"][40] == "#"
    assert [i for i in range(len(got["a"])) if got["a"][i] == got["b"][i] == "#"] == [40]


# ---------------------------------------------------------------- ZooKeeper gone for good

def test_duration_holds_and_leftovers_are_reported_when_zookeeper_is_gone(own_server: ZooKeeperCluster,
                                                                          tmp_path: Path) -> None:
    """kill -9 of the only ZooKeeper: the demo still ends within --duration + session timeout + 5 s,
    exits 0 without a traceback, and lists the nodes it could not delete."""
    events = tmp_path / "events.jsonl"
    started = time.monotonic()
    proc = start("--zk", own_server.hosts, "--duration", "3", "--session-timeout", "2", "--workers", "3",
                 "--interval", "600", "--events", str(events))
    observer = KazooClient(hosts=own_server.hosts)
    observer.start(timeout=10)
    wait_for_candidates(observer, CANDIDATES, 3)
    observer.stop()
    observer.close()
    own_server.kill_server(1)
    code, out, err = finish(proc, 3 + 2 + 5 + 2)
    elapsed = time.monotonic() - started
    assert code == 0 and "Traceback" not in err, err
    assert elapsed < 3 + 2 + 5, f"the demo took {elapsed:.1f}s"
    exit_line = read_events(events)[-1]
    assert exit_line["event"] == "exit" and not exit_line["clean"]
    assert len(exit_line["left"]) == 3 and all(p.startswith(CANDIDATES + "/") for p in exit_line["left"])
    assert "not cleaned up            3 node(s)" in out


# ---------------------------------------------------------------- signals and a closed stdout

def test_second_signal_during_shutdown_still_removes_every_node(make_client: MakeClient, zk_hosts: str) -> None:
    """30 workers: SIGTERM twice at once, or SIGINT then SIGTERM midway through the shutdown. Every
    delete is sent first, so no candidate node is left, and both exit 0 without a traceback."""
    hosts = {way: namespace(make_client, zk_hosts, way) for way in ("twice", "midway")}
    procs = {way: start("--zk", hosts[way], "--workers", "30", "--interval", "600") for way in hosts}
    observer = make_client()
    for way in procs:
        wait_for_candidates(observer, f"/{way}{CANDIDATES}", 30)
    procs["twice"].send_signal(signal.SIGTERM)
    procs["twice"].send_signal(signal.SIGTERM)
    procs["midway"].send_signal(signal.SIGINT)
    read_until(procs["midway"], "shutting down")
    procs["midway"].send_signal(signal.SIGTERM)
    for way, proc in procs.items():
        code, _, err = finish(proc, 10)
        assert code == 0 and "Traceback" not in err, err
        left = observer.get_children(f"/{way}{CANDIDATES}")
        assert left == [], f"{way}: {len(left)} candidate nodes left behind"


def test_closed_stdout_closes_every_session(make_client: MakeClient, zk_hosts: str) -> None:
    """Piped into `head`: when the reader goes, the demo closes every session, leaves no node, and
    exits 0 with nothing on stderr."""
    proc = start("--zk", zk_hosts, "--workers", "3", "--interval", "600")
    observer = make_client()
    wait_for_candidates(observer, CANDIDATES, 3)
    proc.stdout.close()  # the demo finds out at its next line: the first fault, 2 s in
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0 and err == ""
    assert observer.get_children(CANDIDATES) == []


def test_ctrl_c_while_python_loads_kazoo_is_quiet(zk_hosts: str) -> None:
    """Ctrl-C while the script is still importing kazoo: exit 0, no KeyboardInterrupt traceback."""
    proc = start("--zk", zk_hosts, python=("-X", "importtime"))
    lines = []
    while not any("kazoo" in line for line in lines[-1:]):
        lines.append(proc.stderr.readline())
        assert lines[-1], "the script ended before importing kazoo"
    proc.send_signal(signal.SIGINT)
    code, _, err = finish(proc, 10)
    assert code == 0 and "Traceback" not in err and "KeyboardInterrupt" not in err, err


@pytest.mark.parametrize("delay", [0.0, 0.03, 0.1, 0.2])
def test_ctrl_c_in_the_first_moments_is_clean(delay: float, make_client: MakeClient, zk_hosts: str) -> None:
    """Ctrl-C just after the imports, while the demo connects or starts its workers: exit 0, no
    traceback, no node left."""
    proc = start("--zk", zk_hosts, "--workers", "5", python=("-X", "importtime"))
    while not proc.stderr.readline().rstrip().endswith("| kazoo.client"):
        assert proc.poll() is None, "the script ended before it had imported kazoo"
    time.sleep(delay)  # the moment is the point of this test, not a wait for a condition
    proc.send_signal(signal.SIGINT)
    code, _, err = finish(proc, 10)
    assert code == 0 and "Traceback" not in err, err
    assert candidates(make_client()) == []


# ---------------------------------------------------------------- the relay and reconnects

def test_zk_addresses_parse_with_ipv6_literals() -> None:
    """--zk takes names, IPv4 and bracketed IPv6 literals; the brackets are not part of the host."""
    assert parse_zk("[::1]:2182,zk-1.lab,10.0.0.1:2183/lab/x") == (
        [("::1", 2182), ("zk-1.lab", 2181), ("10.0.0.1", 2183)], "/lab/x")
    for bad in ["::1:2181", "[::1", "[zz]:1", "h:0", "h:65536", "h/", "h/a//b", "a b:1"]:
        with pytest.raises(ValueError):
            parse_zk(bad)


def test_relay_moves_on_from_a_dead_host_at_once(zk_server: ZooKeeperCluster) -> None:
    """A dead host first in --zk: the relay drops kazoo's connection at once, so kazoo connects through
    the next host in well under its 4 s handshake wait."""
    link = Link([("127.0.0.1", free_ports(1)[0]), parse_zk(zk_server.hosts)[0][0]])
    client = KazooClient(hosts=link.address, timeout=4.0, connection_retry=dict(RECONNECT))
    started = time.monotonic()
    try:
        client.start(timeout=4.0)
        assert time.monotonic() - started < 1.0
    finally:
        client.stop()
        client.close()
        link.sever()


def test_reconnect_delay_is_capped(make_client: MakeClient, make_proxy: Callable[..., PartitionProxy]) -> None:
    """After 4 s without ZooKeeper, a client with the demo's reconnect policy is back within a second
    of ZooKeeper's return (kazoo's default backoff would sleep seconds more)."""
    proxy = make_proxy()
    client = make_client(hosts=proxy.address, timeout=20.0, connection_retry=dict(RECONNECT))
    log = StateLog(client)
    proxy.cut()
    log.wait_for("SUSPENDED", 5)
    deadline = time.monotonic() + 4.0
    wait_until(lambda: time.monotonic() > deadline, 5, "the outage to last 4 s")
    proxy.heal()
    healed = time.monotonic()
    wait_until(lambda: client.connected, 3, "the client to reconnect")
    assert time.monotonic() - healed < 1.0


# ---------------------------------------------------------------- ZooKeeper's own leader dies

def write_after(events: Path, since: float, what: str) -> float:
    """Wait for an accepted ledger write after `since` (monotonic time); return when it was made."""
    def found() -> float | None:
        return next((e["t"] for e in read_events(events) if e["event"] == "write" and e["t"] > since), None)
    return wait_until(found, since - time.monotonic() + 10, what)


def test_killing_zookeepers_leader_loses_no_demo_session(ensemble: ZooKeeperCluster,
                                                        tmp_path: Path) -> None:
    """kill -9 of the ensemble's leader with 4 s sessions: every worker keeps its session and its node
    (no LOST, no rejoin), and leadership writes resume."""
    events = tmp_path / "events.jsonl"
    observer = KazooClient(hosts=ensemble.hosts)
    observer.start(timeout=10)
    proc = start("--zk", ensemble.hosts, "--workers", "3", "--seed", "7", "--interval", "600",
                 "--session-timeout", "4", "--events", str(events))
    try:
        read_until(proc, "resigns")              # seed 7: the first fault is a resignation, sessions untouched
        read_until(proc, "ELECTED leader")
        observer.sync(CANDIDATES)  # a follower may lag: read what the leader has committed
        nodes = sorted(observer.get_children(CANDIDATES))
        ensemble.kill_server(ensemble.leader().sid)
        resumed = write_after(events, time.monotonic(), "a ledger write after the kill")
        # ZooKeeper's new leader gives every session a fresh timeout: one that did not make it back
        # expires within 4 s of ZooKeeper serving again, which the first write after the kill marks.
        write_after(events, resumed + 4.5, "a ledger write a session timeout after writes resumed")
        observer.sync(CANDIDATES)
        after = sorted(observer.get_children(CANDIDATES))
    finally:
        code, out, err = interrupt(proc)
        observer.stop()
        observer.close()
    assert code == 0 and "Traceback" not in err, err
    assert "LOST" not in out and "rejoined" not in out, out
    assert not [e for e in read_events(events) if "LOST" in e.get("why", "")]
    assert after == nodes, f"the candidates' nodes changed: {nodes} became {after}\n{out}"


def test_a_node_deleted_from_outside_is_not_called_a_lost_session(make_client: MakeClient, zk_hosts: str) -> None:
    """An admin deletes every candidate's node while their sessions live: the workers rejoin, and the demo says
    their node was gone, not that their session was LOST (it said so, which no session had been)."""
    hosts = namespace(make_client, zk_hosts, "deleted")
    admin = make_client(hosts)
    proc = start("--zk", hosts, "--workers", "2", "--interval", "600", "--no-timeline")
    seen: list[str] = []
    try:
        seen += read_until(proc, "ELECTED leader")
        wait_for_candidates(admin, CANDIDATES, 2)
        for node in candidates(admin):
            admin.delete(f"{CANDIDATES}/{node}")
        seen += read_until(proc, "rejoined")
    finally:
        code, rest, err = interrupt(proc)
    out = "".join(seen) + rest
    assert code == 0 and "Traceback" not in err, err
    assert "its node was gone, its session alive; rejoined" in out and "LOST" not in out, out


def test_a_persistent_node_in_the_queue_is_said_at_the_start(make_client: MakeClient, zk_hosts: str) -> None:
    """A candidate-looking node made by hand as persistent belongs to no session: nobody behind it will ever
    lead. The demo says so in one warning line at the start, and runs on."""
    hosts = namespace(make_client, zk_hosts, "stuck")
    make_client(hosts).create(f"{CANDIDATES}/g__w0__0000000000", b"w0", makepath=True)
    code, out, err = finish(start("--zk", hosts, "--workers", "1", "--duration", "1", "--no-timeline"), 30)
    assert code == 0 and "Traceback" not in err, err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "g__w0__0000000000" in warnings[0] and "never leave" in warnings[0], err
