"""Challenge 1: leader election with ZooKeeper, and why "exactly one leader" is harder than it looks.

The recipe, from ZooKeeper's own documentation, made robust:

1. Every candidate creates one EPHEMERAL_SEQUENTIAL znode under the election path. ZooKeeper appends
   a counter that only grows, so the nodes form a queue; the node dies with its owner's session.
2. The candidate with the lowest sequence number leads. Numbers are compared as numbers, not strings.
3. Every other candidate watches only the node just before its own. A departure wakes exactly one
   candidate (no herd), and that candidate reads the children again before deciding: its predecessor
   may have left while someone even earlier is still there.
4. The network is not reliable, and a leader may not know it has been deposed:
   - SUSPENDED (connection lost): stop acting as leader at once; resume only after reconnecting and
     confirming our node still exists.
   - LOST (session expired): our node is gone. Forget it, and join again as a new candidate.
   - Kazoo notices a dead link only when a heartbeat goes unanswered, so a leader also keeps a lease:
     it acts only within 2/3 of a session timeout of ZooKeeper's last answer. ZooKeeper cannot expire
     the session earlier than a full timeout after that answer, so leadership never outlives it.
5. Fencing: the leader's work is a write to a ledger znode, in one transaction with a check that its
   election node still exists. A deposed leader's late write is rejected by ZooKeeper itself.

Run `python challenge_leader_election.py --help`; the demo below runs workers and a chaos driver.
"""

from __future__ import annotations

import _signal  # `signal` without its enums, which take a while to load: the guard starts sooner

# ruff: noqa: E402  (the guard below must run before the imports, which take a moment)
import os

if __name__ == "__main__":
    # Ctrl-C or SIGTERM while Python is still loading kazoo: nothing to clean up yet, so leave at once
    # and quietly. (Not sys.exit: an exception raised in the middle of an import can come out as a
    # different one, with a traceback.)
    for _sig in (_signal.SIGINT, _signal.SIGTERM):
        _signal.signal(_sig, lambda *_: os._exit(0))

import argparse
import contextlib
import ipaddress
import json
import logging
import math
import random
import re
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import (
    ConnectionClosedError,
    ConnectionLoss,
    KazooException,
    NoNodeError,
    RolledBackError,
    SessionExpiredError,
)
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.interfaces import IAsyncResult
from kazoo.protocol.states import EventType, WatchedEvent

# Our node names read "<guid>__<name>__<seq>": the GUID lets us find our own node after a lost reply.
SEP = "__"
# What a candidate's name may hold: safe in a znode name, readable in a log. The GUID (hex) and the
# sequence (digits) hold no "_", so any such name reads back, even "a_" or "a__b".
NAME_RULE = re.compile(r"[A-Za-z0-9._-]{1,64}")
# A leader acts only this far into a session timeout after ZooKeeper last answered it. Kazoo's own
# heartbeat gives up after 2/3 of the timeout too; the other third is the safety margin.
LEASE_FRACTION = 2 / 3
# How often a leader renews its lease (a cheap read), as a fraction of the lease.
RENEW_FRACTION = 1 / 4
# How long the demo waits for a first connection before saying ZooKeeper is unreachable.
CONNECT_TIMEOUT = 5.0
# Errors that mean "the connection is gone for now": wait for a connection-state change.
DISCONNECTED = (ConnectionLoss, SessionExpiredError, ConnectionClosedError, KazooTimeoutError)
# How long resign() keeps asking ZooKeeper to confirm our node's delete, in session timeouts. Past
# one session timeout without an answer, ZooKeeper's own expiry removes the node anyway.
RESIGN_PATIENCE = 1.0


class NotLeaderError(Exception):
    """A fenced write was refused: this candidate does not lead, or ZooKeeper rejected the write."""


# ---------------------------------------------------------------- the election queue

@dataclass(frozen=True)
class Candidate:
    node: str   # the znode's name under the election path
    name: str   # the worker's name
    seq: int    # ZooKeeper's sequence number: the position in the queue, and the leader's epoch


def parse_candidate(node: str) -> Candidate | None:
    """Read '<guid>__<name>__0000000042' (ZooKeeper appends the 10-digit counter); None for anything else.

    The GUID ends at the first '__' and the counter starts after the last one: the name is everything
    between, so a name like 'a_' ('<guid>__a___0000000042') reads back whole.
    """
    guid, _, rest = node.partition(SEP)
    name, _, seq = rest.rpartition(SEP)
    if not (guid and name and seq.isascii() and seq.isdigit()):
        return None
    return Candidate(node, name, int(seq))


def election_order(children: list[str]) -> list[Candidate]:
    """Candidates sorted by sequence number as an integer: '10' comes after '9'."""
    return sorted(filter(None, map(parse_candidate, children)), key=lambda c: c.seq)


# ---------------------------------------------------------------- fencing

@dataclass(frozen=True)
class FencingToken:
    node_path: str  # the leader's election node: the write is valid only while it exists
    epoch: int      # its sequence number, which only grows from one leader to the next
    leader: str


def fenced_write(client: KazooClient, token: FencingToken, ledger: str, value: str | bytes,
                 timeout: float | None = None) -> int:
    """Write `value` to the ledger as `token`'s leader, in one transaction that ZooKeeper checks.

    The transaction commits only if the leader's election node still exists (its session is alive,
    so nobody else can lead) and nobody wrote the ledger since we read it. Returns the new version.
    We do not compare epochs ourselves: a paused process would compare stale numbers. ZooKeeper
    applies the check and the write atomically, after every earlier write, so it decides.
    Each round trip waits at most `timeout` seconds (default: the session timeout).
    """
    record = json.dumps({"epoch": token.epoch, "leader": token.leader, "value": ledger_text(value)}).encode()
    wait = timeout if timeout is not None else client._session_timeout / 1000.0
    stat = client.exists_async(ledger).get(timeout=wait)
    tx = client.transaction()
    tx.check(token.node_path, 0)  # our ephemeral node, never modified: version 0 while it lives
    if stat is None:
        tx.create(ledger, record)
    else:
        tx.set_data(ledger, record, version=stat.version)
    check, write = tx.commit_async().get(timeout=wait)
    # A failed transaction reports every operation: the one that failed has its own error, the
    # others RolledBackError. So the check failed only if its result is not RolledBackError.
    if isinstance(check, Exception) and not isinstance(check, RolledBackError):
        node = token.node_path.rsplit("/", 1)[1].split(SEP, 1)[1]  # drop the GUID: name and sequence
        raise NotLeaderError(f"ZooKeeper rejected it: election node ...{node} is gone")
    if isinstance(write, Exception):
        raise NotLeaderError(f"ZooKeeper rejected the write: ledger changed since we read it "
                             f"({type(write).__name__})")
    return 0 if stat is None else write.version


def ledger_text(value: str | bytes) -> str:
    """The ledger record is JSON text: take str, or bytes (kazoo's convention) holding UTF-8."""
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            raise ValueError(f"a ledger value given as bytes must be UTF-8 text, not {value[:20]!r}") from None
    if not isinstance(value, str):
        raise TypeError(f"a ledger value must be str or bytes, not {type(value).__name__}")
    return value


# ---------------------------------------------------------------- the recipe

class LeaderElection:
    """One candidate in an election at `path`; `start()` joins, `resign()` leaves."""

    def __init__(self, client: KazooClient, path: str, name: str,
                 on_elected: Callable[[LeaderElection], None] | None = None,
                 on_revoked: Callable[[LeaderElection, str], None] | None = None,
                 on_joined: Callable[[LeaderElection], None] | None = None,
                 on_woken: Callable[[LeaderElection], None] | None = None):
        if not isinstance(name, str) or not NAME_RULE.fullmatch(name):
            raise ValueError(f"a candidate name must be 1 to 64 characters from A-Z a-z 0-9 . _ -, not {name!r}")
        self.client, self.path, self.name = client, path.rstrip("/"), name
        self._callbacks = {"elected": on_elected, "revoked": on_revoked, "joined": on_joined, "woken": on_woken}
        # Props to Apache Curator for this trick: a GUID in the node's name lets us recognise our
        # own node after a connection loss ate the reply to `create`.
        self._guid = uuid.uuid4().hex
        self._lifecycle = "latent"          # latent -> started -> closed, never back
        self._node: str | None = None       # our node's name, while we believe it exists
        self._node_owner: int | None = None  # the session that owns it, as ZooKeeper told us
        self._create_interrupted = False
        self._session_lost = False
        self._leading = False
        self._lease_until = 0.0
        self._epoch: int | None = None
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._leaving: list[tuple[str, IAsyncResult]] = []  # deletes asked for since we closed
        self._pending: list[tuple[str, tuple]] = []
        self._thread: threading.Thread | None = None
        self.notifications = 0              # predecessor watches that fired for us: the herd counter
        self.history: list[tuple[float, bool, str]] = []  # (monotonic time, leading?, why)
        self.last_handoff_ms: float | None = None
        self.left_behind: list[str] = []    # nodes resign() could not get ZooKeeper to confirm deleted
        self._woken_at: float | None = None

    # -- what the world may ask

    @property
    def is_leader(self) -> bool:
        """Acting as leader now: elected, and ZooKeeper answered us within the lease."""
        return self._leading and time.monotonic() < self._lease_until

    @property
    def epoch(self) -> int | None:
        """The fencing token of our latest term as leader (our node's sequence number)."""
        return self._epoch

    @property
    def token(self) -> FencingToken | None:
        if self._node is None or self._epoch is None:
            return None
        return FencingToken(self._node_path(self._node), self._epoch, self.name)

    @property
    def node_path(self) -> str | None:
        """Our election node's path, while we believe it exists."""
        node = self._node
        return None if node is None else self._node_path(node)

    def participants(self) -> list[str]:
        """Every candidate's name in election order, leader first, as ZooKeeper has them now."""
        try:
            children = self.client.get_children_async(self.path).get(timeout=self._session_seconds())
        except NoNodeError:
            return []
        return [c.name for c in election_order(children)]

    def leader(self) -> str | None:
        names = self.participants()
        return names[0] if names else None

    def fenced_set(self, path: str, value: str | bytes) -> int:
        """The leader's write: refused unless we lead now, and rejected by ZooKeeper if we don't."""
        token = self.token
        if not self.is_leader or token is None:
            raise NotLeaderError(f"{self.name} is not the leader")
        return fenced_write(self.client, token, path, value)

    def __repr__(self) -> str:
        lease = self._lease_until - time.monotonic()
        return (f"<LeaderElection {self.name} {self._lifecycle} node={self._node} leading={self._leading} "
                f"lease={lease:+.2f}s epoch={self._epoch} last={self.history[-1:]}>")

    # -- lifecycle

    def start(self) -> None:
        """Join the election and return at once; the work happens on a thread of our own."""
        with self._lock:
            if self._lifecycle != "latent":
                raise RuntimeError(f"election for {self.name} was already {self._lifecycle}")
            self._lifecycle = "started"
        self.client.add_listener(self._on_connection_change)
        self._thread = threading.Thread(target=self._run, name=f"election-{self.name}", daemon=True)
        self._thread.start()
        self._wake.set()

    def leave(self) -> None:
        """Stop acting and ask ZooKeeper to delete our node, handing leadership on; do not wait."""
        with self._lock:
            started, self._lifecycle = self._lifecycle == "started", "closed"
        if started:
            self._set_leader(False, "resigned")
            self._wake.set()
            self._ask_delete()

    def resign(self, timeout: float | None = None) -> bool:
        """Leave the election for good, and wait at most `timeout` (default: the session timeout)
        for ZooKeeper to confirm our node is gone. False: it is left for the session's expiry."""
        deadline = time.monotonic() + (self._session_seconds() * RESIGN_PATIENCE if timeout is None else timeout)
        if self._lifecycle != "closed":
            self.leave()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(max(0.0, deadline - time.monotonic()))
        self._ask_delete()  # in case our thread was creating one as we closed
        gone = self._await_deletes(deadline)
        self.client.remove_listener(self._on_connection_change)
        self._run_callbacks()
        return gone

    def _ask_delete(self) -> None:
        with self._lock:
            node, self._node = self._node, None
        if node is not None:
            path = self._node_path(node)
            self._leaving.append((path, self.client.delete_async(path)))

    def _await_deletes(self, deadline: float) -> bool:
        """Wait for every delete we asked for; ask again after a connection loss, until the deadline."""
        while self._leaving:
            path, answer = self._leaving[0]
            try:
                answer.get(timeout=max(0.0, deadline - time.monotonic()))
            except (NoNodeError, SessionExpiredError):
                pass  # gone already: the session that owned it has ended
            except ConnectionLoss:
                # Retry through a reconnect: a node left behind holds up the queue until its
                # session expires.
                if time.monotonic() + 0.1 < deadline:
                    time.sleep(0.1)
                    self._leaving[0] = (path, self.client.delete_async(path))
                    continue
                return self._give_up()
            except (KazooTimeoutError, ConnectionClosedError):
                return self._give_up()  # no answer in time, or a closed client that cannot ask
            self._leaving.pop(0)
        return True

    def _give_up(self) -> bool:
        self.left_behind = [path for path, _ in self._leaving]
        return False

    # -- callbacks from kazoo: they only flip a flag and wake our thread, never block

    def _on_connection_change(self, state: str) -> None:
        if state == KazooState.SUSPENDED:
            self._set_leader(False, "connection SUSPENDED")
        elif state == KazooState.LOST:
            self._session_lost = True
            self._set_leader(False, "session LOST")
        self._wake.set()  # on CONNECTED our thread looks again

    def _predecessor_changed(self, event: WatchedEvent) -> None:
        if event.type == EventType.NONE:
            # Not news about the node: kazoo fires every watch this way when the connection is
            # SUSPENDED, then forgets them all. We set ours again once we have reconnected.
            self._wake.set()
            return
        self.notifications += 1
        self._woken_at = time.monotonic()
        with self._lock:
            self._pending.append(("woken", (self,)))
        self._wake.set()

    # -- the one place leadership changes

    def _set_leader(self, leading: bool, why: str, lease_from: float | None = None, renewal: bool = False) -> None:
        with self._lock:
            now = time.monotonic()
            if leading and self.client.state != KazooState.CONNECTED:
                return  # an answer that raced a SUSPENDED: wait for RECONNECTED and look again
            if renewal and not self._leading:
                return  # a renewal extends a term; it never starts one
            if leading:
                self._lease_until = lease_from + self._lease_seconds()
            if leading == self._leading:
                return
            # A leader whose lease ran out stopped acting when it ran out, even if we notice later.
            at = now if leading else min(now, self._lease_until)
            self._leading = leading
            self.history.append((at, leading, why))
            self._pending.append(("elected", (self,)) if leading else ("revoked", (self, why)))
        self._wake.set()

    def _lease_seconds(self) -> float:
        return self._session_seconds() * LEASE_FRACTION

    def _session_seconds(self) -> float:
        # The session timeout we asked for (kazoo keeps the server's answer to itself). ZooKeeper
        # grants it unless it exceeds the server's maxSessionTimeout (20 ticks by default): then the
        # lease would be too long, and only fencing would protect the ledger.
        return self.client._session_timeout / 1000.0

    # -- our thread

    def _run(self) -> None:
        while self._lifecycle == "started":
            self._run_callbacks()
            renew_in = self._lease_seconds() * RENEW_FRACTION if self._leading else None
            woken = self._wake.wait(renew_in)
            self._wake.clear()
            if self._lifecycle != "started":
                break
            try:
                self._renew_lease() if self._leading and not woken else self._step()
            except DISCONNECTED:
                pass  # the connection listener wakes us when there is something to do
            except NoNodeError:
                self._wake.set()  # the election path vanished under us: create it again
            except Exception:
                # A dead thread would keep our node in the queue and block everyone behind it.
                logging.getLogger(__name__).exception("election %s: unexpected error; retrying", self.name)
                self._set_leader(False, "unexpected error")
                self._wake.wait(1.0)
                self._wake.set()
        self._ask_delete()  # a create that finished after we closed: its node must not stay
        self._run_callbacks()

    def _run_callbacks(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        for kind, args in pending:
            if callback := self._callbacks[kind]:
                callback(*args)

    def _step(self) -> None:
        if self._session_lost:
            self._session_lost, self._node = False, None  # it died with the old session
        if not self.client.connected:
            return
        if self._node is None:
            self._join()
            with self._lock:
                self._pending.append(("joined", (self,)))
        self._check_position()

    def _join(self) -> None:
        """Create our node, unless a create that lost its reply already did."""
        if self._create_interrupted and (found := self._find_own_node()):
            node, owner = found
        else:
            self._create_interrupted = True
            # include_data asks for create2: ZooKeeper answers with the new node's stat, and so tells
            # us which session owns it without another round trip.
            path, stat = self.client.create(f"{self.path}/{self._guid}{SEP}{self.name}{SEP}", self.name.encode(),
                                            ephemeral=True, sequence=True, makepath=True, include_data=True)
            node, owner = path.rsplit("/", 1)[1], stat.ephemeralOwner
        self._create_interrupted = False
        self._node, self._node_owner = node, owner

    def _find_own_node(self) -> tuple[str, int] | None:
        for child in self.client.get_children(self.path):
            if child.startswith(self._guid + SEP):
                stat = self.client.exists(self._node_path(child))
                if stat is not None and stat.ephemeralOwner == self._session_id():
                    return child, stat.ephemeralOwner
        return None

    def _session_id(self) -> int:
        """Our current session. Between sessions we cannot tell whose a node is: wait, don't guess
        (guessing "not ours" would abandon a live node that then blocks the queue forever)."""
        client_id = self.client.client_id
        if not client_id:
            raise ConnectionLoss("no session at the moment")
        return client_id[0]

    def _check_position(self) -> None:
        """Lead if we are first; else watch the candidate just before us."""
        asked_at = time.monotonic()
        self._sync()  # this read may make us leader: it must not come from a follower that lost touch
        queue = election_order(self.client.get_children(self.path))
        nodes = [c.node for c in queue]
        if self._node not in nodes or self._node_owner != self._session_id():
            # Gone, or left over from a session that has ended (ZooKeeper will delete it): join again.
            self._set_leader(False, "our node is gone")
            self._node = None
            self._wake.set()
            return
        position = nodes.index(self._node)
        if position == 0:
            self._claim(queue[0], asked_at)
        elif self.client.exists(self._node_path(nodes[position - 1]), watch=self._predecessor_changed) is None:
            self._wake.set()  # it left between our two reads: look again

    def _claim(self, me: Candidate, asked_at: float) -> None:
        if not self._leading:
            # A hand-off if a departure woke us; None if we resume after a reconnect, or led first.
            woken_at, self._woken_at = self._woken_at, None
            self.last_handoff_ms = (time.monotonic() - woken_at) * 1000 if woken_at else None
        self._epoch = me.seq
        self._set_leader(True, "elected", lease_from=asked_at)

    def _renew_lease(self) -> None:
        """A leader's heartbeat: if ZooKeeper answers in time, the lease runs on from our question."""
        asked_at = time.monotonic()
        self._sync()  # an answer from a follower cut off from the quorum proves nothing about our session
        answer = self.client.exists_async(self._node_path(self._node))
        try:
            stat = answer.get(timeout=max(0.0, self._lease_until - asked_at))
        except KazooTimeoutError:
            self._set_leader(False, "lease expired: ZooKeeper did not answer in time")
            self._wake.set()  # keep asking: we lead again if our node survives
            return
        if stat is None or stat.ephemeralOwner != self._session_id():
            self._wake.set()  # _check_position will find out what happened
        else:
            self._set_leader(True, "lease renewed", lease_from=asked_at, renewal=True)

    def _sync(self) -> None:
        """Make our next read as fresh as the ZooKeeper leader's state (a linearizable read).

        A read is answered by whichever server we are connected to, from its own copy. A follower
        cut off from the ZooKeeper leader keeps answering reads for up to syncLimit x tickTime
        (2.5 s on the lab's servers, 10 s on a stock one) before it gives up and drops its clients,
        while the leader, hearing nothing from our session, expires it after the session timeout
        and deletes our node. Reads from that follower would keep renewing a lease whose session is
        gone, and the next candidate would lead beside us. `sync` goes to the ZooKeeper leader, and
        ZooKeeper answers one session's requests in order, so the read sent right after it is
        answered only once the leader has answered the sync: never by a follower that lost it. We
        need not wait for the sync itself: the read's own deadline covers both.
        """
        self.client.sync_async(self.path)

    def _node_path(self, node: str) -> str:
        return f"{self.path}/{node}"


# ================================================================ the demo
# Everything below only runs the recipe above under chaos and reports what happened.

ROOT = "/lab/leader-election"
CANDIDATES, LEDGER = f"{ROOT}/candidates", f"{ROOT}/ledger"
WRITE_EVERY = 0.25   # seconds between a leader's ledger writes
RUN_ID = uuid.uuid4().hex[:4]  # makes worker names unique across copies of this script
# Kazoo doubles its reconnect delay up to a minute by default: after an outage a client could sleep
# long after ZooKeeper is back. Capped, it is back within half a second.
RECONNECT = {"max_tries": -1, "delay": 0.1, "max_delay": 0.5}
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
HURRY_GRACE = 1.0


class Shutdown:
    """Ctrl-C, SIGTERM and a closed stdout all land here, as events: the main thread is never
    interrupted halfway through starting or stopping a worker."""

    def __init__(self) -> None:
        self.requested = threading.Event()  # stop the demo and clean up
        self.hurry = threading.Event()      # a second signal: stop waiting for confirmations
        self.why = ""

    def install(self) -> None:
        # A Python signal handler runs between two steps of the main thread, maybe while it holds the
        # lock inside one of these Events: setting the Event there would deadlock. So the handlers do
        # nothing; Python also writes each signal's number to a pipe, and a thread of ours acts on it.
        read_end, write_end = os.pipe()
        os.set_blocking(write_end, False)
        signal.set_wakeup_fd(write_end)
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: None)
        threading.Thread(target=self._listen, args=(read_end,), name="signals", daemon=True).start()

    def _listen(self, read_end: int) -> None:
        while received := os.read(read_end, 16):
            for signum in received:
                self._on_signal(signum)

    def _on_signal(self, signum: int) -> None:
        if self.requested.is_set():
            self.hurry.set()
        else:
            self.request(f"{signal.Signals(signum).name} received")

    def request(self, why: str) -> None:
        self.why = self.why or why
        self.requested.set()


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
    """Prints one line per event, with the time since the demo started; keeps the numbers."""

    def __init__(self, shutdown: Shutdown) -> None:
        self.started = time.monotonic()
        self._shutdown = shutdown
        self._lock = threading.Lock()
        self.elections = 0
        self.handoffs_ms: list[float] = []
        self.accepted = self.rejected = self.notified = self.departures = 0
        self.others: set[str] = set()  # candidates of other runs seen in the queue (a shared election)
        self.muted = False  # set at shutdown: the teardown's elections are not part of the lesson

    def say(self, who: str, what: str) -> None:
        with self._lock:
            if not self.muted:
                self._print(f"{time.monotonic() - self.started:8.3f}s  {who:<10} {what}")

    def out(self, text: str) -> None:
        with self._lock:
            self._print(text)

    def _print(self, text: str) -> None:
        try:
            print(text, flush=True)
        except BrokenPipeError:
            # Nobody reads our output any more (say `| head`). Stop cleanly, and point stdout at
            # /dev/null so that Python's last flush at exit has nowhere to fail.
            self.muted = True
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
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
        # hold the second until the first is acknowledged, up to 40 ms later. Kazoo and ZooKeeper turn
        # it off on their own sockets, and so do we.
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


def start_client(client: KazooClient, timeout: float, stop: threading.Event | None = None) -> bool:
    """client.start() without its surprises: on a time-out it stops the client, which can block for
    10 s, and it warns about a missing chroot. Waits at most `timeout`; True once connected."""
    connected, deadline = client.start_async(), time.monotonic() + timeout
    while not connected.wait(min(0.05, max(0.0, deadline - time.monotonic()))):
        if time.monotonic() >= deadline or (stop is not None and stop.is_set()):
            break
    return client.connected


def stop_client(client: KazooClient, timeout: float) -> bool:
    """Close the session, waiting at most `timeout`: kazoo's stop() can block for max(10 s, session
    timeout) while it cannot reach ZooKeeper. True if it finished in time."""
    def stop_and_close() -> None:
        with contextlib.suppress(Exception):
            client.stop()
            client.close()
    thread = threading.Thread(target=stop_and_close, name="stop-client", daemon=True)
    thread.start()
    thread.join(max(0.0, timeout))
    return not thread.is_alive()


def close_session(zk: str, client_id: tuple[int, bytes] | None, deadline: float) -> bool:
    """Close a session whose client is gone, presenting its id and password as a twin would.
    True once ZooKeeper has it closed (or had expired it already)."""
    if not client_id:
        return True
    twin = KazooClient(hosts=zk, client_id=client_id, connection_retry=dict(RECONNECT))
    connected = start_client(twin, min(CONNECT_TIMEOUT, deadline - time.monotonic()))
    return stop_client(twin, deadline - time.monotonic()) and connected


class Worker:
    """One election candidate with its own session; while it leads, it writes the ledger."""

    def __init__(self, demo: Demo, index: int):
        self.name = f"w{index}-{RUN_ID}"
        self.demo, self.timeline, self.events = demo, demo.timeline, demo.events
        self.link = Link(demo.hosts)
        # The relay stands in for the servers: kazoo gets its address once per server, because it
        # waits (session timeout / number of addresses) for each handshake. With one address it
        # would wait a whole session timeout on a server that is still electing its leader.
        # A chroot in --zk ("host:port/lab") still applies.
        relay = ",".join([self.link.address] * len(demo.hosts))
        self.client = KazooClient(hosts=relay + demo.chroot, timeout=demo.session_timeout,
                                  connection_retry=dict(RECONNECT))
        self.election = LeaderElection(self.client, CANDIDATES, self.name, on_elected=self._elected,
                                       on_revoked=self._revoked, on_joined=self._joined, on_woken=self._woken)
        self.sessions = 0
        self.crashed = self.resigned = False
        self.crashed_session: tuple[int, bytes] | None = None
        self.last_epoch: int | None = None
        # What the picture of the run is drawn from: measured times, nothing else.
        self.joined_at: float | None = None
        self.gone_at: float | None = None
        self.partitions: list[tuple[float, float]] = []
        self.rejections: list[float] = []
        self.unconfirmed: list[str] = []  # nodes we asked ZooKeeper to delete, not yet confirmed gone
        self.answered = threading.Event()  # set at shutdown once ZooKeeper answered for our node
        self._logged, self._term_epoch, self._log_lock = 0, None, threading.Lock()
        self._stop = threading.Event()

    def start(self, timeout: float) -> bool:
        if not start_client(self.client, timeout, self.demo.stopping):
            return False
        self.election.start()
        threading.Thread(target=self._work, name=f"work-{self.name}", daemon=True).start()
        return True

    # -- what the election tells us (on its thread)

    def _joined(self, election: LeaderElection) -> None:
        if self.crashed or self.resigned:
            return  # a dead process prints nothing
        try:
            queue = election.participants()
        except (KazooException, *DISCONNECTED):
            queue = []
        place = queue.index(self.name) + 1 if self.name in queue else "?"
        self.timeline.others.update(name for name in queue if not name.endswith(f"-{RUN_ID}"))
        self.sessions += 1
        self.joined_at = self.joined_at or time.monotonic()
        again = "session was LOST; rejoined as a new candidate" if self.sessions > 1 else "joined the election"
        self.timeline.say(self.name, f"{again}, #{place} in line")

    def _woken(self, election: LeaderElection) -> None:
        if self.crashed:
            return
        self.timeline.count("notified")
        self.timeline.say(self.name, "notified: the candidate just before me left (only I am woken)")

    def _elected(self, election: LeaderElection) -> None:
        self.log_terms()
        if election.epoch == self.last_epoch:  # the same node, after a reconnect: the same term
            self.timeline.say(self.name, f"resumes leading, epoch {election.epoch} (its node survived)")
            return
        self.last_epoch, handoff = election.epoch, election.last_handoff_ms
        self.timeline.count("elections", handoff)
        note = f", hand-off {handoff:.1f} ms" if handoff is not None else ""
        self.timeline.say(self.name, f"ELECTED leader, epoch {election.epoch}{note}")

    def _revoked(self, election: LeaderElection, why: str) -> None:
        self.log_terms()
        if not self.crashed:
            self.timeline.say(self.name, f"stops leading: {why}")

    def log_terms(self) -> None:
        """Copy the election's new history entries to --events: when this worker started and stopped acting."""
        with self._log_lock:
            history = self.election.history[:]
            for t, leading, why in history[self._logged:]:
                if leading:
                    self._term_epoch = self.election.epoch  # called at once on election: still this term's
                    self.events.write("lead", t=t, worker=self.name, epoch=self._term_epoch)
                else:
                    self.events.write("unlead", t=t, worker=self.name, epoch=self._term_epoch, why=why)
            self._logged = len(history)

    # -- the leader's work

    def _work(self) -> None:
        """While leading, append to the ledger; every write is fenced by ZooKeeper."""
        while not self._stop.wait(WRITE_EVERY):
            if self.election.is_leader:
                self.write(self.election.token, f"tick from {self.name}")

    def write(self, token: FencingToken | None, value: str) -> bool:
        if token is None:
            return False
        try:
            version = fenced_write(self.client, token, LEDGER, value)
        except NotLeaderError as exc:
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
        self.crashed_session = self.client.client_id
        self.unconfirmed = self._full_paths([self.election.node_path])
        self._stop.set()
        self.link.sever()
        stop_client(self.client, 1.0)  # with the cable cut, it cannot say goodbye to ZooKeeper

    def resign(self, deadline: float) -> None:
        self.resigned, self.gone_at = True, time.monotonic()
        self.leave()
        self.finish(deadline)

    def leave(self) -> None:
        """Shutdown, first step: stop writing and ask ZooKeeper to delete our node; do not wait."""
        self._stop.set()
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
            self.election.resign(timeout=0)  # ends its thread; its client is closed already
        else:
            patience = min(self.demo.session_timeout * RESIGN_PATIENCE, deadline - time.monotonic())
            if self.election.resign(timeout=max(0.0, patience)):
                self.unconfirmed = []
            else:
                self.unconfirmed = self._full_paths(self.election.left_behind)
            self.answered.set()
            connected = self.client.connected
            if stop_client(self.client, deadline - time.monotonic()) and connected:
                self.unconfirmed = []  # ZooKeeper closed the session, and its ephemeral nodes with it
        self.link.sever()

    def _full_paths(self, paths: list[str | None]) -> list[str]:
        return [self.demo.chroot + path for path in paths if path]


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
        return next((w for w in workers if w.election.is_leader), None)

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
    def __init__(self, args: argparse.Namespace, shutdown: Shutdown, events: EventLog):
        self.zk = args.zk
        self.hosts, self.chroot = parse_zk(args.zk)
        self.session_timeout = args.session_timeout
        self.shutdown, self.stopping, self.events = shutdown, shutdown.requested, events
        self.timeline = Timeline(shutdown)
        self.workers: list[Worker] = []
        self.ends = float("inf")
        self.closing_at: float | None = None
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

    def add_worker(self, why: str = "starts") -> Worker:
        worker = Worker(self, self._next_index)
        self._next_index += 1
        self.timeline.say(worker.name, why)
        self.workers.append(worker)  # listed before it starts: a Ctrl-C in between must still close it
        if not worker.start(max(0.1, min(CONNECT_TIMEOUT, self.ends - time.monotonic()))):
            if not self.stopping.is_set():
                self.timeline.say(worker.name, "could not connect to ZooKeeper; it stays out")
            worker.resign(self.deadline(1.0))  # it never joined: there is no node to wait for
        return worker

    def run(self, workers: int, interval: float, duration: float | None, seed: int | None) -> None:
        self.ends = time.monotonic() + (duration or float("inf"))
        for _ in range(workers):
            if self.pause(0):
                self.add_worker()
        chaos = Chaos(self, seed)
        if self.pause(min(interval, FIRST_FAULT_AFTER)):
            chaos.first()
        while self.pause(interval):
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
        for worker in self.workers:
            worker.log_terms()
        return [path for w in self.workers for path in w.unconfirmed]

    def summary(self, left: list[str], picture: bool) -> str:
        tl, terms = self.timeline, [w.election.history for w in self.workers]  # teardown included: still 1
        p50, p95 = percentile_ms(tl.handoffs_ms, 0.50), percentile_ms(tl.handoffs_ms, 0.95)
        lines = [
            "", "summary",
            f"  elections                 {tl.elections}",
            f"  hand-off p50 / p95        {p50} / {p95}  (predecessor's node gone -> new leader acts)",
            f"  most leaders at once      {most_at_once(terms)}  (never more than 1)",
            f"  watchers notified         {tl.notified} for {tl.departures} departures  "
            "(at most one each; a herd wakes everyone)",
            *([f"  other runs' candidates    {len(tl.others)}  (their departures wake ours too; their leaders "
               "are not seen here)"] if tl.others else []),
            f"  ledger writes accepted    {tl.accepted}",
            f"  ledger writes rejected    {tl.rejected}  (stale leaders, fenced by ZooKeeper)",
        ]
        if left:
            lines.append(f"  not cleaned up            {len(left)} node(s) ZooKeeper did not confirm deleted; "
                         f"its session expiry removes them: {', '.join(left)}")
        if picture:
            lines += ["", *draw_timeline(self.lanes(), tl.started, self.closing_at or time.monotonic(),
                                         utf8_output())]
        return "\n".join(lines)

    def lanes(self) -> list[Lane]:
        return [Lane(w.name, w.election.history[:], w.joined_at, w.gone_at, w.crashed, w.partitions[:],
                     w.rejections[:]) for w in self.workers]


def percentile_ms(values: list[float], q: float) -> str:
    """Nearest-rank percentile, as text: an observed value, never an interpolation."""
    if not values:
        return "n/a"
    ordered = sorted(values)
    return f"{ordered[min(len(ordered) - 1, int(q * len(ordered)))]:.1f} ms"


def most_at_once(histories: list[list[tuple[float, bool, str]]]) -> int:
    """The largest number of candidates acting as leader at the same instant."""
    changes = sorted((t, 1 if leading else -1) for history in histories for t, leading, _ in history)
    acting = peak = 0
    for _, delta in changes:  # at equal times, -1 sorts first: a hand-off is not an overlap
        acting += delta
        peak = max(peak, acting)
    return peak


# ---------------------------------------------------------------- the picture of a run

PICTURE_WIDTH = 100  # columns, lane names included
MARKS = {True: {"lead": "█", "wait": "─", "cut": "░", "gone": "✗", "rejected": "!"},   # UTF-8
         False: {"lead": "#", "wait": "-", "cut": "~", "gone": "x", "rejected": "!"}}  # plain ASCII


@dataclass
class Lane:
    """One worker's measured life: its terms (the election's history) and what the chaos did to it."""
    name: str
    history: list[tuple[float, bool, str]]
    joined: float | None
    gone: float | None
    crashed: bool
    partitions: list[tuple[float, float]]
    rejections: list[float]

    def terms(self, end: float) -> list[tuple[float, float]]:
        """The intervals in which this worker acted as leader."""
        return leader_terms(self.history, end)


def leader_terms(history: list[tuple[float, bool, str]], end: float) -> list[tuple[float, float]]:
    """An election's (time, leading?, why) history as the intervals it acted as leader; one still open ends at `end`."""
    spans, since = [], None
    for t, leading, _ in history:
        if leading and since is None:
            since = t
        elif not leading and since is not None:
            spans.append((since, t))
            since = None
    return spans + ([(since, end)] if since is not None else [])


def utf8_output() -> bool:
    return (sys.stdout.encoding or "").lower().replace("-", "") == "utf8"


def draw_timeline(lanes: list[Lane], start: float, end: float, utf8: bool) -> list[str]:
    """One lane per worker, time left to right. A column covers a slice of time: it shows as leader
    the worker that led for most of that slice, and also any other worker that led at the same
    instant as it (which would break the rule). A hand-off inside a column shows one leader."""
    marks, label = MARKS[utf8], max([len(lane.name) for lane in lanes] + [4]) + 1
    columns = PICTURE_WIDTH - label - 2
    step = max(end - start, 1e-9) / columns
    slices = [(start + i * step, start + (i + 1) * step) for i in range(columns)]
    leaders = [column_leaders(lanes, a, b, end) for a, b in slices]
    rows = [f"{'':<{label}} 0s{f'{end - start:.1f}s':>{columns - 1}}"]
    for lane in lanes:
        cells = [lane_mark(lane, a, b, lane.name in led, marks) for (a, b), led in zip(slices, leaders, strict=True)]
        rows.append(f"{lane.name:<{label}}|{''.join(cells)}|")
    rows.append(f"{'':<{label}} {marks['lead']} leading  {marks['wait']} waiting in line  {marks['cut']} partitioned  "
                f"{marks['gone']} crashed or resigned  {marks['rejected']} write rejected")
    rows.append(f"{'':<{label}} one column = {step:.2f} s; it shows the worker that led for most of it")
    return rows


def column_leaders(lanes: list[Lane], a: float, b: float, end: float) -> set[str]:
    """Who to mark as leading in [a, b): the longest leader, plus anyone leading at the same instant."""
    clipped = {lane.name: [(max(s, a), min(e, b)) for s, e in lane.terms(end) if s < b and e > a]
               for lane in lanes}
    spent = {name: sum(e - s for s, e in spans) for name, spans in clipped.items() if spans}
    if not spent:
        return set()
    main = max(spent, key=spent.get)
    overlapping = {name for name in spent if name != main and any(
        max(s1, s2) < min(e1, e2) for s1, e1 in clipped[name] for s2, e2 in clipped[main])}
    return {main} | overlapping


def lane_mark(lane: Lane, a: float, b: float, leading: bool, marks: dict[str, str]) -> str:
    """What one lane shows for [a, b): the rarest event wins, so a crash or a rejection is never hidden."""
    if any(a <= t < b for t in lane.rejections):
        return marks["rejected"]
    if lane.gone is not None and a <= lane.gone < b:
        return marks["gone"]
    if leading:
        return marks["lead"]
    if any(s < b and e > a for s, e in lane.partitions):
        return marks["cut"]
    if lane.joined is not None and lane.joined < b and (lane.gone is None or lane.gone > a):
        return marks["wait"]
    return " "


# ---------------------------------------------------------------- command line

HOSTNAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?")
SESSION_HELP = ("seconds (default 4). ZooKeeper grants 2 to 20 ticks: 0.5-60 s on the lab's servers "
                "(tick 250 ms, max 60 s), 4-40 s on a stock server")


def parse_zk(text: str) -> tuple[list[tuple[str, int]], str]:
    """'host:port[,host:port...][/chroot]' as (hosts, chroot); ValueError says what is wrong."""
    hosts_part, slash, rest = text.strip().partition("/")
    chroot = slash + rest
    if chroot and any(not part or part in (".", "..") or not part.isprintable() for part in rest.split("/")):
        raise ValueError(f"the chroot {chroot!r} must be an absolute znode path, with no empty part "
                         "and no trailing '/'")
    return [parse_host(item.strip()) for item in hosts_part.split(",")], chroot


def parse_host(item: str) -> tuple[str, int]:
    """'host[:port]' or '[ipv6][:port]'; the port defaults to 2181."""
    if item.startswith("["):
        host, bracket, rest = item[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"{item!r}: write an IPv6 address as [::1]:2181")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{item!r}: {host!r} is not an IPv6 address") from None
        port = rest[1:] if rest else None
    else:
        host, colon, port = item.rpartition(":") if ":" in item else (item, "", None)
        if ":" in host or not HOSTNAME.fullmatch(host):
            raise ValueError(f"{item!r} is not host:port (an IPv6 address goes in brackets: [::1]:2181)")
    if port is None:
        return host, 2181
    if not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
        raise ValueError(f"{item!r}: the port must be a number from 1 to 65535")
    return host, int(port)


def _zk_address(text: str) -> str:
    try:
        parse_zk(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"must be host:port[,host:port...][/chroot]: {exc}") from None
    return text.strip()


def _number(kind: type, low: float, high: float, above: bool = False) -> Callable[[str], float]:
    """A checker for argparse: a finite `kind` within [low, high] (or (low, high] if `above`)."""
    noun = "whole number" if kind is int else "finite number"
    rule = f"above {low:g} and at most {high:g}" if above else f"from {low:g} to {high:g}"

    def check(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not math.isfinite(value) or not (low < value if above else low <= value) \
                or value > high:
            raise argparse.ArgumentTypeError(f"must be a {noun} {rule}, not {text}")
        return value
    check.__name__ = kind.__name__
    return check


def _events_file(path: str) -> TextIO:
    try:
        return open(path, "a", encoding="utf-8")  # noqa: SIM115 (open for the whole run)
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"cannot append to {path}: {exc.strerror}") from None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Leader election with ZooKeeper, under chaos.")
    parser.add_argument("--zk", type=_zk_address, default=os.environ.get("ZK_HOSTS", "127.0.0.1:2181"),
                        help="ZooKeeper connection string, host:port[,host:port...][/chroot]; an IPv6 "
                             "address goes in brackets, [::1]:2181 (default: $ZK_HOSTS or 127.0.0.1:2181)")
    parser.add_argument("--workers", type=_number(int, 1, 100), default=5, help="candidates at start, 1-100 "
                        "(default 5)")
    parser.add_argument("--interval", type=_number(float, 0.1, 3600), default=5.0,
                        help="seconds between chaos events, 0.1-3600 (default 5); the first one, which "
                             f"always strikes the leader, comes after {FIRST_FAULT_AFTER:g} s at most")
    parser.add_argument("--duration", type=_number(float, 0, 1e6, above=True), default=None,
                        help="seconds to run (default: until Ctrl-C)")
    parser.add_argument("--seed", type=int, default=None, help="seed for the chaos driver")
    parser.add_argument("--session-timeout", type=_number(float, 0.5, 60), default=4.0, help=SESSION_HELP)
    parser.add_argument("--events", type=_events_file, default=None, metavar="FILE",
                        help="append one JSON line per event (lead, unlead, write, rejected, ...) to FILE")
    parser.add_argument("--no-timeline", action="store_true", help="leave the leadership picture out of the summary")
    return parser.parse_args(argv)


def check_zookeeper(zk: str, stop: threading.Event) -> str | None:
    """None if ZooKeeper answers within CONNECT_TIMEOUT and has our chroot, else a one-line error."""
    hosts, chroot = zk.partition("/")[0], parse_zk(zk)[1]
    client = KazooClient(hosts=hosts, timeout=CONNECT_TIMEOUT, connection_retry=dict(RECONNECT))
    try:
        if not start_client(client, CONNECT_TIMEOUT, stop):
            return (f"error: cannot reach ZooKeeper at {zk}; start one with `./run.sh leader`, "
                    "`docker compose up -d` or `python -m zklab.launcher`")
        if chroot and client.exists_async(chroot).get(timeout=CONNECT_TIMEOUT) is None:
            return (f"error: chroot {chroot} does not exist on ZooKeeper at {hosts}; "
                    f"create it (zkCli.sh create {chroot}) or drop {chroot} from --zk")
        client.ensure_path_async(chroot + CANDIDATES).get(timeout=CONNECT_TIMEOUT)
    except (KazooException, *DISCONNECTED) as exc:
        return f"error: ZooKeeper at {zk} did not let us create {CANDIDATES} ({type(exc).__name__})"
    finally:
        stop_client(client, 1.0)
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.getLogger("kazoo").addHandler(logging.NullHandler())
    logging.getLogger("kazoo").propagate = False  # kazoo's reconnect chatter would drown the timeline
    shutdown = Shutdown()
    shutdown.install()
    problem = check_zookeeper(args.zk, shutdown.requested)
    if shutdown.requested.is_set():
        return 0  # Ctrl-C before the demo started: nothing to clean up
    if problem:
        print(problem, file=sys.stderr)
        return 1
    demo = Demo(args, shutdown, EventLog(args.events))
    demo.events.write("start", session_timeout=args.session_timeout)
    demo.timeline.out(f"leader election at {args.zk}{CANDIDATES}, session timeout {args.session_timeout}s; "
                      "Ctrl-C stops")
    try:
        demo.run(args.workers, args.interval, args.duration, args.seed)
    finally:
        demo.timeline.say("demo", f"{shutdown.why or 'time is up'}; shutting down: every worker resigns "
                                  "and closes its session")
        left = demo.close()
        demo.events.write("exit", clean=not left, left=left)
    demo.timeline.out(demo.summary(left, picture=not args.no_timeline))
    return 0


def leave_now(code: int) -> None:
    """Exit without Python's finalization. It puts the default signal handlers back, so a second
    Ctrl-C or SIGTERM landing in those last milliseconds would kill us instead of letting us exit
    with `code`; and there is nothing left to close: sessions are closed, output is flushed."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    leave_now(main())
