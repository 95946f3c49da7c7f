"""Challenge 1: leader election with ZooKeeper, and why "exactly one leader" is harder than it looks.

ZooKeeper's recipe, made robust. Each rule, and the function that holds it:
1. Each candidate creates an EPHEMERAL_SEQUENTIAL znode: the growing counter makes a queue, and the
   owner's session takes its node with it when it ends. (_join)
2. The lowest sequence number leads, compared as a number: 10 comes after 9. (election_order)
3. The others watch only the node just before their own (a departure wakes one, not a herd); woken, they
   read the queue again. A predecessor already gone: look again; our node gone: join again. (_check_position)
4. SUSPENDED: stop acting at once. LOST: our session and node are gone: join again. (_on_connection_change)
5. A lease: act only within LEASE_FRACTION of a session timeout, counted from when we SENT the last request
   ZooKeeper answered; it cannot expire the session sooner, so leadership never outlives it. (_renew_lease, is_leader)
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
import json
import logging
import math
import random
import re
import signal
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

try:  # a copy run where kazoo is missing: say what to install, in one line, not a traceback
    from kazoo.client import KazooClient, KazooState
except ImportError as missing:  # not installed, or installed but broken: Python's words, and what to do
    sys.exit(f"error: {missing}; pip install kazoo mmh3 (in the lab: bash start_venv.sh)")
from kazoo.exceptions import ConnectionClosedError, ConnectionLoss, NoNodeError, RolledBackError, SessionExpiredError
from kazoo.handlers.threading import KazooTimeoutError, SequentialThreadingHandler
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
    queue = [c for c in map(parse_candidate, children) if c is not None]  # None: someone else's node, not ours
    return sorted(queue, key=lambda c: c.seq)

# ---------------------------------------------------------------- fencing
@dataclass(frozen=True)
class FencingToken:
    node_path: str  # the leader's election node: the write is valid only while it exists
    epoch: int      # its sequence number: grows from leader to leader, but restarts if the path is remade
    leader: str

def fenced_write(client: KazooClient, token: FencingToken, ledger: str, value: str | bytes,
                 timeout: float | None = None) -> int:
    """Step 6. Write the leader's record to `ledger` in one transaction that commits only if token.node_path
    still exists (check() it at version 0: never modified) and the ledger is as we read it. Never compare epochs
    here: a paused process would compare stale ones; ZooKeeper decides, in order. Each round trip waits at most
    `timeout` (default: the session timeout). Returns the ledger's new version; NotLeaderError if refused."""
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
    # A failed transaction answers each operation: the failed one with its own error, the others RolledBackError.
    if isinstance(check, Exception) and not isinstance(check, RolledBackError):
        node = token.node_path.rsplit("/", 1)[1].split(SEP, 1)[1]  # drop the GUID: name and sequence
        raise NotLeaderError(f"ZooKeeper rejected it: election node ...{node} is gone")
    if isinstance(write, Exception):
        raise NotLeaderError(f"ZooKeeper rejected the write: ledger changed since we read it ({type(write).__name__})")
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
        self.client, self.path, self.name = client, path.rstrip("/"), name
        self.on_change = on_change or (lambda *_: None)  # hears our news: see the class docstring
        # Props to Apache Curator for this trick: a GUID in our node's name finds it after a lost reply to create.
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
        """Step 5. The session's state changed (kazoo's thread: never block). SUSPENDED: stop acting at once.
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
        """Step 7. Our node, made by a create whose reply was lost: (name, owning session) or None: the child
        named with our GUID that our current session owns (an older session's is not ours to keep)."""
        with contextlib.suppress(NoNodeError):  # no election path yet: no node of ours
            for child in self.client.get_children(self.path):
                if child.startswith(self._guid + SEP):
                    stat = self.client.exists(self._node_path(child))
                    if stat is not None and stat.ephemeralOwner == self._session_id():
                        return child, stat.ephemeralOwner
        return None

    def _sync(self) -> None:
        """Step 3 (one line). Make our next read as fresh as ZooKeeper's leader: a sync goes through the leader,
        and a session's requests are answered in order. The read's deadline covers both: don't wait for it."""
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
        self.on_change(self, "joined", found[0])

    def _predecessor_changed(self, event: WatchedEvent) -> None:
        # On kazoo's thread: wake ours, never block. Type NONE is no news: kazoo fires every watch so on SUSPENDED.
        if event.type != EventType.NONE:
            self.on_change(self, "woken", event.path)
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
        self.on_change(self, "elected" if leading else "revoked", why)

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
        self.leave()  # if not done already
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
            except NoNodeError:  # the election path was deleted, and our node with it: stop, and join again
                self._forget_node("the election path is gone")
            except Exception as exc:  # a dead thread would keep our node in line and block everyone behind
                self._set_leader(False, "unexpected error")
                self.on_change(self, "error", f"{type(exc).__name__} {exc}".strip())
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
# Workers, each with a session of its own, elect a leader under chaos: the leader crashes (silent for good: ZooKeeper
# must expire its session), is partitioned or resigns, or a worker joins. The rich demo: ./run.sh leader
CANDIDATES = "/lab/leader-election/candidates"
RUN_ID = uuid.uuid4().hex[:4]  # worker names stay unique when two copies share one election
CONNECT_TIMEOUT, CLOSE_GRACE = 5.0, 1.0  # waits for ZooKeeper: to answer at all; to close, past a session timeout
FIRST_FAULT_AFTER, SAMPLE_EVERY = 2.0, 0.02  # a short run shows a hand-off too; how often is_leader is read

class Link(SequentialThreadingHandler):
    """Kazoo's threading handler with a switch: while `up` is clear, the client's connection waits before each
    select, so not a byte goes to ZooKeeper or comes back, and kazoo cannot notice; ZooKeeper hears nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.up = threading.Event()
        self.up.set()

    def select(self, *args: object, **kwargs: object) -> object:
        self.up.wait()
        return super().select(*args, **kwargs)

class Demo:
    """The chaos, and what the workers (the recipe's LeaderElections) did, sampled from is_leader as they would act
    on it: the figures never come from what the recipe believes of itself."""

    def __init__(self, args: argparse.Namespace, shutdown: Shutdown) -> None:
        self.args, self.shutdown, self.started, self.problem = args, shutdown, time.monotonic(), ""
        self.workers, self.why, self.leading, self.out = [], {}, set(), set()
        self.done, self.crash = threading.Event(), ("", 0.0)  # the last crash (who, when), until a leader acts
        self.figures = dict.fromkeys(["elections", "notified", "departures", "most", "closed"], 0)

    def say(self, who: str, what: str) -> None:
        self.shutdown.print(f"{time.monotonic() - self.started:8.3f}s  {who:<10} {what}")

    def heard(self, worker: LeaderElection, event: str, detail: str) -> None:
        """The recipe's news, on its thread or kazoo's: note it, say it, never block. Who leads is read elsewhere."""
        if self.shutdown.requested.is_set():
            return  # the shutdown's own departures are no news
        self.figures["notified"] += event == "woken"
        if event == "revoked":
            self.why[worker.name] = detail
        elif event != "elected":  # said when the worker acts on it: when its is_leader turns true
            self.say(worker.name, {"joined": "joined the election", "error": f"error in the recipe: {detail}",
                                   "woken": "notified: the candidate just before me left (only I am woken)"}[event])

    def add_worker(self, why: str) -> None:
        """A worker with a session of its own: it connects and joins on a thread, as a learner's start() may hang."""
        client = new_client(self.args.zk, self.args.session_timeout, handler=Link())
        self.workers.append(worker := LeaderElection(client, CANDIDATES, f"w{len(self.workers) + 1}-{RUN_ID}",
                                                     on_change=self.heard))
        self.say(worker.name, why)  # listed before it starts: a Ctrl-C in between must still close it
        def enter() -> None:
            with contextlib.suppress(RuntimeError):  # closed by the shutdown as it connected: it stays out
                if start_client(client, CONNECT_TIMEOUT, self.shutdown.requested):
                    worker.start()
        threading.Thread(target=enter, name=f"enter-{worker.name}", daemon=True).start()

    def run(self) -> None:
        try:
            self.problem = preflight(self.args.zk, self.shutdown.requested)
            if self.problem:
                return self.shutdown.request("no ZooKeeper")
            self.say("demo", f"leader election at {self.args.zk}{CANDIDATES}, session timeout "
                             f"{self.args.session_timeout:g}s; Ctrl-C stops")
            for _ in range(self.args.workers):
                self.add_worker("starts")
            rng, faults = random.Random(self.args.seed), ["crash", "resign", "partition"]
            fault_at = time.monotonic() + min(self.args.interval, FIRST_FAULT_AFTER)
            while not self.shutdown.requested.wait(SAMPLE_EVERY):
                for worker in (w for w in self.workers if w.name not in self.out):
                    if worker.is_leader != (worker.name in self.leading):
                        self.turn(worker)
                self.figures["most"] = max(self.figures["most"], len(self.leading))
                if time.monotonic() >= fault_at:  # the first fault strikes the leader; later ones may add a worker
                    self.chaos(rng.choice(faults))
                    faults, fault_at = [*faults[:3], "join"], time.monotonic() + self.args.interval
        finally:
            self.close()

    def turn(self, worker: LeaderElection) -> None:
        """The worker starts or stops acting as leader: say so, and how long after the crash it followed."""
        why, (crashed, at) = self.why.pop(worker.name, "its lease ran out"), self.crash
        if worker.name in self.leading:
            self.leading.discard(worker.name)
            return self.say(worker.name, f"stops leading: {why}")
        self.leading.add(worker.name)
        self.figures["elections"], self.crash = self.figures["elections"] + 1, ("", 0.0)
        after = f"; {time.monotonic() - at:.2f} s after {crashed} crashed (ZooKeeper had to expire its session)"
        self.say(worker.name, f"ELECTED leader, epoch {worker.epoch}{after if crashed else ''}")

    def chaos(self, action: str) -> None:
        """Strike the leader: crash it, partition it or make it resign; or add a worker."""
        live, timeout = [w for w in self.workers if w.name not in self.out], self.args.session_timeout
        leader = next((w for w in live if w.name in self.leading), None)
        if action == "join" or len(live) < 3 or leader is None:
            return self.add_worker("joins (chaos)")
        self.figures["departures"] += 1
        self.say(leader.name, {"resign": "resigns", "partition": f"PARTITIONED from ZooKeeper for {timeout * 1.5:.1f}s",
                               "crash": f"CRASHES: no goodbye; ZooKeeper waits {timeout:g} s from the last it heard "
                                        "of it, then expires its session"}[action])
        if action != "resign":  # ZooKeeper hears nothing more from it, and expires its session after its timeout
            leader.client.handler.up.clear()
        if action == "partition":  # the worker runs on, unheard, until the link heals
            return threading.Timer(timeout * 1.5, leader.client.handler.up.set).start()
        self.out.add(leader.name)  # it stops acting now, before anyone can be elected
        self.leading.discard(leader.name)
        if action == "resign":
            return leader.leave()
        self.crash = (leader.name, time.monotonic())

    def close(self) -> None:
        """Every delete is asked for before we wait for any, then the links heal: a crashed worker's session has
        expired by then, or closes now. A closed session takes its node with it, so that is what we count."""
        if not self.workers:  # none: ZooKeeper never let us in, and the error line says all
            return self.done.set()
        self.say("demo", f"{self.shutdown.why or 'stop'}; shutting down: every worker resigns and closes its session")
        for worker in self.workers:
            worker.leave()
            worker.client.handler.up.set()
        deadline = time.monotonic() + self.args.session_timeout + CLOSE_GRACE  # one for all
        for worker in self.workers:
            worker.resign(timeout=max(0.0, deadline - time.monotonic()))
            self.figures["closed"] += stop_client(worker.client, max(0.0, deadline - time.monotonic()))
        self.done.set()

    def summary(self) -> str:
        f = self.figures
        return "\n".join(["", "summary (measured from what the workers did)",
                          f"  elections                 {f['elections']}",
                          f"  most leaders at once      {f['most']}  (the rule: never more than 1)",
                          f"  watchers notified         {f['notified']} for {f['departures']} departures",
                          f"  sessions not closed       {len(self.workers) - f['closed']}"])

def preflight(zk: str, stop: threading.Event) -> str:
    """'' if ZooKeeper answers and lets us in; else one line: what is wrong, and what to do."""
    client, chroot = new_client(zk, CONNECT_TIMEOUT), parse_zk(zk)[1]
    try:
        if not start_client(client, CONNECT_TIMEOUT, stop):
            return f"error: cannot reach ZooKeeper at {zk}; start one: `./run.sh zk start` or `docker compose up -d`"
        if client.exists("/") is None:  # a missing chroot: kazoo would make it on the way, and hide a typo
            return (f"error: chroot {chroot} does not exist on ZooKeeper at {zk.partition('/')[0]}; create it or "
                    "drop it from --zk")
        client.ensure_path(CANDIDATES)
        client.get_children(CANDIDATES)
    except Exception as exc:  # NoAuthError (an ACL), or ZooKeeper went away: its name says which
        return (f"error: ZooKeeper refused to create or read {chroot}{CANDIDATES} ({type(exc).__name__}); grant "
                "CREATE and READ on the way, or choose another chroot in --zk")
    finally:
        stop_client(client, 1.0)
    return ""

# ---------------------------------------------------------------- command line
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(allow_abbrev=False, description="Leader election with ZooKeeper, under chaos: "
                                     "the compact demo (./run.sh leader runs the lab's rich one on this script).")
    parser.add_argument("--zk", type=zk_arg, default=os.environ.get("ZK_HOSTS", "127.0.0.1:2181"),
                        help=f"ZooKeeper, {ZK_FORM}; IPv6 in brackets (default: $ZK_HOSTS or 127.0.0.1:2181)")
    parser.add_argument("--workers", type=number_arg(int, 1, 100), default=5, help="candidates, 1-100 (default 5)")
    parser.add_argument("--interval", type=number_arg(float, 0.1, 3600), default=5.0, help="seconds between faults")
    parser.add_argument("--duration", type=number_arg(float, 0, 1e6, above=True), help="seconds (default: Ctrl-C)")
    parser.add_argument("--seed", type=number_arg(int, 0, 999_999), default=None, help="seed for the chaos")
    parser.add_argument("--session-timeout", type=number_arg(float, 0.5, 60), default=4.0, help="seconds (default 4). "
                        "ZooKeeper grants 2 to 20 ticks: 0.5-60 s on the lab's servers, 4-40 s on a stock server")
    parser.error = lambda message: parser.exit(2, f"{parser.prog}: error: {message}; --help says more\n")  # no usage
    return parser.parse_args(argv)

def main(argv: list[str] | None = None) -> int:
    args, shutdown = parse_args(argv), Shutdown()
    logging.getLogger("kazoo").setLevel(logging.CRITICAL + 1)  # kazoo's reconnect chatter would drown the narration
    threading.Thread(target=(demo := Demo(args, shutdown.install())).run, name="demo", daemon=True).start()
    shutdown.requested.wait(args.duration)  # this thread owns the deadline: it never calls the recipe
    shutdown.request("time is up")
    end = time.monotonic() + CONNECT_TIMEOUT + args.session_timeout + CLOSE_GRACE
    while not demo.done.wait(0.05) and time.monotonic() < end:
        if shutdown.hurry.is_set():  # a second signal: stop waiting for ZooKeeper's confirmations
            end = min(end, time.monotonic() + 0.5)
    problem = demo.problem or shutdown.stdout_error and f"error: cannot write to stdout ({shutdown.stdout_error})"
    shutdown.print(problem or demo.summary(), file=sys.stderr if problem else None)
    return 1 if problem else 0

# ---------------------------------------------------------------- plumbing (the same in both scripts)
# Kazoo backs off up to a minute by default: capped, a client is back within 0.5 s of ZooKeeper.
RECONNECT = {"max_tries": -1, "delay": 0.1, "max_delay": 0.5}
# A host name (RFC 1123): dot-separated labels of letters, digits and inner hyphens; IPv4 fits it too.
HOSTNAME = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*")
ZK_FORM = "host:port[,host:port...][/chroot]"
def parse_zk(text: str) -> tuple[list[tuple[str, int]], str]:
    """ZK_FORM as (hosts, chroot); ValueError says what is wrong."""
    hosts, slash, rest = text.strip().partition("/")
    if slash and any(not p or p in (".", "..") or not p.isprintable() for p in rest.split("/")):
        raise ValueError(f"the chroot {slash + rest!r} must be an absolute znode path like /lab, with no empty, "
                         "'.' or '..' part and no trailing '/'")
    return [parse_host(item.strip()) for item in hosts.split(",")], slash + rest
def parse_host(item: str) -> tuple[str, int]:
    """'host[:port]' or '[ipv6][:port]', in ASCII; the port defaults to 2181."""
    match = re.fullmatch(r"(?:\[(.*)\]|([^:\[\]]*))(?::([0-9]{1,5}))?", item)
    if match is None or not 1 <= int(match[3] or 2181) <= 65535:
        raise ValueError(f"{item!r} is not host:port with a port from 1 to 65535 (IPv6 in brackets: [::1]:2181)")
    v6, name, port = match.groups()
    try:
        host = name if v6 is None else ipaddress.IPv6Address(v6).compressed
    except ValueError:
        raise ValueError(f"{item!r}: {v6!r} is not an IPv6 address") from None
    if len(host) > 253 or not (v6 or HOSTNAME.fullmatch(host)):
        raise ValueError(f"{item!r}: {host!r} is neither a host name nor an IPv4 address")
    return host, int(port or 2181)
def zk_arg(text: str) -> str:
    try:
        return parse_zk(text) and text.strip()
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"must be {ZK_FORM}: {exc}") from None
def number_arg(kind: type, low: float, high: float, above: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite `kind` in ASCII digits ("٣" is not 3), within [low, high] ((low, high] if above)."""
    rule = f"above {low:g} and at most {high:g}" if above else f"from {low:g} to {high:g}"
    def check(text: str) -> float:
        with contextlib.suppress(ValueError, OverflowError):
            value = kind(text) if text.isascii() else math.nan
            if math.isfinite(value) and low <= value <= high and (value > low or not above):
                return value
        raise argparse.ArgumentTypeError(f"must be a {'whole' if kind is int else 'finite'} number {rule}, "
                                         f"not {text!r}")
    return check
def new_client(hosts: str, session_timeout: float = 10.0, **kwargs: object) -> KazooClient:
    return KazooClient(hosts=hosts, timeout=session_timeout, connection_retry=dict(RECONNECT), **kwargs)
def start_client(client: KazooClient, timeout: float, stop: threading.Event | None = None) -> bool:
    """Connect within `timeout` or until `stop`; True if connected. (start() may block 10 s more, and warns.)"""
    connected, deadline = client.start_async(), time.monotonic() + timeout
    while not connected.wait(min(0.05, max(0.0, deadline - time.monotonic()))):
        if time.monotonic() >= deadline or (stop is not None and stop.is_set()):
            break
    return client.connected
def stop_client(client: KazooClient, timeout: float) -> bool:
    """Close the session within `timeout` (kazoo's stop() blocks 10 s or more while ZooKeeper is away)."""
    def stop_and_close() -> None:
        with contextlib.suppress(Exception):
            client.stop()
            client.close()
    thread = threading.Thread(target=stop_and_close, name="stop-client", daemon=True)
    thread.start()
    thread.join(max(0.0, timeout))
    return not thread.is_alive()
class Shutdown:
    """Ctrl-C, SIGTERM and a closed stdout, as events. Setting an Event in a signal handler can deadlock, so the
    handlers do nothing: a thread reads the signals from set_wakeup_fd's pipe. A second signal: hurry."""
    def __init__(self) -> None:
        self.requested, self.hurry, self._print_lock = threading.Event(), threading.Event(), threading.Lock()
        self.why = self.stdout_error = ""  # stdout_error: stdout failed for real (a full disk), not a reader who left
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
                self.hurry.set() if self.requested.is_set() else self.request(f"{signal.Signals(signum).name} received")
    def request(self, why: str) -> None:
        self.why = self.why or why
        self.requested.set()
    def print(self, text: str, file: object = None) -> None:
        """print(); if stdout fails, ask for a stop, and keep a real error (not a reader who left) in stdout_error."""
        with self._print_lock:
            try:
                print(text, file=file or sys.stdout, flush=True)
            except (OSError, ValueError) as exc:
                if isinstance(exc, OSError) and not isinstance(exc, BrokenPipeError):
                    self.stdout_error = self.stdout_error or exc.strerror or str(exc)
                with contextlib.suppress(OSError, ValueError):  # Python's last flush at exit: to /dev/null
                    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                self.request("stdout closed")
def leave_now(code: int) -> None:
    """Flush, then exit without finalization, where a last Ctrl-C would print a traceback instead."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)
# ---------------------------------------------------------------- end of plumbing

if __name__ == "__main__":
    leave_now(main())
