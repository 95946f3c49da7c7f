"""Challenge 1: leader election with ZooKeeper, and why "exactly one leader" is harder than it looks.

ZooKeeper's recipe, made robust. Each rule, and the function that holds it:
1. Each candidate creates an EPHEMERAL_SEQUENTIAL znode: the growing counter makes a queue, and the
   owner's session takes its node with it when it ends. (_join)
2. The lowest sequence number leads, compared as a number: 10 comes after 9. (election_order)
3. The others watch only the node just before their own (a departure wakes one, not a herd); woken, they
   read the queue again. A predecessor already gone: look again; our node gone: join again. (_check_position)
4. SUSPENDED: stop acting at once. LOST: our session and node are gone: join again. (_on_connection_change)
5. A lease: act only within LEASE_FRACTION of a session timeout of ZooKeeper's last answer; ZooKeeper
   cannot expire the session sooner, so leadership never outlives it. (_renew_lease, is_leader)
6. Fencing: the leader's write commits in one transaction with a check that its election node exists,
   so ZooKeeper rejects a deposed leader's late write. (fenced_write)
7. A reply to create can be lost while the node was made: find it by the GUID in its name. (_find_own_node)
8. Sync before a read that may make us leader: a follower cut off from its quorum answers from a stale
   copy. (_sync)   `python challenge_leader_election.py --help`: the demo at the end runs it under chaos.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":  # Ctrl-C or SIGTERM while Python loads kazoo: nothing to clean up yet, exit quietly
    import _signal  # `signal`'s C core, already loaded; os._exit, as an exception raised mid-import can turn
    _signal.signal(_signal.SIGINT, lambda *_: os._exit(0))  # into another one, with a traceback
    _signal.signal(_signal.SIGTERM, lambda *_: os._exit(0))

import argparse
import contextlib
import ipaddress
import itertools
import json
import logging
import math
import random
import re
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import (
    ConnectionClosedError,
    ConnectionLoss,
    KazooException,
    NoAuthError,
    NoNodeError,
    RolledBackError,
    SessionExpiredError,
)
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.protocol.states import EventType, WatchedEvent

# Our node names read "<guid>__<name>__<seq>": the GUID lets us find our own node after a lost reply.
SEP = "__"
# What a candidate's name may hold: safe in a znode name, readable in a log. The GUID (hex) and the
# sequence (digits) hold no "_", so any such name reads back, even "a_" or "a__b".
NAME_RULE = re.compile(r"[A-Za-z0-9._-]{1,64}")
# A leader acts only this far into a session timeout after ZooKeeper last answered it (kazoo's heartbeat
# gives up after 2/3 too; the rest is the margin), and renews its lease (a cheap read) 4 times per lease.
LEASE_FRACTION, RENEW_FRACTION = 2 / 3, 1 / 4
# Errors that mean "the connection is gone for now": wait for a connection-state change.
DISCONNECTED = (ConnectionLoss, SessionExpiredError, ConnectionClosedError, KazooTimeoutError)


class NotLeaderError(Exception):
    """A fenced write was refused: this candidate does not lead, or ZooKeeper rejected the write."""


# ---------------------------------------------------------------- the election queue

@dataclass(frozen=True)
class Candidate:
    node: str   # the znode's name under the election path
    name: str   # the worker's name
    seq: int    # ZooKeeper's sequence number: the position in the queue, and the leader's epoch


def parse_candidate(node: str) -> Candidate | None:
    """Read '<guid>__<name>__0000000042' (ZooKeeper appends the counter); None for anything else. The GUID
    ends at the first '__', the counter starts after the last: a name like 'a_' reads back whole."""
    guid, _, rest = node.partition(SEP)
    name, _, seq = rest.rpartition(SEP)
    if not (guid and name and seq.isascii() and seq.isdigit()):
        return None
    return Candidate(node, name, int(seq))


def election_order(children: list[str]) -> list[Candidate]:
    """Step 1. The queue, first in line first: each child parsed by parse_candidate (skip None: not a candidate),
    sorted by `seq` as an int ('0000000010' after '0000000009'). Returns the list of Candidates, maybe empty."""
    queue = []
    for child in children:
        candidate = parse_candidate(child)
        if candidate is not None:  # someone else's node under our path: not part of the election
            queue.append(candidate)
    return sorted(queue, key=lambda c: c.seq)


# ---------------------------------------------------------------- fencing

@dataclass(frozen=True)
class FencingToken:
    node_path: str  # the leader's election node: the write is valid only while it exists
    epoch: int      # its sequence number, which only grows from one leader to the next
    leader: str


def fenced_write(client: KazooClient, token: FencingToken, ledger: str, value: str | bytes,
                 timeout: float | None = None) -> int:
    """Step 5. Write the leader's record to `ledger` in one transaction that commits only if
    token.node_path still exists (check() it at version 0: never modified) and the ledger is as we read it.
    Never compare epochs here: a paused process would compare stale ones; ZooKeeper decides, in order.
    Each round trip waits at most `timeout` (default: the session timeout). Returns the ledger's new
    version; raises NotLeaderError if ZooKeeper refused."""
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
    if not isinstance(value, (str, bytes)):
        raise TypeError(f"a ledger value must be str or bytes, not {type(value).__name__}")
    return value if isinstance(value, str) else value.decode()  # not UTF-8: UnicodeDecodeError, a ValueError


# ---------------------------------------------------------------- the recipe

class LeaderElection:
    """One candidate at `path`: start() joins, resign() leaves for good. on_change(election, event, detail) hears
    joined, woken, elected, revoked, error, on kazoo's thread or ours: return at once, never call ZooKeeper."""

    def __init__(self, client: KazooClient, path: str, name: str,
                 on_change: Callable[[LeaderElection, str, str], None] | None = None):
        if not isinstance(name, str) or not NAME_RULE.fullmatch(name):
            raise ValueError(f"a candidate name must be 1 to 64 characters from A-Z a-z 0-9 . _ -, not {name!r}")
        self.client, self.path, self.name, self.on_change = client, path.rstrip("/"), name, on_change
        # Props to Apache Curator for this trick: a GUID in the node's name lets us recognise our
        # own node after a connection loss ate the reply to `create`.
        self._guid = uuid.uuid4().hex
        # Leadership changes under the lock; the event says "look again" (watches, the listener, ourselves).
        self._lock, self._wake = threading.Lock(), threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"election-{name}", daemon=True)
        # What changes after this, and nothing else:
        self._lifecycle = "latent"        # latent -> started -> closed, never back
        self._node: tuple[str, int] | None = None  # our node's name and owning session, while it lives
        self._create_sent = False         # a create went out, and its answer has not come back
        self._leading = False             # elected; acting only while the lease lasts too
        self._lease_until = 0.0           # monotonic time the lease runs out
        self.epoch: int | None = None     # our latest term's sequence number: the fencing token
        self._leaving: list = []          # the answers to the deletes we asked for
        self.history: list[tuple[float, bool, str]] = []  # the recipe's own log: (time, leading?, why)

    @property
    def is_leader(self) -> bool:
        """Acting as leader now: elected, and ZooKeeper answered us within the lease."""
        return self._leading and time.monotonic() < self._lease_until

    # -- the lesson: each step holds one rule of the docstring

    def _check_position(self) -> None:
        """Step 2. Lead if our node is first in line, else watch only the node just before it. Sync, then read
        the queue. Our node gone, or an older session's: self._forget_node(why). First: self._claim(seq,
        asked_at). Else an exists() watch on the predecessor; if it already left, look again at once."""
        asked_at = time.monotonic()
        self._sync()  # this read may make us leader: it must not come from a follower that lost touch
        queue = election_order(self.client.get_children(self.path))
        nodes, mine = [c.node for c in queue], self._node
        if mine is None or mine[0] not in nodes or mine[1] != self._session_id():
            # Gone, or left over from a session that has ended (ZooKeeper will delete it): join again.
            return self._forget_node("our node is gone")
        position = nodes.index(mine[0])
        if position == 0:
            self._claim(queue[0].seq, asked_at)
        elif self.client.exists(self._node_path(nodes[position - 1]), watch=self._predecessor_changed) is None:
            self._wake.set()  # it left between our two reads: look again

    def _on_connection_change(self, state: str) -> None:
        """Step 3. The session's state changed (kazoo's thread: never block). SUSPENDED: stop acting at once.
        LOST: stop acting and forget our node, so we join again. Always wake our thread to look again."""
        if state == KazooState.SUSPENDED:
            self._set_leader(False, "connection SUSPENDED")
        elif state == KazooState.LOST:
            self._set_leader(False, "session LOST")
            self._node = None  # it died with the session: our thread joins again as a new candidate
        self._wake.set()  # on CONNECTED our thread looks again

    def _renew_lease(self) -> None:
        """Step 4. The leader's heartbeat. Sync, ask whether our node exists, wait no longer than the lease
        has left. No answer: stop acting and keep asking. Node gone or not ours: look again (wake our
        thread). Else the lease runs on from the moment we asked."""
        asked_at, mine = time.monotonic(), self._node
        if mine is None:
            return self._wake.set()
        self._sync()  # an answer from a follower cut off from the quorum proves nothing about our session
        answer = self.client.exists_async(self._node_path(mine[0]))
        try:
            stat = answer.get(timeout=max(0.0, self._lease_until - asked_at))
        except KazooTimeoutError:
            self._set_leader(False, "lease expired: ZooKeeper did not answer in time")
            return self._wake.set()  # keep asking: we lead again if our node survives
        if stat is None or stat.ephemeralOwner != self._session_id():
            self._wake.set()  # _check_position will find out what happened
        else:
            self._set_leader(True, "lease renewed", lease_from=asked_at, renewal=True)

    def _find_own_node(self) -> tuple[str, int] | None:
        """Step 6. Our node, made by a create whose reply was lost: (name, owning session) or None: the child
        named with our GUID that our current session owns (an older session's is not ours to keep)."""
        with contextlib.suppress(NoNodeError):  # no election path yet: no node of ours
            for child in self.client.get_children(self.path):
                if child.startswith(self._guid + SEP):
                    stat = self.client.exists(self._node_path(child))
                    if stat is not None and stat.ephemeralOwner == self._session_id():
                        return child, stat.ephemeralOwner
        return None

    def _sync(self) -> None:
        """Step 7 (one line). Make our next read as fresh as ZooKeeper's leader. A follower cut off from its
        quorum answers reads for up to syncLimit x tickTime while the leader expires our session. A sync
        goes through the leader, and a session's requests are answered in order; the read's deadline
        covers both, so don't wait for it."""
        self.client.sync_async(self.path)

    def _join(self) -> None:
        """Create our node, unless a create that lost its reply already made one (_find_own_node)."""
        found = self._find_own_node() if self._create_sent else None
        if found is None:
            self._create_sent = True  # from now on, until an answer comes, the node may exist unbeknown to us
            # include_data asks for create2: the answer holds the node's stat, and so its owner.
            path, stat = self.client.create(f"{self.path}/{self._guid}{SEP}{self.name}{SEP}", self.name.encode(),
                                            ephemeral=True, sequence=True, makepath=True, include_data=True)
            found = path.rsplit("/", 1)[1], stat.ephemeralOwner
        self._node, self._create_sent = found, False
        self._notify("joined", found[0])

    def _predecessor_changed(self, event: WatchedEvent) -> None:
        # On kazoo's thread: wake ours, never block. Type NONE is no news: kazoo fires every watch so on SUSPENDED.
        if event.type != EventType.NONE:
            self._notify("woken", event.path)
        self._wake.set()

    def _claim(self, seq: int, asked_at: float) -> None:
        self.epoch = seq
        self._set_leader(True, "elected", lease_from=asked_at)

    def _forget_node(self, why: str) -> None:
        self._set_leader(False, why)
        self._node = None
        self._wake.set()

    def _set_leader(self, leading: bool, why: str, lease_from: float | None = None, renewal: bool = False) -> None:
        with self._lock:
            if leading and self.client.state != KazooState.CONNECTED:
                return  # an answer that raced a SUSPENDED: wait for RECONNECTED and look again
            if renewal and not self._leading:
                return  # a renewal extends a term; it never starts one
            if leading:
                self._lease_until = lease_from + self._session_seconds() * LEASE_FRACTION
            if leading == self._leading:
                return
            now = time.monotonic()  # is_leader turned false when the lease ran out, even if we notice later
            self.history.append((now if leading else min(now, self._lease_until), leading, why))
            self._leading = leading
        self._notify("elected" if leading else "revoked", why)

    def _notify(self, event: str, detail: str) -> None:
        if self.on_change is not None:
            self.on_change(self, event, detail)

    @property
    def token(self) -> FencingToken | None:
        path = self.node_path
        return None if path is None or self.epoch is None else FencingToken(path, self.epoch, self.name)

    @property
    def node_path(self) -> str | None:
        """Our election node's path, while we believe it exists."""
        return None if (mine := self._node) is None else self._node_path(mine[0])

    def participants(self) -> list[str]:
        """Every candidate's name in election order, leader first, as ZooKeeper has them now."""
        with contextlib.suppress(NoNodeError):  # no election path: nobody
            children = self.client.get_children_async(self.path).get(timeout=self._session_seconds())
            return [c.name for c in election_order(children)]
        return []

    def leader(self) -> str | None:
        return next(iter(self.participants()), None)

    def fenced_set(self, path: str, value: str | bytes) -> int:
        """The leader's write: refused unless we lead now, and rejected by ZooKeeper if we don't."""
        token = self.token
        if not self.is_leader or token is None:
            raise NotLeaderError(f"{self.name} is not the leader")
        return fenced_write(self.client, token, path, value)

    def start(self) -> None:
        """Join the election and return at once; the work happens on a thread of our own."""
        with self._lock:
            if self._lifecycle != "latent":
                raise RuntimeError(f"election for {self.name} was already {self._lifecycle}")
            self._lifecycle = "started"
        self.client.add_listener(self._on_connection_change)
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
        """Leave the election for good, and wait at most `timeout` (default: the session timeout) for
        ZooKeeper to confirm our node is gone. False: it goes with the session (closed, or expired)."""
        deadline = time.monotonic() + (self._session_seconds() if timeout is None else timeout)
        if self._lifecycle != "closed":
            self.leave()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(max(0.0, deadline - time.monotonic()))
        self._ask_delete()  # in case our thread was creating one as we closed
        self.client.remove_listener(self._on_connection_change)
        for answer in self._leaving:  # a node gone already, or with its session, is gone all the same
            answer.wait(max(0.0, deadline - time.monotonic()))
            if not answer.ready() or not isinstance(answer.exception, (type(None), NoNodeError, SessionExpiredError)):
                return False
        return True

    def _ask_delete(self) -> None:
        with self._lock:
            mine, self._node = self._node, None
        if mine is not None:
            self._leaving.append(self.client.delete_async(self._node_path(mine[0])))

    def _run(self) -> None:
        while self._lifecycle == "started":
            renew_in = self._session_seconds() * LEASE_FRACTION * RENEW_FRACTION if self._leading else None
            woken = self._wake.wait(renew_in)
            self._wake.clear()
            if self._lifecycle != "started":
                break
            try:
                if self._leading and not woken:
                    self._renew_lease()
                elif self.client.connected:
                    if self._node is None:
                        self._join()
                    self._check_position()
            except DISCONNECTED:
                pass  # the connection listener wakes us when there is something to do
            except NoNodeError:
                self._wake.set()  # the election path vanished under us: create it again
            except Exception as exc:  # a dead thread would keep our node in line and block everyone behind
                self._set_leader(False, "unexpected error")
                self._notify("error", f"{type(exc).__name__} {exc}".strip())
                self._wake.wait(1.0)
                self._wake.set()
        self._ask_delete()  # a create that finished after we closed: its node must not stay

    def _session_id(self) -> int:
        # Between sessions we cannot tell whose a node is: wait; "not ours" would abandon a live node.
        if not self.client.client_id:
            raise ConnectionLoss("no session at the moment")
        return self.client.client_id[0]

    def _session_seconds(self) -> float:
        # What we asked for (kazoo hides the server's answer): above maxSessionTimeout only fencing holds.
        return self.client._session_timeout / 1000.0

    def _node_path(self, node: str) -> str:
        return f"{self.path}/{node}"


# ================================================================ the demo
# Workers with sessions of their own elect a leader; chaos crashes, partitions or resigns the leader, or adds a
# worker. Every figure is measured from what the workers did. The lab's rich demo, with fencing rejecting a stale
# write and the leadership lanes: ./run.sh leader

ROOT = "/lab/leader-election"
CANDIDATES, LEDGER = f"{ROOT}/candidates", f"{ROOT}/ledger"  # the ledger: where the rich demo's leaders write
RUN_ID = uuid.uuid4().hex[:4]  # worker names stay unique when two copies share one election
CONNECT_TIMEOUT = 5.0  # how long we wait for ZooKeeper before saying it is unreachable
FIRST_FAULT_AFTER = 2.0  # the first fault strikes the leader this soon: a short run shows a hand-off too
SAMPLE_EVERY = 0.02  # how often each worker's is_leader is sampled, as a leader would before each act
CLOSE_GRACE, HURRY_GRACE = 1.0, 0.5  # shutdown waits a session timeout plus this; after a second signal, this
SESSION_HELP = ("seconds (default 4). ZooKeeper grants 2 to 20 ticks: 0.5-60 s on the lab's servers "
                "(tick 250 ms, max 60 s), 4-40 s on a stock server")


class Cable:
    """A worker's network cable: a relay to ZooKeeper. Unplugged, bytes wait as if lost (a partition); cut,
    ZooKeeper hears nothing more and expires the session after its timeout (a crash)."""

    def __init__(self, hosts: list[tuple[str, int]]) -> None:
        self.hosts, self.sockets, self.plugged = itertools.cycle(hosts), [], threading.Event()
        self.plugged.set()
        self.server = socket.create_server(("127.0.0.1", 0))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):  # the cable was cut
            while near := self.server.accept()[0]:
                try:
                    far = socket.create_connection(next(self.hosts), timeout=1.0)
                except OSError:
                    near.close()  # that server is down: kazoo sees the drop at once, and tries the next
                    continue
                far.settimeout(None)
                self.sockets += [near, far]
                for src, dst in ((near, far), (far, near)):
                    src.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # kazoo pipelines sync + read
                    threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while (data := src.recv(65536)) and self.plugged.wait():
                dst.sendall(data)
        shut(src, dst)

    def cut(self) -> None:
        shut(self.server, *self.sockets)
        self.plugged.set()


def shut(*sockets: socket.socket) -> None:
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


class Worker:
    """A candidate with a session of its own, behind a cable of its own."""

    def __init__(self, demo: Demo, name: str) -> None:
        self.demo, self.name, self.cable = demo, name, Cable(demo.hosts)
        relay = f"127.0.0.1:{self.cable.server.getsockname()[1]}"  # once per server: kazoo waits per address
        self.client = new_client(",".join([relay] * len(demo.hosts)) + demo.chroot, demo.args.session_timeout)
        self.election = LeaderElection(self.client, CANDIDATES, name, on_change=self.heard)
        self.out, self.leading, self.crashed, self.woken_at, self.why = False, False, None, None, ""

    def heard(self, election: LeaderElection, event: str, detail: str) -> None:
        """The recipe's news, on its thread or kazoo's: note it, say it, never block."""
        if event == "woken":
            self.woken_at = time.monotonic()
            self.demo.say(self.name, "notified: the candidate just before me left (only I am woken)", "notified")
        elif event == "joined":
            self.demo.say(self.name, "joined the election")
        elif event == "revoked":
            self.why = detail
        elif event == "error":
            self.demo.problem = self.demo.problem or f"error: {self.name}: {detail}"
            self.demo.shutdown.request("error")

    def start(self) -> None:
        """On a thread of its own: a connection takes a while, and a learner's start() may never return."""
        if not start_client(self.client, CONNECT_TIMEOUT, self.demo.stopping):
            return self.demo.say(self.name, "could not connect to ZooKeeper; it stays out")
        with contextlib.suppress(RuntimeError):  # closed by the shutdown as it connected: it stays out
            self.election.start()

    def crash(self) -> None:
        self.crashed = self.client.client_id
        self.cable.cut()  # no goodbye reaches ZooKeeper: it must wait a session timeout to expire the session
        threading.Thread(target=stop_client, args=(self.client, 1.0), daemon=True).start()

    def finish(self, deadline: float) -> bool:
        """ZooKeeper deletes our node and closes our session by `deadline`; True if it confirmed."""
        if self.crashed:  # close the dead session as its twin: ZooKeeper knows it by its id and password
            twin = new_client(self.demo.args.zk, client_id=self.crashed)
            return start_client(twin, max(0.0, deadline - time.monotonic())) and stop_client(twin, 1.0)
        gone = self.election.resign(timeout=max(0.0, deadline - time.monotonic()))
        return stop_client(self.client, max(0.0, deadline - time.monotonic())) and gone


class Demo:
    """The chaos and the figures, on one thread. It samples each worker's is_leader, as a leader would before
    each act: the figures say what the workers did, not what the recipe believes about itself."""

    def __init__(self, args: argparse.Namespace, shutdown: Shutdown) -> None:
        self.args, self.shutdown, self.stopping = args, shutdown, shutdown.requested
        self.hosts, self.chroot = parse_zk(args.zk)
        self.workers: list[Worker] = []
        self.started, self.lock, self.done = time.monotonic(), threading.Lock(), threading.Event()
        self.problem, self.crash, self.handoffs = "", None, []
        self.counts = dict.fromkeys(["elections", "notified", "departures", "most", "left"], 0)

    def say(self, who: str, what: str, counter: str = "") -> None:
        """One line per event, with the time since the start; `counter` counts it (the shutdown's do not)."""
        if self.stopping.is_set():
            return
        if counter:
            with self.lock:
                self.counts[counter] += 1
        if what:
            self.shutdown.print(f"{time.monotonic() - self.started:8.3f}s  {who:<10} {what}")

    def run(self) -> None:
        try:
            self.problem = preflight(self.args.zk, self.stopping) or ""
            if self.problem:
                return self.shutdown.request("no ZooKeeper")
            self.say("demo", f"leader election at {self.args.zk}{CANDIDATES}, session timeout "
                             f"{self.args.session_timeout:g}s; Ctrl-C stops")
            for _ in range(self.args.workers):
                self.add_worker("starts")
            rng, first = random.Random(self.args.seed), True
            fault_at = time.monotonic() + min(self.args.interval, FIRST_FAULT_AFTER)
            while not self.stopping.wait(SAMPLE_EVERY):
                self.sample()
                if time.monotonic() >= fault_at:
                    self.chaos(rng, first)
                    first, fault_at = False, time.monotonic() + self.args.interval
        finally:
            self.close()

    def sample(self) -> None:
        """Who acts as leader now: each worker's is_leader, and the most at once."""
        for worker in self.workers:
            if worker.out or (leading := worker.election.is_leader) == worker.leading:
                continue
            worker.leading = leading
            if leading:
                self.elected(worker, time.monotonic())
            else:
                self.say(worker.name, f"stops leading: {worker.why}")
        self.counts["most"] = max(self.counts["most"], sum(worker.leading for worker in self.workers))

    def elected(self, worker: Worker, now: float) -> None:
        note, crash, self.crash = "", self.crash, None
        if worker.woken_at:
            self.handoffs.append((now - worker.woken_at) * 1000)
            note = f", hand-off {self.handoffs[-1]:.1f} ms after it was notified"
        if crash:
            note += f"; {now - crash[1]:.2f} s after {crash[0]} crashed (ZooKeeper had to expire its session)"
        worker.woken_at, worker.why = None, "its lease ran out"  # unless the recipe says why when it stops
        self.say(worker.name, f"ELECTED leader, epoch {worker.election.epoch}{note}", "elections")

    def add_worker(self, why: str) -> None:
        worker = Worker(self, f"w{len(self.workers) + 1}-{RUN_ID}")
        self.workers.append(worker)  # listed before it starts: a Ctrl-C in between must still close it
        self.say(worker.name, why)
        threading.Thread(target=worker.start, name=worker.name, daemon=True).start()

    def chaos(self, rng: random.Random, first: bool) -> None:
        """Strike the leader: crash it, partition it or make it resign; or add a worker (never first)."""
        action = rng.choice(["crash", "resign", "partition"] + ([] if first else ["join"]))
        live = [w for w in self.workers if not w.out]
        leader = next((w for w in live if w.leading), None) or (rng.choice(live) if live else None)
        if action == "join" or len(live) < 3 or leader is None:
            return self.add_worker("joins (chaos)")
        self.say("", "", "departures")
        if action == "partition":  # it goes on running, unheard: ZooKeeper expires its session meanwhile
            hold = self.args.session_timeout * 1.5
            self.say(leader.name, f"PARTITIONED from ZooKeeper for {hold:.1f}s")
            leader.cable.plugged.clear()  # plugged in again after `hold`, or at the shutdown
            return threading.Thread(target=lambda: (self.stopping.wait(hold), leader.cable.plugged.set()),
                                    daemon=True).start()
        leader.out, leader.leading = True, False  # it stops acting now, before anyone can be elected
        if action == "resign":
            self.say(leader.name, "resigns")
            return leader.election.leave()
        self.say(leader.name, f"CRASHES: no goodbye; ZooKeeper waits {self.args.session_timeout:g} s from the last "
                              "it heard of it, then expires its session")
        self.crash = (leader.name, time.monotonic())
        leader.crash()

    def close(self) -> None:
        """Every delete is asked for before we wait for any; then we wait, bounded, for ZooKeeper."""
        self.shutdown.print(f"{time.monotonic() - self.started:8.3f}s  {'demo':<10} {self.shutdown.why or 'stop'}; "
                            "shutting down: every worker resigns and closes its session")
        self.stopping.set()
        for worker in self.workers:
            worker.cable.plugged.set()
            if not worker.crashed:
                worker.election.leave()
        deadline = time.monotonic() + self.args.session_timeout + CLOSE_GRACE
        with contextlib.suppress(Exception):
            self.counts["left"] = sum(not worker.finish(deadline) for worker in self.workers)
        self.done.set()

    def summary(self) -> str:
        c, handoffs = self.counts, sorted(self.handoffs)
        median = f"{handoffs[len(handoffs) // 2]:.1f} ms" if handoffs else "n/a"
        return "\n".join(["", "summary (measured from what the workers did)",
                          f"  elections                 {c['elections']}",
                          f"  hand-off, median          {median}  (notified -> the next leader acts)",
                          f"  most leaders at once      {c['most']}  (the rule: never more than 1)",
                          f"  watchers notified         {c['notified']} for {c['departures']} departures",
                          f"  sessions not closed       {c['left']}"])


def preflight(zk: str, stop: threading.Event) -> str | None:
    """None if ZooKeeper answers and lets us in; else one line: what is wrong, and what to do."""
    hosts, chroot = zk.partition("/")[0], parse_zk(zk)[1]
    client, parent, need = new_client(hosts, CONNECT_TIMEOUT), "", ""
    try:
        if not start_client(client, CONNECT_TIMEOUT, stop):
            return (f"error: cannot reach ZooKeeper at {zk}; start one with `./run.sh leader`, "
                    "`docker compose up -d` or `python -m zklab.launcher`")
        if chroot and client.exists(chroot) is None:
            return f"error: chroot {chroot} does not exist on ZooKeeper at {hosts}; create it or drop it from --zk"
        for part in (chroot + CANDIDATES).strip("/").split("/"):  # step by step: a refusal names its node
            node, need = f"{parent}/{part}", f"CREATE permission on {parent or '/'}"
            client.ensure_path(node)
            need = f"READ permission on {node}"
            client.get_children(node)
            parent = node
    except NoAuthError:
        return f"error: ZooKeeper denies {need} (an ACL); grant it, or choose another chroot in --zk"
    except (KazooException, *DISCONNECTED) as exc:
        return f"error: ZooKeeper at {zk} stopped answering ({type(exc).__name__})"
    finally:
        stop_client(client, 1.0)
    return None


# ---------------------------------------------------------------- command line

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Leader election with ZooKeeper, under chaos: the compact demo "
                                     "(./run.sh leader runs the lab's rich one on this script).")
    parser.add_argument("--zk", type=zk_arg, default=os.environ.get("ZK_HOSTS", "127.0.0.1:2181"),
                        help=f"ZooKeeper, {ZK_FORM}; IPv6 in brackets (default: $ZK_HOSTS or 127.0.0.1:2181)")
    parser.add_argument("--workers", type=number_arg(int, 1, 100), default=5, help="candidates, 1-100 (default 5)")
    parser.add_argument("--interval", type=number_arg(float, 0.1, 3600), default=5.0,
                        help="seconds between chaos events, 0.1-3600 (default 5)")
    parser.add_argument("--duration", type=number_arg(float, 0, 1e6, above=True), help="seconds (default: Ctrl-C)")
    parser.add_argument("--seed", type=int, default=None, help="seed for the chaos")
    parser.add_argument("--session-timeout", type=number_arg(float, 0.5, 60), default=4.0, help=SESSION_HELP)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.getLogger("kazoo").addHandler(logging.NullHandler())
    logging.getLogger("kazoo").propagate = False  # kazoo's reconnect chatter would drown the narration
    shutdown = Shutdown().install()
    demo = Demo(args, shutdown)
    threading.Thread(target=demo.run, name="demo", daemon=True).start()
    shutdown.requested.wait(args.duration)  # this thread owns the deadline: it never calls the recipe
    shutdown.request("time is up")
    end = time.monotonic() + CONNECT_TIMEOUT + args.session_timeout + CLOSE_GRACE
    while not demo.done.wait(0.05) and time.monotonic() < end:
        if shutdown.hurry.is_set():  # a second signal: stop waiting for ZooKeeper's confirmations
            end = min(end, time.monotonic() + HURRY_GRACE)
    if demo.problem:
        shutdown.print(demo.problem, file=sys.stderr)
        return 1
    shutdown.print(demo.summary())
    return 0


# ---------------------------------------------------------------- plumbing (the same in both scripts)
# Kazoo doubles its reconnect delay up to a minute by default: after an outage a client could sleep
# long after ZooKeeper is back. Capped, it is back within half a second.
RECONNECT = {"max_tries": -1, "delay": 0.1, "max_delay": 0.5}
# A host name: dot-separated labels of letters, digits and inner hyphens (RFC 1123); IPv4 fits it too.
HOSTNAME = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*")
ZK_FORM = "host:port[,host:port...][/chroot]"


def parse_zk(text: str) -> tuple[list[tuple[str, int]], str]:
    """'host:port[,host:port...][/chroot]' as (hosts, chroot); ValueError says what is wrong."""
    hosts_part, slash, rest = text.strip().partition("/")
    chroot = slash + rest
    if chroot and any(not p or p in (".", "..") or not p.isprintable() for p in rest.split("/")):
        raise ValueError(f"the chroot {chroot!r} must be an absolute znode path like /lab, with no empty, "
                         "'.' or '..' part and no trailing '/'")
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
        if len(host) > 253 or not (host.isascii() and HOSTNAME.fullmatch(host)):
            raise ValueError(f"{item!r} is not host:port (a host is a name or IPv4 address; an IPv6 "
                             "address goes in brackets: [::1]:2181)")
    if port is None:
        return host, 2181
    if not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
        raise ValueError(f"{item!r}: the port must be a number from 1 to 65535")
    return host, int(port)


def zk_arg(text: str) -> str:
    """An argparse type for --zk (and $ZK_HOSTS): the connection string, checked by parse_zk."""
    try:
        parse_zk(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"must be {ZK_FORM}: {exc}") from None
    return text.strip()


def number_arg(kind: type, low: float, high: float, above: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite `kind` within [low, high] (or (low, high] if `above`)."""
    noun = "whole number" if kind is int else "finite number"
    rule = f"above {low:g} and at most {high:g}" if above else f"from {low:g} to {high:g}"

    def check(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not math.isfinite(value) or not (low < value if above else low <= value) \
                or value > high:
            raise argparse.ArgumentTypeError(f"must be a {noun} {rule}, not {text!r}")
        return value
    check.__name__ = kind.__name__
    return check


def new_client(hosts: str, session_timeout: float = 10.0, **kwargs: object) -> KazooClient:
    """A KazooClient with the lab's reconnect policy."""
    return KazooClient(hosts=hosts, timeout=session_timeout, connection_retry=dict(RECONNECT), **kwargs)


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


class Shutdown:
    """Ctrl-C, SIGTERM and a closed stdout all land here, as events the main thread waits on.

    A Python signal handler runs between two steps of the main thread, maybe while it holds the lock
    inside an Event: setting the Event there could deadlock. So the handlers do nothing; Python also
    writes each signal's number to a pipe (set_wakeup_fd), and a thread of ours acts on it. The first
    signal asks for a clean stop; a second one asks to hurry (stop waiting for confirmations).
    """

    def __init__(self) -> None:
        self.requested = threading.Event()  # stop and clean up
        self.hurry = threading.Event()      # a second signal: stop waiting for confirmations
        self.why = ""
        self._print_lock = threading.Lock()

    def install(self) -> Shutdown:
        read_end, write_end = os.pipe()
        os.set_blocking(write_end, False)
        signal.set_wakeup_fd(write_end)
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: None)
        threading.Thread(target=self._listen, args=(read_end,), name="signals", daemon=True).start()
        return self

    def _listen(self, read_end: int) -> None:
        while received := os.read(read_end, 16):
            for signum in received:
                if self.requested.is_set():
                    self.hurry.set()
                else:
                    self.request(f"{signal.Signals(signum).name} received")

    def request(self, why: str) -> None:
        self.why = self.why or why
        self.requested.set()

    def print(self, text: str, file: object = None) -> None:
        """print() that survives a reader who left (`| head`) or a full disk: it asks for a stop instead."""
        with self._print_lock:
            try:
                print(text, file=file or sys.stdout, flush=True)
            except (BrokenPipeError, OSError, ValueError):
                # Point stdout at /dev/null, so that Python's last flush at exit has nowhere to fail.
                with contextlib.suppress(OSError, ValueError):
                    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                self.request("stdout closed")


def leave_now(code: int) -> None:
    """Exit without Python's finalization: sessions are closed and output flushed by now, and a last
    Ctrl-C landing during finalization would otherwise print a traceback instead of exiting `code`."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)
# ---------------------------------------------------------------- end of plumbing


if __name__ == "__main__":
    leave_now(main())
