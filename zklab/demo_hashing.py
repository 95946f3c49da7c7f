"""The rich consistent-hashing demo: the learner's challenge_consistent_hashing.py, as edited, under chaos.

    python -m zklab.demo_hashing --zk HOSTS [--members N --vnodes N --keys N --show N --interval S
                                             --duration S --seed N --session-timeout S --no-strip
                                             --events FILE -v]

Rules of this demo:
- It drives the script only through its public API (HashRing, RingWatcher and its on_change and
  on_ignored hooks, register_node, members_path, ideal_fraction), so an edit of the recipe shows here
  as it shows in the checker.
- Two routers, each with its own session, follow the members; every change is measured on the rings
  they hold: keys moved against the ideal, the load against each member's fair share, and whether the
  routers agree. Key counts over more than SAMPLE_KEYS keys are a sample, and the line says its error.
- No call into the learner's code runs on the main thread: it owns --duration (counted from the
  start) and the shutdown bound, and a second Ctrl-C or SIGTERM ends the demo within a second.
- A crash is simulated: its session is expired at once, where a real crash waits a session timeout.
"""

from __future__ import annotations

import _signal  # `signal` without its enums, which take a while to load: the guard starts sooner

# ruff: noqa: E402  (the guard below must run before the imports, which take a moment)
import os

if __name__ == "__main__":
    # Ctrl-C or SIGTERM while Python still loads kazoo: nothing to clean up yet, so leave at once, quietly.
    for _sig in (_signal.SIGINT, _signal.SIGTERM):
        _signal.signal(_sig, lambda *_: os._exit(0))

import argparse
import contextlib
import errno
import json
import logging
import math
import random
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import TextIO

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import ConnectionClosedError, KazooException, NoAuthError, NoNodeError, SessionExpiredError
from kazoo.handlers.threading import KazooTimeoutError

from zklab.plumbing import (
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
ROOT = "/lab/consistent-hashing"
CONNECT_TIMEOUT = 5.0  # how long we wait for a connection, or an answer, before we give up on it
STOP_TIMEOUT = 1.5     # kazoo's stop() can wait max(10 s, session timeout) for a server that is gone
# At shutdown we wait at most one session timeout for ZooKeeper to confirm each member's delete, then
# STOP_TIMEOUT for the sessions to close: past that, ZooKeeper's session expiry removes what is left.
# A second Ctrl-C or SIGTERM cuts both waits to HURRY_GRACE.
HURRY_GRACE = 0.5
RUN_ID = uuid.uuid4().hex[:4]  # member names stay unique when two copies of the demo run
NOWHERE = "127.0.0.1:9"  # where a crashed member's client is sent, so it cannot win its session back
# More keys than this are counted on a sample of this many: 20,000 keys put a moved fraction within
# +-0.7 points (95%), and counting them takes tens of milliseconds, so a change never stalls the run.
SAMPLE_KEYS = 20_000
NARRATED_JOINS = 8  # more members than this at the start join in one line, not one change each
SETTLE = 2.0        # how long a change may take to reach the narrating router before the run moves on
BAR_UNIT = 16       # blocks in the bar of a member holding exactly an equal share (1/N of the keys)
BAR_MAX = 4 * BAR_UNIT
STRIP_WIDTH = 80    # columns in the picture of the ring
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
LEGEND_MEMBERS = 8  # members named in a change's first line; the rest are counted
CONNECTION_NEWS = {
    KazooState.SUSPENDED: "! router 0 lost its connection to ZooKeeper: it routes with the ring it holds, "
                          "which goes stale if members change meanwhile",
    KazooState.CONNECTED: "router 0 is connected again: its watches catch up on what changed",
    KazooState.LOST: "! router 0's session expired: it will rebuild from a fresh list of members",
}
SESSION_HELP = ("seconds (default 4). ZooKeeper grants 2 to 20 ticks: 0.5-60 s on the lab's servers "
                "(tick 250 ms, max 60 s), 4-40 s on a stock server")


# ---------------------------------------------------------------- what the learner sees

def visible(line: str) -> str:
    """`line` with what a terminal would not show as itself escaped: a member's name is anyone's, and one
    holding U+202E (right-to-left override) or a newline would garble the line it is printed in."""
    return line if line.isprintable() else "".join(c if c.isprintable() else ascii(c)[1:-1] for c in line)


class ScriptLog(logging.Handler):
    """The script's warnings, said once in the demo's output: a member kept off the ring is already said by
    on_ignored (not once per router on stderr as well); anything else, such as a failed rebuild, is a line."""

    def __init__(self, out: Output) -> None:
        super().__init__(logging.WARNING)
        self.out = out

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):  # a log line must never take the demo down
            if "is not on the ring" not in (message := record.getMessage()):
                self.out.say(message)


class Output:
    """The console (one line per event, time on each) and the --events log; neither raises into the demo."""

    def __init__(self, shutdown: Shutdown, events: TextIO | None):
        self.shutdown, self.events, self.started = shutdown, events, time.monotonic()
        self.unicode = (getattr(sys.stdout, "encoding", "") or "").lower().replace("-", "") == "utf8"
        self.arrow, self.block = ("\u2192", "\u2588") if self.unicode else ("->", "#")
        self.lock = threading.Lock()
        self.lost: OSError | None = None  # why stdout stopped taking our lines, if it did

    def say(self, text: str) -> None:
        self.write(f"{time.monotonic() - self.started:8.3f}s  {visible(text)}")

    def lines(self, lines: list[str]) -> None:
        self.write("\n".join(" " * 11 + visible(line) for line in lines))

    def write(self, text: str) -> None:
        """print(), but a stdout that refuses (`| head` gone, /dev/full) asks for a clean stop instead."""
        with self.lock:
            if self.lost:
                return
            try:
                print(text, flush=True)
            except (OSError, ValueError) as exc:
                self.lost = exc if isinstance(exc, OSError) else OSError(errno.EPIPE, "stdout is closed")
                with contextlib.suppress(OSError, ValueError):  # Python's last flush must not fail again
                    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        if self.lost:
            self.shutdown.request("stdout closed")

    def event(self, event: str, **fields: object) -> None:
        """One JSON line in the --events file; a full disk is said once, and the demo goes on without it."""
        if self.events is None:
            return
        line = json.dumps({"t": time.monotonic(), "pid": os.getpid(), "run": RUN_ID, "event": event, **fields})
        with self.lock:
            try:
                self.events.write(line + "\n")
                self.events.flush()
            except (OSError, ValueError) as exc:
                self.events = None
                self.shutdown.print(f"warning: --events: cannot write ({getattr(exc, 'strerror', None) or exc}); "
                                    "the demo goes on without the log", file=sys.stderr)


def ring_strip(ring: object, letters: Mapping[str, str], width: int = STRIP_WIDTH) -> str:
    """The ring as `width` columns, 0 to 2**128 left to right; a column shows who owns its middle."""
    if not len(ring):
        return "." * width
    return "".join(letters.get(ring.owner_at((2 * c + 1) * 2**128 // (2 * width)), "?") for c in range(width))


def strip_changes(before: str, after: str) -> str:
    """A ^ under every column whose owner changed."""
    return "".join("^" if b != a else " " for b, a in zip(before, after, strict=True)).rstrip()


def _label(name: str, weight: float) -> str:
    return name if weight == 1 else f"{name}(x{weight:g})"


def sample_error(fraction: float, sampled: int, total: int) -> str:
    """'' when every key was counted, else the 95% margin of a fraction measured on a sample."""
    if sampled >= total:
        return ""
    margin = 1.96 * math.sqrt(max(fraction * (1 - fraction), 1 / sampled) / sampled)
    return f", counted on a sample of {sampled:,}: +-{margin:.1%}"


class Report:
    """What the learner sees on each change: membership, the ring, moved keys, load, router agreement."""

    def __init__(self, out: Output, script: ModuleType, args: argparse.Namespace, routers: list[object]):
        self.out, self.script, self.args, self.routers = out, script, args, routers
        self.keys = [f"key:{i}" for i in range(min(args.keys, SAMPLE_KEYS))]
        self.changes: list[tuple[float, float]] = []   # (moved, ideal)
        self.worst_balance = 0.0
        self.agreed = self.disagreed = self.overlapped = 0
        self.muted = False    # no narration: the first members' bulk join, and the shutdown
        self.closing = False  # the shutdown: routers stop one by one, and what they hold no longer serves anyone
        self._owners_cache: tuple[str, list[str]] = ("", [])
        self._seen = threading.Condition()
        self._held: dict[int, dict[str, float]] = {}   # router -> fingerprint -> when it last swapped to it
        self._last_narrated: str | None = None
        self.letters: dict[str, str] = {}   # member -> its letter in the strips, for the whole run

    # -- every router's swaps and refusals (from its rebuild thread)

    def ring_swapped(self, router: int, ring: object) -> None:
        if self.closing:
            return
        self.out.event("ring", router=router, fingerprint=ring.fingerprint, members=ring.nodes)
        with self._seen:
            self._held.setdefault(router, {})[ring.fingerprint] = time.monotonic()
            self._seen.notify_all()

    def ignored(self, router: int, name: str, why: str) -> None:
        self.out.event("ignored", router=router, member=name, why=why)
        if router == 0:
            self.out.say(f"ignored {name}: {why}; it stays off the ring")

    # -- the narration, by router 0

    def ring_changed(self, old: object, new: object) -> None:
        since = self._held.get(0, {}).get(old.fingerprint, 0.0)  # when this router took the old ring
        self.ring_swapped(0, new)
        if self.muted:
            return self._narrated(new)
        before, after = self._owners_of(old), self._owners_of(new)
        lines = self._members(old, new)
        if self.args.strip:
            lines += self._strips(old, new)
        if after:
            lines.append(self._movement(old, new, before, after) + self._balance(new, after))
            lines += self._moved_keys(before, after) + (self._load(new, after) if self.args.verbose else [])
        self.out.lines(lines)
        self._check_agreement(new.fingerprint, since)
        self._narrated(new)

    def _narrated(self, ring: object) -> None:
        with self._seen:
            self._last_narrated = ring.fingerprint
            self._seen.notify_all()

    def wait_narrated(self, fingerprint: str, timeout: float) -> None:
        """Let the narrating router finish telling a change before the next one happens."""
        with self._seen:
            self._seen.wait_for(lambda: self._last_narrated == fingerprint, timeout)

    def _owners_of(self, ring: object) -> list[str] | None:
        """Every sampled key's owner on `ring`; the previous change's new ring is this one's old ring."""
        if not len(ring):
            return None
        if self._owners_cache[0] != ring.fingerprint:
            self._owners_cache = (ring.fingerprint, [ring.owner(k) for k in self.keys])
        return self._owners_cache[1]

    def _members(self, old: object, new: object) -> list[str]:
        """The first line: the members (some of them, when many), lettered as in the strip."""
        self._letter(set(old.nodes) | set(new.nodes))
        weights = new.weights
        named = [f"{self.letters[n]}={_label(n, weights[n])}" if self.args.strip else _label(n, weights[n])
                 for n in sorted(weights)[:LEGEND_MEMBERS]]
        more = f" and {len(weights) - LEGEND_MEMBERS} more" if len(weights) > LEGEND_MEMBERS else ""
        return [f"members ({len(new)}): " + " ".join(named) + more]

    def _letter(self, present: set[str]) -> None:
        """A member keeps its letter for the run, and a leaver's letter goes to no joiner while another is free:
        so one change's 'after' strip reads as the next change's 'before'. Letters run out: '?'."""
        for name in sorted(present - set(self.letters)):
            if len(self.letters) >= len(LETTERS):  # take back the letters of members that are gone
                self.letters = {n: c for n, c in self.letters.items() if n in present}
            used = set(self.letters.values())
            self.letters[name] = next((c for c in LETTERS if c not in used), "?")

    def _strips(self, old: object, new: object) -> list[str]:
        before, after = ring_strip(old, self.letters), ring_strip(new, self.letters)
        marks = strip_changes(before, after) or "(no column changed owner)"
        return [f"  before |{before}|  the ring, 0 to 2^128, 1/{STRIP_WIDTH} a column: who owns its middle",
                f"  after  |{after}|", f"          {marks}"]

    def _movement(self, old: object, new: object, before: list[str] | None, after: list[str]) -> str:
        if not before:
            return "the first members: every key goes to them"
        moved = sum(a != b for a, b in zip(before, after, strict=True)) / len(self.keys)
        ideal = self.script.ideal_fraction(old.weights, new.weights)
        self.changes.append((moved, ideal))
        return (f"moved {moved:6.2%} of {self.args.keys:,} keys (ideal {ideal:6.2%}: the changed member's share"
                f"{sample_error(moved, len(self.keys), self.args.keys)})")

    def _balance(self, ring: object, owners: list[str]) -> str:
        """Each member's keys against its fair share (keys x weight / total weight); the busiest one's ratio."""
        counts, total = Counter(owners), sum(ring.weights.values())
        balance = max(counts[n] * total / (len(owners) * w) for n, w in ring.weights.items())
        self.worst_balance = max(self.worst_balance, balance)
        return f"; load max/mean {balance:.3f}"

    def _moved_keys(self, before: list[str] | None, after: list[str]) -> list[str]:
        moved = [i for i, (a, b) in enumerate(zip(before or after, after, strict=True)) if a != b]
        return [f"  {self.keys[i]}: {before[i]} {self.out.arrow} {after[i]}" for i in moved[:self.args.show]]

    def _load(self, ring: object, owners: list[str]) -> list[str]:
        """Bars to one scale (an equal share, 1/N of the keys), so weight 3 shows as 3x weight 1."""
        counts, total_weight, equal = Counter(owners), sum(ring.weights.values()), len(owners) / len(ring)
        fair = {n: len(owners) * w / total_weight for n, w in ring.weights.items()}
        lines = [f"load (a bar of {BAR_UNIT} is an equal share, 1/{len(ring)} of the keys):",
                 f"  {'member':<12} {'weight':>6} {'keys':>8} {'fair share':>10}"]
        for name in ring.nodes:
            blocks = round(BAR_UNIT * counts[name] / equal)
            bar = self.out.block * min(BAR_MAX, blocks) + ("+" if blocks > BAR_MAX else "")
            lines.append(f"  {name:<12} {ring.weights[name]:>6g} {counts[name]:>8,} {fair[name]:>10,.0f}  {bar}")
        return lines

    def _check_agreement(self, fingerprint: str, since: float) -> None:
        """Did every other router reach this ring (since this one took the previous one)? Give it a second."""
        asked = time.monotonic()
        with self._seen:
            reached = self._seen.wait_for(lambda: all(
                self._held.get(i, {}).get(fingerprint, -1.0) >= since for i in range(len(self.routers))), 1.0)
        if reached:
            self.agreed += 1
            lag = max(self._held[i][fingerprint] for i in range(len(self.routers))) - self._held[0][fingerprint]
            self.out.say(f"routers agree: yes, fingerprint {fingerprint} " + (
                f"(the other router got there {lag * 1000:.1f} ms after this one)" if lag > 0 else
                "(the other router got there first)"))
        elif self.routers[0].pending:
            self.overlapped += 1
            self.out.say("routers agree: not checked, another change overlapped this one (the next check covers it)")
        else:
            self.disagreed += 1
            self.out.say(f"routers agree: NO, {[r.fingerprint for r in self.routers]} after "
                         f"{(time.monotonic() - asked) * 1000:.0f} ms")


# ---------------------------------------------------------------- members, and how they leave

class Member:
    """A storage node: its own session, an ephemeral znode, registered again after a lost session."""

    def __init__(self, demo: Demo, name: str):
        self.demo, self.name, self.path = demo, name, f"{demo.script.members_path(ROOT)}/{name}"
        self.client = new_client(demo.args.zk, demo.args.session_timeout)
        self.crashed = False
        self._lost = threading.Event()

    def start(self, timeout: float) -> None:
        if not start_client(self.client, timeout, self.demo.shutdown.requested):
            raise KazooTimeoutError(f"no connection within {timeout:.1f} s")
        self.client.add_listener(self._on_state)
        self.demo.script.register_node(self.client, ROOT, self.name, timeout=timeout)

    def _on_state(self, state: str) -> None:  # kazoo's thread: only set flags and hand work on
        if state == KazooState.LOST:
            self._lost.set()
        elif state == KazooState.CONNECTED and self._lost.is_set() and not self.crashed:
            self._lost.clear()
            self.client.handler.spawn(self._reregister)

    def _reregister(self) -> None:
        self.demo.out.say(f"! {self.name} lost its session (ZooKeeper expired it); it registers again")
        try:
            self.demo.script.register_node(self.client, ROOT, self.name, timeout=CONNECT_TIMEOUT)
        except (KazooException, KazooTimeoutError) as exc:
            self.demo.out.say(f"! {self.name} could not register again ({type(exc).__name__})")

    def delete(self, deadline: float, hurry: threading.Event) -> bool:
        """Delete the znode, through reconnects, until `deadline`; True once it is surely gone."""
        while True:
            try:
                self.client.delete_async(self.path).get(timeout=max(0.05, min(0.5, deadline - time.monotonic())))
                return True
            except (NoNodeError, SessionExpiredError):
                return True  # gone already, or with its expired session
            except ConnectionClosedError:
                return False  # this client was stopped: not ours to delete any more
            except (KazooException, KazooTimeoutError):
                if time.monotonic() >= deadline or hurry.wait(0.1):
                    return False

    def crash(self, timeout: float) -> None:
        """Die without a goodbye: the session ends from outside, as ZooKeeper's expiry would end it."""
        self.crashed = True
        session = self.client.client_id
        self.client.set_hosts(NOWHERE + parse_zk(self.demo.args.zk)[1])  # its reconnects go nowhere
        twin = new_client(self.demo.args.zk, client_id=session)  # the same session, taken over and closed
        start_client(twin, timeout)
        stop_client(twin, STOP_TIMEOUT)
        stop_client(self.client, STOP_TIMEOUT)


# ---------------------------------------------------------------- the chaos run

class Demo:
    def __init__(self, args: argparse.Namespace, shutdown: Shutdown, events: TextIO | None, script: ModuleType):
        self.args, self.shutdown, self.script = args, shutdown, script
        self.out = Output(shutdown, events)
        self.ends = self.out.started + (args.duration or math.inf)  # --duration counts from the start
        self.routers: list[object] = []
        self.report = Report(self.out, script, args, self.routers)
        self.members: list[Member] = []
        self.clients: list[KazooClient] = []   # every session this demo opened, to close at the end
        self.rng = random.Random(args.seed)
        self.plan = ["join", "depart"]  # the first two changes: even a 10 s run shows both lessons
        self.joined = 0
        self.lock = threading.Lock()
        self.problem: str | None = None

    def left(self) -> float:
        return max(0.1, min(CONNECT_TIMEOUT, self.ends - time.monotonic()))

    def run(self) -> None:
        """The demo's own thread: every call into the learner's code happens here, never on the main thread."""
        try:
            self.start_routers()
            self.start_members()
            while not self.shutdown.requested.wait(max(0.0, min(self.args.interval, self.ends - time.monotonic()))):
                if time.monotonic() >= self.ends:
                    break
                self.chaos()
        except NoAuthError:
            self.problem = f"error: ZooKeeper denies the demo access under {ROOT} (the nodes' ACL)"
        except TimeoutError as exc:  # the script's own wait (RingWatcher.wait_for), not ZooKeeper's
            if not self.shutdown.requested.is_set():
                self.out.say(f"stopped: the script's router did not get there in time ({exc})")
        except (KazooException, KazooTimeoutError) as exc:
            if not self.shutdown.requested.is_set():
                self.out.say(f"stopped: ZooKeeper stopped answering ({type(exc).__name__})")
        except Exception as exc:  # the learner's code raised: one line, then the clean-up
            self.problem = f"error: the script raised {type(exc).__name__}: {exc}"
        self.shutdown.request("done")

    def start_routers(self) -> None:
        for i in range(2):
            client = new_client(self.args.zk, self.args.session_timeout)
            self.clients.append(client)
            if not start_client(client, self.left(), self.shutdown.requested):
                raise KazooTimeoutError("a router could not connect")
            # Router 0 narrates every change; router 1 only records what it holds.
            narrate = self.report.ring_changed if i == 0 else (lambda old, new, i=i: self.report.ring_swapped(i, new))
            self.routers.append(self.script.RingWatcher(
                client, ROOT, self.args.vnodes, on_change=narrate, timeout=self.left(),
                on_ignored=lambda name, why, i=i: self.report.ignored(i, name, why)))
            self.report.ring_swapped(i, self.routers[-1].ring)
        self.clients[0].add_listener(self._router_connection)

    def _router_connection(self, state: str) -> None:
        """Narrate router 0's connection (kazoo's thread: hand the printing on)."""
        if not self.report.muted:
            self.clients[0].handler.spawn(self.out.say, CONNECTION_NEWS[state])

    def start_members(self) -> None:
        """The first members; many join in one line, and the routers' narration starts with the whole ring."""
        if self.args.members <= NARRATED_JOINS:
            for _ in range(self.args.members):
                self.add_member()
            return
        self.report.muted = True
        names: list[str | None] = [None] * self.args.members
        joining = [threading.Thread(target=lambda i=i: names.__setitem__(i, self.add_member(settle=False)),
                                    daemon=True) for i in range(self.args.members)]
        for thread in joining:  # all at once: the routers then rebuild a few times, not once per member
            thread.start()
        for thread in joining:
            thread.join(max(0.0, min(CONNECT_TIMEOUT, self.ends - time.monotonic())))
        if self.shutdown.requested.is_set() or time.monotonic() >= self.ends:
            return
        joined = [n for n in names if n]
        self.out.say(f"+ {len(joined)} members join: {joined[0] if joined else ''} .. {joined[-1] if joined else ''}")
        ring = self.settle(lambda ring: all(n in ring for n in joined))
        self.report.muted = False
        if ring is not None:
            self.report.ring_changed(self.script.HashRing(self.args.vnodes), ring)

    def add_member(self, settle: bool = True) -> str | None:
        with self.lock:  # members may join from several threads at once
            self.joined += 1
            member = Member(self, f"m{self.joined}-{RUN_ID}")
        self.members.append(member)  # listed before it starts: the clean-up must close it whatever happens
        self.clients.append(member.client)
        if settle:
            self.out.say(f"+ {member.name} joins")
        try:
            member.start(self.left())
        except (KazooTimeoutError, KazooException, TimeoutError) as exc:
            self.out.say(f"  {member.name} could not register ({type(exc).__name__}); it stays out")
            self.members.remove(member)
            return None
        if settle:
            self.settle(lambda ring: member.name in ring)
        return member.name

    def chaos(self) -> None:
        action = self.plan.pop(0) if self.plan else self.rng.choice(["join", "depart"])
        if action == "join" or len(self.members) <= 2:
            self.add_member()
            return
        member = self.rng.choice(self.members)
        self.members.remove(member)
        if self.rng.random() < 0.5:
            self.out.say(f"- {member.name} leaves cleanly (deletes its znode)")
            member.delete(time.monotonic() + self.left(), self.shutdown.hurry)
        else:
            self.out.say(f"x {member.name} crashes: its session is expired at once, where a real crash waits "
                         "one session timeout")
            member.crash(self.left())
        stop_client(member.client, STOP_TIMEOUT)
        self.settle(lambda ring: member.name not in ring)

    def settle(self, predicate: Callable[[object], bool]) -> object | None:
        """Wait until the narrating router holds the change and has told it; the ring, or None."""
        try:
            ring = self.routers[0].wait_for(predicate, timeout=min(SETTLE, self.left()))
        except TimeoutError:
            return None
        self.report.wait_narrated(ring.fingerprint, timeout=min(3.0, self.left()))
        return ring

    def close(self) -> list[str]:
        """Members delete their znodes (for at most a session timeout), then every session closes.
        Returns the znodes it could not confirm gone: their sessions' expiry removes them."""
        self.report.muted = self.report.closing = True  # the shutdown is not a lesson
        hurry, members = self.shutdown.hurry, list(self.members)
        deadline = time.monotonic() + self.args.session_timeout
        gone: list[str] = []
        for member in members:
            threading.Thread(target=lambda m=member: m.delete(deadline, hurry) and gone.append(m.path),
                             daemon=True).start()
        while len(gone) < len(members) and time.monotonic() < deadline and not hurry.wait(0.02):
            pass
        for router in self.routers:  # the learner's code: off this thread, and not waited for long
            threading.Thread(target=router.close, daemon=True).start()
        stop_all(self.clients, HURRY_GRACE if hurry.is_set() else STOP_TIMEOUT, hurry)
        return sorted(m.path for m in members if m.path not in gone)

    def summary(self) -> str:
        r = self.report
        ratios = [moved / ideal for moved, ideal in r.changes if ideal]
        skipped = f" ({r.overlapped} skipped: a second change overlapped)" if r.overlapped else ""
        return "\n".join([
            "", "summary",
            f"  membership changes seen   {len(r.changes)}",
            f"  keys moved / ideal        mean {sum(ratios) / len(ratios):.2f}x, worst {max(ratios):.2f}x"
            if ratios else "  keys moved / ideal        n/a",
            f"  worst load max/mean       {r.worst_balance:.3f}",
            f"  routers agreed            {r.agreed} of {r.agreed + r.disagreed} checks{skipped}",
        ])


def stop_all(clients: list[KazooClient], timeout: float, hurry: threading.Event) -> None:
    """Close every session in parallel, within `timeout` (HURRY_GRACE once hurried)."""
    for client in clients:
        stop_client(client, 0)  # starts the stop on a thread of its own
    deadline = time.monotonic() + timeout
    while any(c.connected for c in clients) and time.monotonic() < deadline and not hurry.wait(0.02):
        pass


# ---------------------------------------------------------------- ZooKeeper, before the demo starts

def check_zookeeper(zk: str, stop: threading.Event, duration: float | None = None) -> str | None:
    """None if ZooKeeper answers within CONNECT_TIMEOUT (and --duration), has our chroot and lets us in; else
    one line."""
    hosts, chroot = zk.partition("/")[0], parse_zk(zk)[1]
    client = new_client(hosts, CONNECT_TIMEOUT)
    try:
        if not start_client(client, min(CONNECT_TIMEOUT, duration or CONNECT_TIMEOUT), stop):
            when = " before --duration ran out" if duration and duration < CONNECT_TIMEOUT else ""
            return None if stop.is_set() else (
                f"error: cannot reach ZooKeeper at {hosts}{when}; start one: `./run.sh zk start` "
                "or `docker compose up -d`")
        if chroot and client.exists_async(chroot).get(timeout=CONNECT_TIMEOUT) is None:
            return (f"error: chroot {chroot} does not exist on ZooKeeper at {hosts}; "
                    f"create it with: {chroot_hint(zk)}; or drop {chroot} from --zk")
        return access_problem(client, chroot + ROOT + "/members")
    except (KazooException, KazooTimeoutError) as exc:
        return f"error: ZooKeeper at {hosts} stopped answering ({type(exc).__name__})"
    finally:
        stop_client(client, 1.0)


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
            return f"error: ZooKeeper denies the demo {need} (the node's ACL); grant it, or pick another chroot in --zk"
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
    parser = argparse.ArgumentParser(prog="./run.sh hashing", description="Consistent hashing over ZooKeeper "
                                     "membership, under chaos: the rich demo of challenge_consistent_hashing.py, "
                                     "as you edited it.", allow_abbrev=False)
    parser.add_argument("--zk", type=zk_arg, default=os.environ.get("ZK_HOSTS", "127.0.0.1:2181"),
                        help=f"ZooKeeper connection string, {ZK_FORM} (default: $ZK_HOSTS or 127.0.0.1:2181)")
    parser.add_argument("--members", type=number_arg(int, 1, 100), default=4,
                        help=f"members at start, 1-100 (default 4; more than {NARRATED_JOINS} join in one line)")
    parser.add_argument("--vnodes", type=number_arg(int, 1, 1000), default=160, help="points per member (160)")
    parser.add_argument("--keys", type=number_arg(int, 1, 1_000_000), default=100_000,
                        help=f"keys for the statistics (default 100,000; more than {SAMPLE_KEYS:,} are sampled)")
    parser.add_argument("--show", type=number_arg(int, 0, 1000), default=0, help="moved keys to print (default 0)")
    parser.add_argument("--interval", type=number_arg(float, 0.1, 3600), default=3.0,
                        help="seconds between chaos events (default 3)")
    parser.add_argument("--duration", type=number_arg(float, 0, 1e6, above=True), default=None,
                        help="seconds to run, from the start (default: until Ctrl-C); the shutdown then takes "
                             "at most the session timeout + 2 s")
    parser.add_argument("--seed", type=number_arg(int, 0, 999_999), default=None, help="seed for the chaos driver")
    parser.add_argument("--session-timeout", type=number_arg(float, 0.5, 60), default=4.0, help=SESSION_HELP)
    parser.add_argument("--no-strip", dest="strip", action="store_false", help="do not draw the ring's strip")
    parser.add_argument("--events", type=events_path, default=None, metavar="FILE",
                        help="append one JSON line per event (start, ring, ignored, exit) to FILE")
    parser.add_argument("-v", "--verbose", action="store_true", help="print the load table on every change")
    return parser.parse_args(argv)


def open_events(path: str | None) -> TextIO | None:
    if path is None:
        return None
    try:
        return open(path, "a", encoding="utf-8")  # noqa: SIM115 (open for the whole run)
    except OSError as exc:
        print(f"error: --events: cannot append to {path}: {exc.strerror}", file=sys.stderr)
        raise SystemExit(2) from None


def finish(demo: Demo) -> int:
    """The clean-up, on the main thread: bounded, whatever the learner's code is doing meanwhile."""
    demo.out.say("shutting down: members leave, routers stop, sessions close")
    left = demo.close()
    for path in left:
        demo.out.say(f"left behind: {path} (ZooKeeper did not answer; its session's expiry removes it)")
    demo.out.event("exit", clean=not left, left=left)
    if demo.problem:
        print(demo.problem, file=sys.stderr)
        return 1
    if demo.out.lost and demo.out.lost.errno != errno.EPIPE:  # a reader that left (`| head`) wanted no more
        print(f"error: cannot write to stdout ({demo.out.lost.strerror}); the demo stopped and cleaned up",
              file=sys.stderr)
        return 1
    demo.out.write(demo.summary())
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.getLogger("kazoo").addHandler(logging.NullHandler())
    logging.getLogger("kazoo").propagate = False  # kazoo's reconnect chatter would drown the report
    shutdown = Shutdown().install()
    if problem := check_zookeeper(args.zk, shutdown.requested, args.duration):
        print(problem, file=sys.stderr)
        return 1
    if shutdown.requested.is_set():
        return 0
    script = load_script(REPO / "challenge_consistent_hashing.py", CONNECT_TIMEOUT)  # its top level: bounded
    if isinstance(script, str):
        print(script, file=sys.stderr)
        return 1
    demo = Demo(args, shutdown, open_events(args.events), script)
    script_log = logging.getLogger(script.__name__)  # the script logs as `logging.getLogger(__name__)`
    script_log.addHandler(ScriptLog(demo.out))
    script_log.propagate = False
    demo.out.event("start", session_timeout=args.session_timeout)
    demo.out.write(f"consistent hashing over {args.zk}{ROOT}/members: {args.vnodes} vnodes, "
                   f"{args.keys:,} keys; Ctrl-C stops")
    threading.Thread(target=demo.run, name="demo", daemon=True).start()
    # This thread owns the time: it never calls the learner's code, so nothing there can hold it.
    shutdown.requested.wait(None if args.duration is None else max(0.0, demo.ends - time.monotonic()))
    if "received" in shutdown.why:
        demo.out.say(f"interrupted ({shutdown.why})")
    shutdown.request("time is up")
    return finish(demo)


if __name__ == "__main__":
    leave_now(main())
