"""The rich leader-election demo: the learner's challenge_leader_election.py, as edited, under chaos.

    python -m zklab.demo_leader --zk HOSTS [--workers N --interval S --duration S --seed N
                                            --session-timeout S --events FILE --no-timeline]

Rules of this demo:
- It drives the script only through its public API (LeaderElection, its on_change hook, fenced_write,
  NotLeaderError), so an edit of the recipe shows here as it shows in the checker.
- Every figure is measured from what the workers did: each worker samples its election's is_leader in
  its own loop, acts on it (ledger writes) and records when it changed. Nothing is taken from the
  recipe's own account of itself, so an edit that breaks the rule shows as two leaders at once.
- No call into the learner's code runs on the main thread: it owns --duration and the shutdown bound,
  and a second Ctrl-C or SIGTERM ends the demo within a second, whatever the recipe does.
- Faults are real: each worker reaches ZooKeeper through its own relay (Link) that chaos partitions or
  severs; a crash leaves its session to expire.
"""

from __future__ import annotations

import _signal  # `signal` without its enums, which take a while to load: the guard starts sooner

# ruff: noqa: E402  (the guard below must run before the imports, which take a moment)
import os

if __name__ == "__main__":
    # Ctrl-C or SIGTERM while Python still loads kazoo: nothing to clean up yet, so leave at once and
    # quietly (not sys.exit: an exception raised inside an import can come out as another, with a traceback).
    for _sig in (_signal.SIGINT, _signal.SIGTERM):
        _signal.signal(_sig, lambda *_: os._exit(0))

import argparse
import contextlib
import errno
import json
import logging
import queue
import random
import socket
import sys
import threading
import time
import uuid
from pathlib import Path
from types import ModuleType
from typing import TextIO

from kazoo.client import KazooClient
from kazoo.exceptions import ConnectionClosedError, ConnectionLoss, KazooException, NoAuthError, SessionExpiredError
from kazoo.handlers.threading import KazooTimeoutError

from zklab.lanes import Lane, draw_timeline, utf8_output
from zklab.plumbing import (
    RECONNECT,
    ZK_FORM,
    Shutdown,
    chroot_hint,
    leave_now,
    load_script,
    new_client,
    number_arg,
    parse_zk,
    start_client,
    stop_client,
    zk_arg,
)

REPO = Path(__file__).resolve().parent.parent
ROOT = "/lab/leader-election"
CANDIDATES, LEDGER = f"{ROOT}/candidates", f"{ROOT}/ledger"
WRITE_EVERY = 0.25   # seconds between a leader's ledger writes; each round trip waits at most this long
SAMPLE_EVERY = 0.01  # how often a worker looks at is_leader: what it acts on, and what we measure
RUN_ID = uuid.uuid4().hex[:4]  # makes worker names unique across runs sharing an election
CONNECT_TIMEOUT = 5.0  # how long we wait for a first connection before saying ZooKeeper is unreachable
# The relay gives up on a server that does not accept within this, so kazoo moves on to the next.
UPSTREAM_TIMEOUT = 1.0
# The first misfortune comes this soon (or after --interval, if shorter) and always strikes the
# leader: even a 10 s run shows a fault and a hand-off.
FIRST_FAULT_AFTER = 2.0
# At shutdown we wait one session timeout for ZooKeeper to confirm each delete, plus this for the
# sessions to close. Past that, ZooKeeper's session expiry removes what is left.
CLOSE_GRACE = 1.0
# After a second Ctrl-C or SIGTERM we stop waiting for sessions to close, and wait at most this
# long for ZooKeeper to answer the deletes already sent.
HURRY_GRACE = 0.5
DISCONNECTED = (ConnectionLoss, SessionExpiredError, ConnectionClosedError, KazooTimeoutError)
SESSION_HELP = ("seconds (default 4). ZooKeeper grants 2 to 20 ticks: 0.5-60 s on the lab's servers "
                "(tick 250 ms, max 60 s), 4-40 s on a stock server")


class EventLog:
    """--events FILE: one JSON object per line for an outside observer; it never raises into the demo."""

    def __init__(self, file: TextIO | None):
        self._file, self._lock = file, threading.Lock()

    def write(self, event: str, t: float | None = None, **fields: object) -> None:
        if self._file is None:
            return
        record = {"t": time.monotonic() if t is None else t, "pid": os.getpid(), "run": RUN_ID, "event": event}
        line = json.dumps({**record, **fields})
        with self._lock:
            try:
                self._file.write(line + "\n")
                self._file.flush()
            except (OSError, ValueError) as exc:  # a full disk must not stop the demo, but it must be said
                self._file = None
                print(f"warning: --events: cannot write ({getattr(exc, 'strerror', None) or exc}); "
                      "the demo goes on without the log", file=sys.stderr, flush=True)


class Timeline:
    """Prints one line per event, with the time since the demo started; keeps the counts."""

    def __init__(self, shutdown: Shutdown) -> None:
        self.started = time.monotonic()
        self._shutdown = shutdown
        self._lock = threading.Lock()
        self.elections = 0
        self.handoffs_ms: list[float] = []
        self.accepted = self.rejected = self.notified = self.departures = 0
        self.others: set[str] = set()  # candidates of other runs seen in the queue (a shared election)
        self.muted = False  # set at shutdown: the teardown's elections are not part of the lesson
        self.lost: OSError | None = None  # why stdout stopped taking our lines, if it did
        self._print_lock = threading.Lock()

    def say(self, who: str, what: str, at: float | None = None) -> None:
        """One line, stamped with when it happened (`at`, default now): a figure such as a hand-off is then
        the gap between the stamps of its two lines, not between two prints."""
        if not self.muted:
            self.out(f"{(time.monotonic() if at is None else at) - self.started:8.3f}s  {who:<10} {what}")

    def out(self, text: str) -> None:
        """print(), but a stdout that refuses (a reader that left, a full disk) asks for a clean stop instead."""
        with self._print_lock:
            if self.lost:
                return
            try:
                print(text, flush=True)
            except (OSError, ValueError) as exc:
                self.lost = exc if isinstance(exc, OSError) else OSError(errno.EPIPE, "stdout is closed")
                with contextlib.suppress(OSError, ValueError):  # Python's last flush must not fail again
                    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        if self.lost:
            self._shutdown.request("stdout closed")

    def count(self, counter: str, handoff_ms: float | None = None) -> None:
        with self._lock:
            if self.muted:
                return
            setattr(self, counter, getattr(self, counter) + 1)
            if handoff_ms is not None:
                self.handoffs_ms.append(handoff_ms)


class Link:
    """A worker's own network cable to ZooKeeper: a loopback relay the chaos driver can unplug.

    partition(): packets are silently dropped; the worker cannot tell a slow network from a dead one.
    sever(): the cable is cut for good, as when the worker's machine dies.
    """

    def __init__(self, hosts: list[tuple[str, int]]):
        self._hosts, self._next = hosts, 0
        self._open = threading.Event()
        self._open.set()
        self._severed = False
        self._sockets: list[socket.socket] = []
        self._server = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self._server.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def partition(self) -> None:
        self._open.clear()

    def heal(self) -> None:
        self._open.set()

    def sever(self) -> None:
        self._severed = True
        self._server.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self._open.set()

    def _accept(self) -> None:
        while not self._severed:
            try:
                near, _ = self._server.accept()
            except OSError:
                continue
            near.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # see _upstream
            far = self._upstream()
            if far is None:
                near.close()  # kazoo sees the connection drop at once, and its next try goes to the next host
                continue
            self._sockets += [near, far]
            for src, dst in ((near, far), (far, near)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _upstream(self) -> socket.socket | None:
        """A connection to the next server in turn (kazoo would try each in turn too), or None."""
        host = self._hosts[self._next % len(self._hosts)]
        self._next += 1
        try:
            far = socket.create_connection(host, timeout=UPSTREAM_TIMEOUT)
        except OSError:
            return None
        far.settimeout(None)  # from now on, silence is the partition's business, not a time-out
        # Kazoo pipelines small requests (a sync, then a read); with Nagle's algorithm on, a relay would
        # hold the second until the first is acknowledged, up to 40 ms later.
        far.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return far

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                self._open.wait()  # during a partition, bytes wait here like packets in the void
                if self._severed:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            sock.close()


def close_session(zk: str, client_id: tuple[int, bytes] | None, deadline: float) -> bool:
    """Close a session whose client is gone, presenting its id and password as a twin would.
    True once ZooKeeper has it closed (or had expired it already)."""
    if not client_id:
        return True
    twin = KazooClient(hosts=zk, client_id=client_id, connection_retry=dict(RECONNECT))
    connected = start_client(twin, min(CONNECT_TIMEOUT, deadline - time.monotonic()))
    return stop_client(twin, deadline - time.monotonic()) and connected


class Worker:
    """One election candidate with its own session. On its own thread it samples is_leader, acts on it
    (ledger writes while it leads) and records when that changed: the run's figures come from there."""

    def __init__(self, demo: Demo, index: int):
        self.name = f"w{index}-{RUN_ID}"
        self.demo, self.timeline, self.events, self.script = demo, demo.timeline, demo.events, demo.script
        self.link = Link(demo.hosts)
        # The relay stands in for the servers: kazoo gets its address once per server, because it
        # waits (session timeout / number of addresses) for each handshake. A chroot still applies.
        relay = ",".join([self.link.address] * len(demo.hosts))
        self.client = new_client(relay + demo.chroot, demo.session_timeout)
        self.election = self.script.LeaderElection(self.client, CANDIDATES, self.name, on_change=self._heard)
        self.news: queue.SimpleQueue[tuple[str, str, float]] = queue.SimpleQueue()
        self.sessions, self.session_id = 0, None  # joins, and the session of the last one
        self.crashed = self.resigned = False
        self.crashed_session: tuple[int, bytes] | None = None
        # What the summary and the picture are drawn from: measured times, nothing else.
        self.terms: list[tuple[float, bool, str]] = []  # (time, acting as leader?, why) as this worker saw it
        self.leading, self.why, self.epoch, self.last_epoch = False, "", None, None
        self.woken_at: float | None = None
        self.joined_at: float | None = None
        self.gone_at: float | None = None
        self.partitions: list[tuple[float, float]] = []
        self.rejections: list[float] = []
        self.unconfirmed: list[str] = []  # nodes we asked ZooKeeper to delete, not yet confirmed gone
        self.answered = threading.Event()  # set at shutdown once ZooKeeper answered for our node
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def start(self) -> None:
        """Connect, join and act, on a thread of the worker's own: the learner's start() may block there."""
        threading.Thread(target=self._run, name=f"work-{self.name}", daemon=True).start()

    def _run(self) -> None:
        timeout = max(0.1, min(CONNECT_TIMEOUT, self.demo.ends - time.monotonic()))
        if not start_client(self.client, timeout, self._stop):
            if not self.demo.stopping.is_set():
                self.timeline.say(self.name, "could not connect to ZooKeeper; it stays out")
            return
        with contextlib.suppress(RuntimeError):  # closed by the shutdown while it connected: it stays out
            self.election.start()
        next_write = 0.0
        while not self._stop.wait(SAMPLE_EVERY):
            self._narrate()
            if self._sample() and time.monotonic() >= next_write:
                next_write = time.monotonic() + WRITE_EVERY
                self.write(self.election.token, f"tick from {self.name}")

    # -- what the election tells us: noted on its thread (or kazoo's), narrated on ours

    def _heard(self, election: object, event: str, detail: str) -> None:
        now = time.monotonic()
        if event == "woken":
            self.woken_at = now
        elif event == "revoked":
            self.why = detail
        self.news.put((event, detail, now))

    def _narrate(self) -> None:
        while not self.news.empty():
            event, detail, at = self.news.get()
            if self.crashed or self.resigned:
                continue  # a dead process prints nothing
            if event == "joined":
                self._joined()
            elif event == "woken":
                self.timeline.count("notified")
                self.timeline.say(self.name, "notified: the candidate just before me left (only I am woken)", at)
            elif event == "error":
                self.demo.fail(f"error: {self.name}: {detail}", denied="NoAuth" in detail)

    def _joined(self) -> None:
        try:
            names = self.election.participants()
        except (KazooException, *DISCONNECTED):
            names = []
        place = names.index(self.name) + 1 if self.name in names else "?"
        self.timeline.others.update(name for name in names if not name.endswith(f"-{RUN_ID}"))
        self.sessions += 1
        session, self.session_id = self.session_id, (self.client.client_id or (None,))[0]
        self.joined_at = self.joined_at or time.monotonic()
        again = ("joined the election" if self.sessions == 1 else "session was LOST; rejoined as a new candidate"
                 if session != self.session_id else "its node was gone, its session alive; rejoined as a new candidate")
        self.timeline.say(self.name, f"{again}, #{place} in line")

    def _sample(self) -> bool:
        """Look at is_leader, as the worker acts on it; record a change at the moment we saw it."""
        with self._lock:
            at = time.monotonic()
            leading = self.election.is_leader and not self._stop.is_set()
            if leading != self.leading:
                self._turn(leading, at, self.why or "its lease ran out")
            return leading

    def _turn(self, leading: bool, at: float, why: str) -> None:
        """This worker started or stopped acting as leader at `at` (call with the lock held)."""
        self.leading = leading
        self.terms.append((at, leading, why))
        if not leading:
            self.events.write("unlead", t=at, worker=self.name, epoch=self.epoch, why=why)
            if not (self.crashed or self.resigned):
                self.timeline.say(self.name, f"stops leading: {why}")
            return
        self.epoch, self.why = self.election.epoch, ""
        self.events.write("lead", t=at, worker=self.name, epoch=self.epoch)
        if self.epoch == self.last_epoch:  # the same node, after a reconnect: the same term
            self.timeline.say(self.name, f"resumes leading, epoch {self.epoch} (its node survived)")
            return
        woken, self.woken_at, self.last_epoch = self.woken_at, None, self.epoch
        handoff = (at - woken) * 1000 if woken is not None else None
        self.timeline.count("elections", handoff)
        note = f", hand-off {handoff:.1f} ms" if handoff is not None else ""
        self.timeline.say(self.name, f"ELECTED leader, epoch {self.epoch}{note}", at)

    def stop_acting(self) -> None:
        """From now on this worker does nothing as leader: its term ends here, as measured."""
        with self._lock:
            self._stop.set()
            if self.leading:
                self._turn(False, time.monotonic(), "resigned" if not self.crashed else "crashed")

    # -- the leader's work

    def write(self, token: object | None, value: str) -> bool:
        if token is None:
            return False
        try:
            version = self.script.fenced_write(self.client, token, LEDGER, value, timeout=WRITE_EVERY)
        except self.script.NotLeaderError as exc:
            self.rejections.append(time.monotonic())
            self.events.write("rejected", worker=self.name, epoch=token.epoch)
            self.timeline.count("rejected")
            self.timeline.say(self.name, f"STALE WRITE REJECTED (epoch {token.epoch}): {exc}")
            return False
        except (KazooException, *DISCONNECTED):
            return False
        self.events.write("write", worker=self.name, epoch=token.epoch, version=version)
        self.timeline.count("accepted")
        return True

    # -- endings

    def crash(self) -> None:
        """Die without a goodbye: ZooKeeper notices only when the session times out."""
        self.crashed, self.gone_at = True, time.monotonic()
        self.stop_acting()
        self.crashed_session = self.client.client_id
        self.unconfirmed = self._full_paths([self.election.node_path])
        self.link.sever()
        stop_client(self.client, 1.0)  # with the cable cut, it cannot say goodbye to ZooKeeper

    def resign(self, deadline: float) -> None:
        self.resigned, self.gone_at = True, time.monotonic()
        self.leave()
        self.finish(deadline)

    def leave(self) -> None:
        """Shutdown, first step: stop acting and ask ZooKeeper to delete our node; do not wait."""
        self.stop_acting()
        if not self.crashed:
            self.link.heal()
            self.unconfirmed = self.unconfirmed or self._full_paths([self.election.node_path])
            self.election.leave()

    def finish(self, deadline: float) -> None:
        """Shutdown, second step: wait (until `deadline`) for ZooKeeper to confirm, and close the session."""
        if self.answered.is_set():
            return  # finished already (it resigned during the run)
        if self.crashed:
            if close_session(self.demo.zk, self.crashed_session, deadline):
                self.unconfirmed = []
            self.answered.set()
        else:
            patience = min(self.demo.session_timeout, deadline - time.monotonic())
            if self.election.resign(timeout=max(0.0, patience)):
                self.unconfirmed = []
            self.answered.set()
            connected = self.client.connected
            if stop_client(self.client, deadline - time.monotonic()) and connected:
                self.unconfirmed = []  # ZooKeeper closed the session, and its ephemeral nodes with it
        self.link.sever()

    def _full_paths(self, paths: list[str | None]) -> list[str]:
        return [self.demo.chroot + path for path in paths if path]

    def lane(self) -> Lane:
        return Lane(self.name, self.terms[:], self.joined_at, self.gone_at, self.crashed, self.partitions[:],
                    self.rejections[:])


class Chaos:
    """Every `interval` seconds, one seeded misfortune: crash, resign, join or partition.
    The first one always strikes the leader."""

    def __init__(self, demo: Demo, seed: int | None):
        self.demo, self.timeline = demo, demo.timeline
        self.rng = random.Random(seed)

    def first(self) -> None:
        leader = self._await_leader()
        if leader is not None:
            self.strike(self.rng.choice(["crash", "resign", "partition"]), leader)

    def act(self) -> None:
        live = self.demo.live_workers()
        if len(live) < 3:
            return self.demo.add_worker("joins (chaos)")
        action = self.rng.choice(["crash", "resign", "join", "partition"])
        victim = self.rng.choice(live) if action != "partition" else self._leader(live)
        if action == "join" or victim is None:
            return self.demo.add_worker("joins (chaos)")
        self.strike(action, victim)

    def strike(self, action: str, victim: Worker) -> None:
        if action == "partition":
            return self.partition(victim)
        self.timeline.count("departures")
        if action == "crash":
            self.timeline.say(victim.name, "CRASHES: no goodbye, its session must time out")
            victim.crash()
        else:
            self.timeline.say(victim.name, "resigns")
            victim.resign(self.demo.deadline(self.demo.session_timeout + CLOSE_GRACE))

    @staticmethod
    def _leader(workers: list[Worker]) -> Worker | None:
        return next((w for w in workers if w.leading), None)  # as the workers measured it

    def _await_leader(self) -> Worker | None:
        deadline = time.monotonic() + self.demo.session_timeout
        while not (leader := self._leader(self.demo.live_workers())) and time.monotonic() < deadline:
            if not self.demo.pause(0.05):
                return None
        return leader

    def partition(self, leader: Worker) -> None:
        """Cut the leader off for 1.5 session timeouts, then heal and let it try a stale write."""
        token, hold = leader.election.token, self.demo.session_timeout * 1.5
        self.timeline.say(leader.name, f"PARTITIONED from ZooKeeper for {hold:.1f}s")
        self.timeline.count("departures")  # its session will expire and its node vanish
        cut_at = time.monotonic()
        leader.link.partition()
        held = self.demo.pause(hold)  # False if the end of the demo, or Ctrl-C, cut it short
        leader.link.heal()
        leader.partitions.append((cut_at, time.monotonic()))
        while not leader.client.connected and self.demo.pause(0.05):
            pass  # kazoo reconnects, hears its session expired (LOST) and opens a new one
        # Cut short, the partition may not have outlasted the session: the old epoch may still be the
        # current one, and a rejection would be no stale write. So the late write follows a whole one.
        if held and leader.client.connected and self.demo.pause(0):
            self.timeline.say(leader.name, "partition healed; it retries a write with its old epoch")
            leader.write(token, f"late write from {leader.name}")


class Demo:
    def __init__(self, args: argparse.Namespace, shutdown: Shutdown, events: EventLog, script: ModuleType):
        self.zk, self.args, self.script = args.zk, args, script
        self.hosts, self.chroot = parse_zk(args.zk)
        self.session_timeout = args.session_timeout
        self.shutdown, self.stopping, self.events = shutdown, shutdown.requested, events
        self.timeline = Timeline(shutdown)
        self.workers: list[Worker] = []
        self.ends = time.monotonic() + (args.duration or float("inf"))
        self.closing_at: float | None = None
        self.problem: str | None = None   # one line for stderr, and exit 1
        self.left: list[str] = []         # nodes left for ZooKeeper's session expiry to remove
        self.done = threading.Event()     # the clean-up is over
        self._next_index = 1

    def live_workers(self) -> list[Worker]:
        return [w for w in self.workers if not (w.crashed or w.resigned)]

    def deadline(self, seconds: float) -> float:
        """`seconds` from now, but no later than the end of the demo (give or take a moment)."""
        return min(time.monotonic() + seconds, max(self.ends, time.monotonic() + 0.5))

    def pause(self, seconds: float) -> bool:
        """Wait `seconds`, less if the demo ends sooner; False once the demo should stop."""
        self.stopping.wait(max(0.0, min(seconds, self.ends - time.monotonic())))
        return not self.stopping.is_set() and time.monotonic() < self.ends

    def fail(self, line: str, denied: bool) -> None:
        """The learner's code or ZooKeeper failed in a way the demo cannot teach through: say it, exit 1."""
        if denied or self.problem is None:
            self.problem = self.problem or line
            self.shutdown.request("error")

    def add_worker(self, why: str = "starts") -> Worker:
        worker = Worker(self, self._next_index)
        self._next_index += 1
        self.timeline.say(worker.name, why)
        self.workers.append(worker)  # listed before it starts: a Ctrl-C in between must still close it
        worker.start()
        return worker

    def run(self) -> None:
        """The whole demo, on a thread of its own: the main thread only keeps the time."""
        try:
            self.problem = check_zookeeper(self.zk, self.stopping)
            if self.problem == "" and self.shutdown.why == "time is up":  # --duration ended before any answer
                self.problem = (f"error: no ZooKeeper answered at {self.zk} before --duration ran out; start one: "
                                "`./run.sh zk start` or `docker compose up -d`")
            if self.problem or self.stopping.is_set():
                return self.shutdown.request("no ZooKeeper")
            self.events.write("start", session_timeout=self.session_timeout)
            self.timeline.out(f"leader election at {self.zk}{CANDIDATES}, session timeout "
                              f"{self.session_timeout}s; Ctrl-C stops")
            self._chaos()
            self.timeline.say("demo", f"{self.shutdown.why or 'time is up'}; shutting down: every worker "
                                      "resigns and closes its session")
            self.left = self.close()
            self.events.write("exit", clean=not self.left, left=self.left)
        finally:
            self.done.set()

    def _chaos(self) -> None:
        for _ in range(self.args.workers):
            if self.pause(0):
                self.add_worker()
        chaos = Chaos(self, self.args.seed)
        if self.pause(min(self.args.interval, FIRST_FAULT_AFTER)):
            chaos.first()
        while self.pause(self.args.interval):
            chaos.act()

    def close(self) -> list[str]:
        """Ask ZooKeeper to delete every node first, then wait (bounded) for it to confirm and for the
        sessions to close. Returns the nodes left for ZooKeeper's session expiry to remove."""
        self.stopping.set()
        self.closing_at, self.timeline.muted = time.monotonic(), True
        for worker in self.workers:
            worker.leave()  # every delete is on its way before we wait for any
        deadline = time.monotonic() + self.session_timeout + CLOSE_GRACE
        finishing = [threading.Thread(target=w.finish, args=(deadline,), daemon=True) for w in self.workers]
        for thread in finishing:
            thread.start()
        while any(t.is_alive() for t in finishing) and time.monotonic() < deadline:
            if self.shutdown.hurry.wait(0.02):
                # A second Ctrl-C: the deletes are sent; wait for their answers, not for the sessions.
                if all(w.answered.is_set() for w in self.workers):
                    break
                deadline = min(deadline, time.monotonic() + HURRY_GRACE)
        return [path for w in self.workers for path in w.unconfirmed]

    def summary(self, picture: bool) -> str:
        tl, lanes = self.timeline, [w.lane() for w in self.workers]
        p50, p95 = percentile_ms(tl.handoffs_ms, 0.50), percentile_ms(tl.handoffs_ms, 0.95)
        lines = [
            "", "summary (measured from what the workers did)",
            f"  elections                 {tl.elections}",
            f"  hand-off p50 / p95        {p50} / {p95}  (notified -> the new leader acts)",
            f"  most leaders at once      {most_at_once(lanes)}  (the rule: never more than 1)",
            f"  watchers notified         {tl.notified} for {tl.departures} departures  "
            "(at most one each; a herd wakes everyone)",
            *([f"  other runs' candidates    {len(tl.others)}  (their departures wake ours too; their leaders "
               "are not seen here)"] if tl.others else []),
            f"  ledger writes accepted    {tl.accepted}",
            f"  ledger writes rejected    {tl.rejected}  (stale leaders, fenced by ZooKeeper)",
        ]
        if self.left:
            lines.append(f"  not cleaned up            {len(self.left)} node(s) ZooKeeper did not confirm deleted; "
                         f"its session expiry removes them: {', '.join(self.left)}")
        if picture and lanes:
            end = self.closing_at or time.monotonic()
            lines += ["", *draw_timeline(lanes, tl.started, end, utf8_output())]
        return "\n".join(lines)


def percentile_ms(values: list[float], q: float) -> str:
    """Nearest-rank percentile, as text: an observed value, never an interpolation."""
    if not values:
        return "n/a"
    ordered = sorted(values)
    return f"{ordered[min(len(ordered) - 1, int(q * len(ordered)))]:.1f} ms"


def most_at_once(lanes: list[Lane]) -> int:
    """The largest number of workers acting as leader at the same instant, from their measured terms."""
    changes = sorted((t, 1 if leading else -1) for lane in lanes for t, leading, _ in lane.history)
    acting = peak = 0
    for _, delta in changes:  # at equal times, -1 sorts first: a hand-off is not an overlap
        acting += delta
        peak = max(peak, acting)
    return peak


# ---------------------------------------------------------------- ZooKeeper, before the demo starts

def check_zookeeper(zk: str, stop: threading.Event) -> str | None:
    """None if ZooKeeper answers within CONNECT_TIMEOUT, has our chroot and lets us in; else one line."""
    hosts, chroot = zk.partition("/")[0], parse_zk(zk)[1]
    client = new_client(hosts, CONNECT_TIMEOUT)
    try:
        if not start_client(client, CONNECT_TIMEOUT, stop):
            return "" if stop.is_set() else (  # "": stopped before ZooKeeper answered
                f"error: cannot reach ZooKeeper at {zk}; start one: `./run.sh zk start` or `docker compose up -d`")
        if chroot and client.exists_async(chroot).get(timeout=CONNECT_TIMEOUT) is None:
            return (f"error: chroot {chroot} does not exist on ZooKeeper at {hosts}; "
                    f"create it with: {chroot_hint(zk)}; or drop {chroot} from --zk")
        problem = access_problem(client, chroot + CANDIDATES)
        if problem is None and (stuck := persistent_children(client, chroot + CANDIDATES)):
            print(f"warning: {len(stuck)} node(s) in the queue belong to no session and never leave it "
                  f"({', '.join(stuck[:3])}{' ...' if len(stuck) > 3 else ''}): no candidate behind them will lead "
                  f"until they are deleted (zkCli.sh delete {chroot + CANDIDATES}/NAME)", file=sys.stderr, flush=True)
        return problem
    except (KazooException, *DISCONNECTED) as exc:
        return f"error: ZooKeeper at {zk} stopped answering ({type(exc).__name__})"
    finally:
        stop_client(client, 1.0)


def persistent_children(client: KazooClient, path: str, most: int = 1000) -> list[str]:
    """The children of `path` no session owns (made by hand as persistent): in an election queue they block
    everyone behind them forever. At most `most` are looked at: a huge queue costs one bounded look."""
    deadline = time.monotonic() + CONNECT_TIMEOUT  # one bound for every answer, not one each
    names = client.get_children_async(path).get(timeout=CONNECT_TIMEOUT)[:most]
    asked = [(name, client.exists_async(f"{path}/{name}")) for name in names]
    return sorted(name if name.isprintable() else ascii(name) for name, answer in asked
                  if (stat := answer.get(timeout=max(0.0, deadline - time.monotonic()))) is not None
                  and not stat.ephemeralOwner)


def access_problem(client: KazooClient, path: str) -> str | None:
    """Walk down `path`, creating what is missing: ZooKeeper's first refusal (an ACL) as one line."""
    parent = ""
    for part in path.strip("/").split("/"):
        node, need = f"{parent}/{part}", f"CREATE permission on {parent or '/'}"
        try:
            client.ensure_path_async(node).get(timeout=CONNECT_TIMEOUT)
            need = f"READ permission on {node}"
            client.get_children_async(node).get(timeout=CONNECT_TIMEOUT)
        except NoAuthError:
            return (f"error: ZooKeeper denies the demo {need} (the node's ACL); grant it, or pick "
                    "another chroot in --zk")
        parent = node
    return None


# ---------------------------------------------------------------- command line

def events_path(path: str) -> str:
    """--events FILE: checked, not opened (parsing creates nothing); the demo opens it when it starts."""
    target = Path(path)
    if not path or target.is_dir():
        raise argparse.ArgumentTypeError(f"cannot append to {path!r}: name a file")
    if not target.parent.is_dir():
        raise argparse.ArgumentTypeError(f"cannot append to {path}: No such file or directory")
    if not os.access(target if target.exists() else target.parent, os.W_OK):
        raise argparse.ArgumentTypeError(f"cannot append to {path}: Permission denied")
    return path


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The demo's options; bad ones are one line on stderr and SystemExit(2). Opens and connects nothing."""
    parser = argparse.ArgumentParser(prog="./run.sh leader", description="Leader election with ZooKeeper, "
                                     "under chaos: the rich demo of challenge_leader_election.py, as you edited it.",
                                     allow_abbrev=False)
    parser.add_argument("--zk", type=zk_arg, default=os.environ.get("ZK_HOSTS", "127.0.0.1:2181"),
                        help=f"ZooKeeper connection string, {ZK_FORM}; an IPv6 address goes in brackets, "
                             "[::1]:2181 (default: $ZK_HOSTS or 127.0.0.1:2181)")
    parser.add_argument("--workers", type=number_arg(int, 1, 100), default=5, help="candidates at start, 1-100 "
                        "(default 5)")
    parser.add_argument("--interval", type=number_arg(float, 0.1, 3600), default=5.0,
                        help="seconds between chaos events, 0.1-3600 (default 5); the first one, which "
                             f"always strikes the leader, comes after {FIRST_FAULT_AFTER:g} s at most")
    parser.add_argument("--duration", type=number_arg(float, 0, 1e6, above=True), default=None,
                        help="seconds to run (default: until Ctrl-C)")
    parser.add_argument("--seed", type=number_arg(int, 0, 999_999), default=None, help="seed for the chaos driver")
    parser.add_argument("--session-timeout", type=number_arg(float, 0.5, 60), default=4.0, help=SESSION_HELP)
    parser.add_argument("--events", type=events_path, default=None, metavar="FILE",
                        help="append one JSON line per event (lead, unlead, write, rejected, ...) to FILE")
    parser.add_argument("--no-timeline", action="store_true", help="leave the leadership picture out of the summary")
    return parser.parse_args(argv)


def open_events(path: str | None) -> TextIO | None:
    if path is None:
        return None
    try:
        return open(path, "a", encoding="utf-8")  # noqa: SIM115 (open for the whole run)
    except OSError as exc:
        print(f"error: --events: cannot append to {path}: {exc.strerror}", file=sys.stderr)
        raise SystemExit(2) from None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.getLogger("kazoo").addHandler(logging.NullHandler())
    logging.getLogger("kazoo").propagate = False  # kazoo's reconnect chatter would drown the timeline
    shutdown = Shutdown().install()
    script = load_script(REPO / "challenge_leader_election.py", CONNECT_TIMEOUT)
    if isinstance(script, str):  # the learner's edit does not load, or blocks: one line, where it broke
        print(script, file=sys.stderr)
        return 1
    demo = Demo(args, shutdown, EventLog(open_events(args.events)), script)
    threading.Thread(target=demo.run, name="demo", daemon=True).start()
    # This thread owns the time: it never calls the learner's code, so nothing there can hold it.
    shutdown.requested.wait(args.duration)
    shutdown.request("time is up")
    end = time.monotonic() + CONNECT_TIMEOUT + args.session_timeout + CLOSE_GRACE + HURRY_GRACE
    while not demo.done.wait(0.02) and time.monotonic() < end:
        if shutdown.hurry.is_set():
            end = min(end, time.monotonic() + HURRY_GRACE + 0.25)  # close()'s wait, and the summary: < 1 s
    if demo.problem:
        print(demo.problem, file=sys.stderr)
        return 1
    if demo.timeline.lost and demo.timeline.lost.errno != errno.EPIPE:  # a reader that left wants no more
        print(f"error: cannot write to stdout ({demo.timeline.lost.strerror}); the demo stopped and cleaned up",
              file=sys.stderr)
        return 1
    if not demo.done.is_set():
        demo.left = [f"{w.name}'s node" for w in demo.workers]
        print("warning: the recipe did not finish closing in time; ZooKeeper's session expiry removes what "
              "is left", file=sys.stderr)
    demo.timeline.out(demo.summary(picture=not args.no_timeline))
    return 0


if __name__ == "__main__":
    leave_now(main())
