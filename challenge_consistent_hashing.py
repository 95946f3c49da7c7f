"""Challenge 2: consistent hashing, with membership kept in ZooKeeper.

Members register as ephemeral znodes; every router watches the member list and rebuilds its own hash
ring from it. Routing must agree across processes, move few keys when membership changes, and spread
the load evenly. The rules that make it so:

- Hash with mmh3 and a fixed seed, never Python's hash(): that is salted per process
  (PYTHONHASHSEED), so two routers would disagree about every key.
- Use 128-bit points. 10,000 slots collide after about 120 members (the birthday bound); 2**128 never do.
- Give each member many points (virtual nodes), scaled by its weight. One point per member leaves
  arcs of wildly different lengths: with 10 members, the largest share is about 3x the mean.
- Keep points as integers, sorted numerically: as strings, "10" sorts before "9".
- Break ties between equal points by member name, so the ring never depends on the order of joins.
- Find a key's owner by binary search: the first point at or after the key's hash, wrapping around.
- Trust no member's data: anyone can write a znode. A weight outside MIN_WEIGHT..MAX_WEIGHT, or data
  that is not ours, keeps that member off the ring (with one warning), and the ring never grows past
  MAX_POINTS points: one znode saying {"weight": 1e9} must not cost every router its memory.
- Members must be ephemeral: a persistent member znode (say, `create` without -e in zkCli.sh) outlives
  its member, so keys would go to it forever. It stays off the ring, with one warning, like bad data.

Then, when a member joins, keys move only to it, and only about 1/N of them; when one leaves, only its
own keys move. The demo prints exactly that, measured, next to the ideal.
"""

from __future__ import annotations

import sys

if __name__ == "__main__":  # Ctrl-C or SIGTERM while Python loads kazoo: nothing to clean up yet, exit quietly.
    import _signal  # `signal`'s C core, already loaded: importing `signal` itself is slow enough to be hit

    _signal.signal(_signal.SIGINT, lambda *_: sys.exit(0))
    _signal.signal(_signal.SIGTERM, lambda *_: sys.exit(0))

import argparse
import bisect
import contextlib
import hashlib
import json
import logging
import os
import random
import re
import signal
import threading
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Mapping

import mmh3
from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import ConnectionClosedError, KazooException, NoNodeError, SessionExpiredError
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.recipe.watchers import ChildrenWatch

# A fixed seed: every process, on every machine, puts every key and member at the same place.
SEED = 0x5EED
# Points per unit of weight. More points balance better and cost memory: 160 is ketama's choice
# and keeps the largest share within about 10% of the mean for 10 members.
DEFAULT_VNODES = 160
# The weights a member may claim. Below 0.01 a member gets one or two points and its share is noise
# (a weight of 1e-9 made the busiest member's load read 11,200,000x its fair share); above 100 one
# member outweighs a hundred others, which is a misconfiguration, not a member.
MIN_WEIGHT, MAX_WEIGHT = 0.01, 100
# A cap on the whole ring. A point costs about 120 bytes of a router's memory (a 128-bit int, a slot in
# two lists, and what building them leaves behind): a million points is about 120 MB per router, and the
# demo runs two in one process. That is room for 6,250 members of weight 1 with 160 vnodes; without a cap,
# one znode saying {"weight": 1e9} asked for 1.6 x 10**11 points and the kernel killed the router at 24 GB.
MAX_POINTS = 1_000_000
# Our member data is {"weight": 2.5}: a few bytes. Reading more than this is not worth a router's time.
MAX_DATA_BYTES = 1024
# Why a persistent member znode stays off the ring: nothing would ever remove it.
NOT_EPHEMERAL = "not ephemeral: a member must vanish with its session"
# Each add or remove copies the point list once; for more changes than this, one sort is cheaper.
REBUILD_WHOLE_AFTER = 8
Key = str | bytes
log = logging.getLogger(__name__)


def point(label: Key) -> int:
    """A position on the ring: an unsigned 128-bit MurmurHash3."""
    return mmh3.hash128(label, SEED)


def check_weight(weight: object) -> float:
    """`weight` if it is a number within MIN_WEIGHT..MAX_WEIGHT, else ValueError saying why not."""
    if isinstance(weight, bool) or not isinstance(weight, (int, float)):
        raise ValueError(f"weight {weight!r} is not a number")
    if not MIN_WEIGHT <= weight <= MAX_WEIGHT:  # also false for nan and inf
        raise ValueError(f"weight {_number(weight)} is outside {MIN_WEIGHT:g}..{MAX_WEIGHT:g}")
    return weight


def _number(value: float) -> str:
    """1e9 as 1e9, not 1e+09; an integer too big for a float as its digit count."""
    try:
        return re.sub(r"e([+-])0*(\d)", lambda m: f"e{m[1].replace('+', '')}{m[2]}", f"{value:g}")
    except OverflowError:
        return f"of {len(str(abs(value)))} digits"


# ---------------------------------------------------------------- the ring

class HashRing:
    """Members placed on a ring of 2**128 positions, `vnodes` points per unit of weight."""

    def __init__(self, vnodes: int = DEFAULT_VNODES, nodes: Iterable[str] | Mapping[str, float] | None = None):
        if isinstance(vnodes, bool) or not isinstance(vnodes, int) or not 1 <= vnodes <= MAX_POINTS:
            raise ValueError(f"vnodes must be a whole number from 1 to {MAX_POINTS:,}, not {vnodes!r}")
        self.vnodes = vnodes
        self._weights: dict[str, float] = {}
        self._points: list[int] = []   # sorted by (point, owner)
        self._owners: list[str] = []   # _owners[i] owns the arc that ends at _points[i]
        items = nodes.items() if isinstance(nodes, Mapping) else ((n, 1) for n in nodes or ())
        weights = {node: check_weight(weight) for node, weight in items}
        self._check_room(sum(self.points_for(w) for w in weights.values()))
        self._weights = weights
        self._place_all()

    # -- membership

    def points_for(self, weight: float) -> int:
        """How many points a member of this weight gets: at least one."""
        return max(1, round(self.vnodes * check_weight(weight)))

    def add(self, node: str, weight: float = 1) -> None:
        """Place a member (again, if its weight changed). A bad weight changes nothing: ValueError."""
        count = self.points_for(weight)
        old = self.points_for(self._weights[node]) if node in self._weights else 0
        self._check_room(len(self._points) - old + count)
        entries = sorted((p, node) for p in self._node_points(node, count))  # hashed before any change
        if node in self._weights:
            self.remove(node)
        self._weights[node] = weight
        self._insert(entries)

    def remove(self, node: str) -> None:
        if node not in self._weights:
            raise KeyError(f"{node!r} is not on the ring")
        doomed = []
        # A member may hold one position twice (a hash collision): its copies sit side by side.
        for p, copies in Counter(self._node_points(node, self.points_for(self._weights[node]))).items():
            first = self._index_of(p, node)
            doomed += range(first, first + copies)
        points, owners, start = [], [], 0
        for i in sorted(doomed):  # keep the slices between the doomed points: copied in C, O(n)
            points += self._points[start:i]
            owners += self._owners[start:i]
            start = i + 1
        self._points, self._owners = points + self._points[start:], owners + self._owners[start:]
        del self._weights[node]

    def _check_room(self, total: int) -> None:
        if total > MAX_POINTS:
            raise ValueError(f"the ring would hold {total:,} points, more than MAX_POINTS ({MAX_POINTS:,})")

    def _place_all(self) -> None:
        """Place every member at once: one sort, instead of one merge per member."""
        entries = [(p, node) for node, w in self._weights.items() for p in self._node_points(node, self.points_for(w))]
        owner_of = dict(entries)
        if len(owner_of) == len(entries):  # no two points equal: sorting the integers is enough
            self._points = sorted(owner_of)
            self._owners = [owner_of[p] for p in self._points]
        else:  # a tie (odds about 1 in 2**100): sort (point, name) pairs, so names break it
            entries.sort()
            self._points, self._owners = [p for p, _ in entries], [n for _, n in entries]

    @staticmethod
    def _node_points(node: str, count: int) -> list[int]:
        return [point(f"{node}#{i}") for i in range(count)]

    def _index_of(self, p: int, node: str) -> int:
        """Where (p, node) sits, or would sit, in the (point, owner) order: owner names break ties."""
        i = bisect.bisect_left(self._points, p)
        while i < len(self._points) and self._points[i] == p and self._owners[i] < node:
            i += 1
        return i

    def _insert(self, entries: list[tuple[int, str]]) -> None:
        """Merge sorted new entries in: list slices are copied in C, so this is O(n), not O(n log n)."""
        points, owners, start = [], [], 0
        for p, node in entries:
            i = self._index_of(p, node)
            points += self._points[start:i] + [p]
            owners += self._owners[start:i] + [node]
            start = i
        self._points, self._owners = points + self._points[start:], owners + self._owners[start:]

    # -- lookups

    def owner(self, key: Key) -> str:
        """The member owning `key`: the first point at or after the key's hash, clockwise."""
        return self.owner_at(point(key))

    def owner_at(self, position: int) -> str:
        """The member owning a position on the ring (0 <= position < 2**128)."""
        points = self._points
        if not points:
            raise LookupError("the ring is empty: no member to own any key")
        i = bisect.bisect_left(points, position)
        return self._owners[i if i < len(points) else 0]  # past the last point, wrap to the first

    def owners(self, key: Key, n: int) -> list[str]:
        """n distinct members clockwise from `key`, owner(key) first: a replica preference list."""
        if not 1 <= n <= len(self._weights):
            raise ValueError(f"asked for {n} owners, but the ring has {len(self._weights)} members")
        start = bisect.bisect_left(self._points, point(key))
        found: list[str] = []
        for step in range(len(self._points)):
            candidate = self._owners[(start + step) % len(self._points)]
            if candidate not in found:
                found.append(candidate)
                if len(found) == n:
                    break
        return found

    @property
    def nodes(self) -> list[str]:
        return sorted(self._weights)

    @property
    def weights(self) -> dict[str, float]:
        return dict(self._weights)

    @property
    def fingerprint(self) -> str:
        """Equal for two rings exactly when they hold the same members, weights and vnodes."""
        text = json.dumps([self.vnodes, sorted(self._weights.items())])
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @property
    def point_count(self) -> int:
        return len(self._points)

    def copy(self) -> HashRing:
        ring = HashRing(self.vnodes)
        ring._weights, ring._points, ring._owners = dict(self._weights), list(self._points), list(self._owners)
        return ring

    def __len__(self) -> int:
        return len(self._weights)

    def __contains__(self, node: object) -> bool:
        return node in self._weights

    def __repr__(self) -> str:
        return f"HashRing(vnodes={self.vnodes}, nodes={self._weights})"


# ---------------------------------------------------------------- membership in ZooKeeper

def members_path(root: str) -> str:
    return f"{root.rstrip('/')}/members"


def register_node(client: KazooClient, root: str, name: str, weight: float = 1,
                  timeout: float | None = None) -> str:
    """Register a member: an ephemeral znode holding its weight, gone when its session ends."""
    if not name or "/" in name or name in (".", ".."):
        raise ValueError(f"member name must be non-empty, not '.' or '..', and without '/': {name!r}")
    check_weight(weight)  # the same validation the routers will apply
    data = json.dumps({"weight": weight}).encode()
    return client.create_async(f"{members_path(root)}/{name}", data, ephemeral=True, makepath=True).get(timeout=timeout)


def parse_weight(data: bytes) -> float:
    """A member's weight from its znode's data, or ValueError saying why the data is not ours.

    Ours is {"weight": number}. Empty data means weight 1, so `create -e <root>/members/m9` in zkCli.sh
    is a way to join by hand. Anything else is refused, never guessed: a router that took junk as
    weight 1 would route keys to a member that never said it can hold them.
    """
    if not data:
        return 1
    if len(data) > MAX_DATA_BYTES:
        raise ValueError(f"its data is {len(data):,} bytes, not a small {{\"weight\": number}}")
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError too
        raise ValueError(f"its data {_excerpt(data)} is not JSON") from None
    if not isinstance(doc, dict) or "weight" not in doc:
        raise ValueError(f"its data {_excerpt(data)} is not {{\"weight\": number}}")
    return check_weight(doc["weight"])


def _excerpt(data: bytes, limit: int = 24) -> str:
    text = data[:limit].decode("utf-8", "replace")
    return repr(text + "..." if len(data) > limit else text)


class RingWatcher:
    """A router's view: `.ring` is rebuilt from ZooKeeper on every membership change.

    Members whose data is refused, or whose znode is not ephemeral, stay off the ring; `.ignored` maps
    each to the reason, and `on_ignored(name, reason)` hears about each once (until its znode goes away).
    """

    def __init__(self, client: KazooClient, root: str, vnodes: int = DEFAULT_VNODES,
                 on_change: Callable[[HashRing, HashRing], None] | None = None, timeout: float = 10.0,
                 on_ignored: Callable[[str, str], None] | None = None):
        self.client, self.path, self.timeout = client, members_path(root), timeout
        self.ring = HashRing(vnodes)
        self.ignored: dict[str, str] = {}
        self.changes = 0
        self._on_change, self._on_ignored = on_change, on_ignored
        self._czxid: dict[str, int] = {}  # member -> the creation id of the znode we read
        self._children: list[str] | None = None
        self._changed = threading.Event()
        self._built = threading.Condition()
        self._stopped = False
        client.ensure_path_async(self.path).get(timeout=timeout)
        self._thread = threading.Thread(target=self._rebuild_loop, name="ring-watcher", daemon=True)
        self._thread.start()
        ChildrenWatch(client, self.path, self._on_children)
        self.wait_for(lambda ring: self.changes > 0, timeout)

    @property
    def fingerprint(self) -> str:
        return self.ring.fingerprint

    @property
    def pending(self) -> bool:
        """True when ZooKeeper has told of a membership change that `.ring` does not show yet."""
        return self._changed.is_set()

    def close(self, timeout: float = 2.0) -> None:
        """Stop rebuilding; bounded: a rebuilder stuck on a read is a daemon thread, left to finish."""
        self._stopped = True
        self._changed.set()
        self._thread.join(timeout)

    def wait_for(self, predicate: Callable[[HashRing], bool], timeout: float = 10.0) -> HashRing:
        """Block until predicate(ring) holds; raise TimeoutError if it does not within `timeout`."""
        with self._built:
            if not self._built.wait_for(lambda: predicate(self.ring), timeout):
                raise TimeoutError(f"ring never satisfied the condition; it holds {self.ring.nodes}")
            return self.ring

    # -- the watch callback only swaps a reference and wakes the rebuilder

    def _on_children(self, children: list[str]) -> bool:
        if self._stopped:
            return False  # tells kazoo to drop the watch
        self._children = children
        self._changed.set()
        return True

    # -- the rebuilder: reads weights, builds a new ring aside, swaps it in with one assignment

    def _rebuild_loop(self) -> None:
        failures = 0
        while True:
            self._changed.wait()
            self._changed.clear()
            if self._stopped:
                return
            try:
                self._rebuild(self._children or [])
                failures = 0
            except (KazooException, KazooTimeoutError):
                self._retry_soon(failures := failures + 1)  # kazoo's ChildrenWatch lists the members again
            except Exception as exc:
                # A dead rebuilder would leave this router on a stale ring forever: say so, retry.
                log.warning("ring watcher: rebuild failed (%s: %s); retrying", type(exc).__name__, exc)
                self._retry_soon(failures := failures + 1)

    def _rebuild(self, children: list[str]) -> None:
        old, present = self.ring, set(children)
        gone = set(old.nodes) - present
        weights, refused = self._read_weights(present - set(old.nodes) - self._still_refused(present))
        new = self._build(old, gone, weights, refused)
        with self._built:
            self.ring = new  # readers see the old ring or the new one, never half of one
            # A refused member is remembered while its znode lives: one warning, not one per rebuild.
            self.ignored = {n: why for n, why in self.ignored.items() if n in present and n not in weights} | refused
            self._czxid = {n: z for n, z in self._czxid.items() if n in present}
            self.changes += 1
            self._built.notify_all()
        for name, why in refused.items():
            log.warning("ring watcher: member %s is not on the ring: %s", name, why)
            if self._on_ignored:
                self._on_ignored(name, why)
        if self._on_change and new.fingerprint != old.fingerprint:
            self._on_change(old, new)

    def _build(self, old: HashRing, gone: set[str], weights: dict[str, float], refused: dict[str, str]) -> HashRing:
        """The next ring, built aside; members that would push it past MAX_POINTS are refused."""
        room = MAX_POINTS - old.point_count + sum(old.points_for(old.weights[n]) for n in gone)
        for name in sorted(weights):
            room -= old.points_for(weights[name])
            if room < 0:
                room += old.points_for(weights.pop(name))
                refused[name] = f"the ring is full (MAX_POINTS {MAX_POINTS:,} points)"
        if len(gone) + len(weights) > REBUILD_WHOLE_AFTER:
            kept = {n: w for n, w in old.weights.items() if n not in gone}
            return HashRing(old.vnodes, {**kept, **weights})
        new = old.copy()
        for name in gone:
            new.remove(name)
        for name, weight in weights.items():
            new.add(name, weight)
        return new

    def _read_weights(self, names: set[str]) -> tuple[dict[str, float], dict[str, str]]:
        """New members' weights, and why the others were refused; one round trip, however many joined."""
        pending = {name: self.client.get_async(f"{self.path}/{name}") for name in names}
        weights, refused = {}, {}
        for name, answer in pending.items():
            try:
                data, stat = answer.get(timeout=self.timeout)
                self._czxid[name] = stat.czxid
                weight = parse_weight(data)  # bad data is the first thing to tell, persistent or not
                if not stat.ephemeralOwner:
                    # A persistent znode outlives every session: its member could be long dead and the
                    # router would never hear of it. Only ephemerals vanish when their session ends.
                    raise ValueError(NOT_EPHEMERAL)
                weights[name] = weight
            except NoNodeError:
                continue  # left already; the next children event says so
            except ValueError as exc:
                refused[name] = str(exc)
        return weights, refused

    def _still_refused(self, present: set[str]) -> set[str]:
        """Refused members whose znode is the one we refused. Deleted and created again (say, with its
        data fixed) between two reads of the children, a znode keeps its name but not its czxid."""
        names = [n for n in self.ignored if n in present]
        stats = [self.client.exists_async(f"{self.path}/{n}") for n in names]
        return {n for n, s in zip(names, stats, strict=True)
                if (stat := s.get(timeout=self.timeout)) and stat.czxid == self._czxid.get(n)}

    def _retry_soon(self, failures: int) -> None:
        """Wait for a connection, and back off if failures repeat while connected: never spin."""
        while not self._stopped and not self.client.connected:
            time.sleep(0.05)
        time.sleep(min(1.0, 0.05 * 2 ** min(failures, 5)))
        self._changed.set()


# ================================================================ the demo
# Everything below drives the recipe above: members that join, leave and crash, two routers, and a
# report of what each change moved. None of it is needed to use the recipe.

ROOT = "/lab/consistent-hashing"
CONNECT_TIMEOUT = 5.0
# Kazoo doubles its reconnect delay up to 60 s: after a 20 s outage, routers stayed stale for 14 s
# after ZooKeeper was back. Retrying every half second at most costs nothing on a lab's loopback.
CONNECTION_RETRY = {"max_tries": -1, "max_delay": 0.5}
# kazoo's client.stop() can wait max(10 s, session timeout) for a connection that is gone: we give it this.
STOP_TIMEOUT = 1.5
RUN_ID = uuid.uuid4().hex[:4]  # member names stay unique when two copies of this script run
BAR_UNIT = 16       # blocks in the bar of a member holding exactly an equal share (1/N of the keys)
BAR_MAX = 4 * BAR_UNIT
STRIP_WIDTH = 80    # columns in the picture of the ring
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
CONNECTION_NEWS = {
    KazooState.SUSPENDED: "! router 0 lost its connection to ZooKeeper: it routes with the ring it holds, "
                          "which goes stale if members change meanwhile",
    KazooState.CONNECTED: "router 0 is connected again: its children watch catches up on what changed",
    KazooState.LOST: "! router 0's session expired: it will rebuild from a fresh list of members",
}


def new_client(zk: str, session_timeout: float) -> KazooClient:
    return KazooClient(hosts=zk, timeout=session_timeout, connection_retry=CONNECTION_RETRY)


def connect(client: KazooClient, timeout: float) -> None:
    """client.start(), bounded: on a timeout kazoo's own start() stops the client, which can take 10 s."""
    if not client.start_async().wait(timeout) or not client.connected:
        raise KazooTimeoutError(f"no ZooKeeper answered within {timeout:g} s")


def stop_clients(clients: list[KazooClient], timeout: float = STOP_TIMEOUT) -> bool:
    """Stop and close clients in parallel, within `timeout`; False if one is still stuck in kazoo."""
    def stop(client: KazooClient) -> None:
        with contextlib.suppress(Exception):
            client.stop()
            client.close()
    threads = [threading.Thread(target=stop, args=(c,), daemon=True) for c in clients]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return not any(thread.is_alive() for thread in threads)


# ---------------------------------------------------------------- what the learner sees

class Output:
    """The console (one line per event, time on each) and the --events log; a closed stdout stops the demo."""

    def __init__(self, started: float, events: object | None, on_closed: Callable[[], None]):
        self.started, self.events, self.on_closed = started, events, on_closed
        self.unicode = (getattr(sys.stdout, "encoding", "") or "").lower().replace("-", "") == "utf8"
        self.arrow, self.block = ("\u2192", "\u2588") if self.unicode else ("->", "#")
        self.closed = False
        self.lock = threading.Lock()

    def say(self, text: str) -> None:
        self.write(f"{time.monotonic() - self.started:8.3f}s  {text}")

    def lines(self, lines: list[str]) -> None:
        self.write("\n".join(" " * 11 + line for line in lines))

    def write(self, text: str) -> None:
        with self.lock:
            if self.closed:
                return
            try:
                print(text, flush=True)
            except (OSError, ValueError):  # `| head` went away: keep running to clean up, print no more
                self.closed = True
                with contextlib.suppress(OSError, ValueError):
                    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        if self.closed:
            self.on_closed()

    def event(self, event: str, **fields: object) -> None:
        """One JSON line in the --events file; never raises into the demo."""
        if self.events is None:
            return
        line = json.dumps({"t": time.monotonic(), "pid": os.getpid(), "run": RUN_ID, "event": event, **fields})
        with self.lock:
            try:
                self.events.write(line + "\n")
                self.events.flush()
            except (OSError, ValueError) as exc:  # a full disk must not stop the demo, but it must be said
                self.events = None
                print(f"warning: --events: cannot write ({getattr(exc, 'strerror', None) or exc}); "
                      "the demo goes on without the log", file=sys.stderr, flush=True)


def ring_strip(ring: HashRing, letters: Mapping[str, str], width: int = STRIP_WIDTH) -> str:
    """The ring as `width` columns, 0 to 2**128 left to right; a column shows who owns its middle."""
    if not len(ring):
        return "." * width
    return "".join(letters[ring.owner_at((2 * c + 1) * 2**128 // (2 * width))] for c in range(width))


def strip_changes(before: str, after: str) -> str:
    """A ^ under every column whose owner changed."""
    return "".join("^" if b != a else " " for b, a in zip(before, after, strict=True)).rstrip()


def ideal_fraction(old: Mapping[str, float], new: Mapping[str, float]) -> float:
    """The least any scheme must move: the weight share of the members that joined or left."""
    joined = sum(w for n, w in new.items() if n not in old) / sum(new.values()) if new else 0
    left = sum(w for n, w in old.items() if n not in new) / sum(old.values()) if old else 0
    return joined + left


def _label(name: str, weight: float) -> str:
    return name if weight == 1 else f"{name}(x{weight:g})"


class Report:
    """What the learner sees on each change: membership, the ring, moved keys, load, router agreement."""

    def __init__(self, out: Output, keys: list[str], show: int, strip: bool, routers: list[RingWatcher]):
        self.out, self.keys, self.show, self.strip, self.routers = out, keys, show, strip, routers
        self.changes: list[tuple[float, float]] = []   # (moved, ideal)
        self.worst_balance = 0.0
        self.agreed = self.disagreed = self.overlapped = 0
        self.muted = False
        self._owners_cache: tuple[str, list[str]] = ("", [])
        self._seen = threading.Condition()
        self._held: dict[int, dict[str, float]] = {}   # router -> fingerprint -> when it last swapped to it
        self._last_narrated: str | None = None

    # -- every router's swaps and refusals (from its rebuild thread)

    def ring_swapped(self, router: int, ring: HashRing) -> None:
        if self.muted:
            return  # the shutdown: routers stop one by one, and what they hold no longer serves anyone
        self.out.event("ring", router=router, fingerprint=ring.fingerprint, members=ring.nodes)
        with self._seen:
            self._held.setdefault(router, {})[ring.fingerprint] = time.monotonic()
            self._seen.notify_all()

    def ignored(self, router: int, name: str, why: str) -> None:
        self.out.event("ignored", router=router, member=name, why=why)
        if router == 0:
            self.out.say(f"ignored {name}: {why}; it stays off the ring")

    # -- the narration, by router 0

    def ring_changed(self, old: HashRing, new: HashRing) -> None:
        if self.muted:
            return
        since = self._held.get(0, {}).get(old.fingerprint, 0.0)  # when this router took the old ring
        self.ring_swapped(0, new)
        before, after = self._owners_of(old), self._owners_of(new)
        lines = [f"members ({len(new)}): " + " ".join(_label(n, w) for n, w in sorted(new.weights.items()))]
        if self.strip:
            lines += self._strips(old, new)
        if before and after:
            lines += self._movement(old, new, before, after)
        if after:
            lines += self._load(new, after)
        self.out.lines(lines)
        self._check_agreement(new.fingerprint, since)
        with self._seen:
            self._last_narrated = new.fingerprint
            self._seen.notify_all()

    def wait_narrated(self, fingerprint: str, timeout: float = 3.0) -> None:
        """Let the narrating router finish telling a change before the next one happens."""
        with self._seen:
            self._seen.wait_for(lambda: self._last_narrated == fingerprint, timeout)

    def _owners_of(self, ring: HashRing) -> list[str] | None:
        """Every key's owner on `ring`; the previous change's new ring is this one's old ring."""
        if not len(ring):
            return None
        if self._owners_cache[0] != ring.fingerprint:
            self._owners_cache = (ring.fingerprint, [ring.owner(k) for k in self.keys])
        return self._owners_cache[1]

    def _strips(self, old: HashRing, new: HashRing) -> list[str]:
        names = sorted(set(old.nodes) | set(new.nodes))
        letters = {n: LETTERS[i] if i < len(LETTERS) else "?" for i, n in enumerate(names)}
        before, after = ring_strip(old, letters), ring_strip(new, letters)
        legend = " ".join(f"{letters[n]}={n}" for n in names)
        marks = strip_changes(before, after) or "(no column changed owner)"
        return [f"ring, 0 to 2^128 left to right, 1/{STRIP_WIDTH} a column, lettered by who owns its middle:",
                f"  {legend}", f"  before |{before}|", f"  after  |{after}|", f"          {marks}"]

    def _movement(self, old: HashRing, new: HashRing, before: list[str], after: list[str]) -> list[str]:
        moved = [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b]
        ideal = ideal_fraction(old.weights, new.weights)
        fraction = len(moved) / len(self.keys)
        self.changes.append((fraction, ideal))
        lines = [f"moved {fraction:6.2%} of {len(self.keys):,} keys   (ideal {ideal:6.2%}: the changed member's share)"]
        lines += [f"  {self.keys[i]}: {before[i]} {self.out.arrow} {after[i]}" for i in moved[:self.show]]
        return lines

    def _load(self, ring: HashRing, owners: list[str]) -> list[str]:
        """Bars to one scale (an equal share, 1/N of the keys), so weight 3 shows as 3x weight 1;
        balance is each member's keys against its fair share, keys x weight / total weight."""
        counts, total_weight, equal = Counter(owners), sum(ring.weights.values()), len(owners) / len(ring)
        fair = {n: len(owners) * w / total_weight for n, w in ring.weights.items()}
        balance = max(counts[n] / fair[n] for n in ring.nodes)
        self.worst_balance = max(self.worst_balance, balance)
        lines = [f"load (a bar of {BAR_UNIT} is an equal share, 1/{len(ring)} of the keys; "
                 f"fair share = keys x weight / total weight):",
                 f"  {'member':<12} {'weight':>6} {'keys':>8} {'fair share':>10}"]
        for name in ring.nodes:
            blocks = round(BAR_UNIT * counts[name] / equal)
            bar = self.out.block * min(BAR_MAX, blocks) + ("+" if blocks > BAR_MAX else "")
            lines.append(f"  {name:<12} {ring.weights[name]:>6g} {counts[name]:>8,} {fair[name]:>10,.0f}  {bar}")
        lines.append(f"max/mean {balance:.3f}  (busiest member's keys over its fair share; 1.000 is perfect)")
        return lines

    def _check_agreement(self, fingerprint: str, since: float) -> None:
        """Did every other router reach this ring (since this one took the previous ring)? Give it a second.
        If it went straight past it because a second change overlapped, and this router is behind, the next
        change's check tells."""
        asked = time.monotonic()
        with self._seen:
            reached = self._seen.wait_for(lambda: all(
                self._held.get(i, {}).get(fingerprint, -1.0) >= since for i in range(len(self.routers))), 1.0)
        waited_ms = (time.monotonic() - asked) * 1000
        if reached:
            self.agreed += 1
            lag = max(self._held[i][fingerprint] for i in range(len(self.routers))) - self._held[0][fingerprint]
            self.out.say(f"routers agree: yes, fingerprint {fingerprint} "
                         f"(the other router got there {lag * 1000:.1f} ms after this one)" if lag > 0 else
                         f"routers agree: yes, fingerprint {fingerprint} (the other router got there first)")
        elif self.routers[0].pending:
            self.overlapped += 1
            self.out.say("routers agree: not checked, another change overlapped this one (the next check covers it)")
        else:
            self.disagreed += 1
            self.out.say(f"routers agree: NO, {[r.fingerprint for r in self.routers]} after {waited_ms:.0f} ms")


# ---------------------------------------------------------------- members, and how they leave

class Member:
    """A storage node: its own session, an ephemeral znode, registered again after a lost session."""

    def __init__(self, name: str, zk: str, session_timeout: float, out: Output, weight: float = 1):
        self.name, self.weight, self.zk, self.out = name, weight, zk, out
        self.path = f"{members_path(ROOT)}/{name}"
        self.client = new_client(zk, session_timeout)
        self.crashed = False
        self._lost = threading.Event()

    def start(self, timeout: float) -> None:
        connect(self.client, timeout)
        self.client.add_listener(self._on_state)
        register_node(self.client, ROOT, self.name, self.weight, timeout=timeout)

    def _on_state(self, state: str) -> None:  # kazoo's thread: only set flags and hand work on
        if state == KazooState.LOST:
            self._lost.set()
        elif state == KazooState.CONNECTED and self._lost.is_set() and not self.crashed:
            self._lost.clear()
            self.client.handler.spawn(self._reregister)

    def _reregister(self) -> None:
        self.out.say(f"! {self.name} lost its session (ZooKeeper expired it); it registers again")
        with contextlib.suppress(KazooException, KazooTimeoutError):
            register_node(self.client, ROOT, self.name, self.weight, timeout=CONNECT_TIMEOUT)

    def delete(self, deadline: float, hurry: threading.Event) -> bool:
        """Delete the znode, through reconnects, until `deadline`; True once it is surely gone."""
        while True:
            try:
                self.client.delete_async(self.path).get(timeout=max(0.05, min(0.5, deadline - time.monotonic())))
                return True
            except (NoNodeError, SessionExpiredError):
                return True  # gone already, or with its expired session
            except ConnectionClosedError:
                return False  # this client was stopped (a crash): not ours to delete any more
            except (KazooException, KazooTimeoutError):
                if time.monotonic() >= deadline or hurry.wait(0.1):
                    return False

    def crash(self, observer: KazooClient, deadline: float) -> None:
        """Die without a goodbye: ZooKeeper expires the session, which deletes the znode."""
        self.crashed = True
        for _ in range(5):  # the client may reconnect first and win its session back; try again
            expire_session(self.zk, self.client.client_id, max(0.1, deadline - time.monotonic()))
            if self._gone(observer, deadline) or time.monotonic() >= deadline:
                break
        stop_clients([self.client])

    def _gone(self, observer: KazooClient, deadline: float) -> bool:
        with contextlib.suppress(KazooException, KazooTimeoutError):
            return observer.exists_async(self.path).get(timeout=max(0.1, min(1.0, deadline - time.monotonic()))) is None
        return False


def expire_session(zk: str, client_id: tuple[int, bytes], timeout: float = CONNECT_TIMEOUT) -> None:
    """Close a session from outside, as ZooKeeper does when it times out: a twin connection presents
    the session's id and password, then closes it."""
    twin = KazooClient(hosts=zk, client_id=client_id, connection_retry=CONNECTION_RETRY)
    with contextlib.suppress(KazooException, KazooTimeoutError):
        connect(twin, timeout)
    stop_clients([twin], timeout=min(STOP_TIMEOUT, timeout))


# ---------------------------------------------------------------- the chaos run

class Demo:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.started = time.monotonic()
        self.stopping, self.hurry = threading.Event(), threading.Event()
        self.out = Output(self.started, args.events, self.stopping.set)
        self.routers: list[RingWatcher] = []
        keys = [f"key:{i}" for i in range(args.keys)]
        self.report = Report(self.out, keys, args.show, args.strip, self.routers)
        self.members: list[Member] = []
        self.clients: list[KazooClient] = []   # every session this demo opened, to close at the end
        self.rng = random.Random(args.seed)
        # The first two events are a join and a departure, so even a 10 s run shows both lessons.
        self.plan = ["join", "depart"]
        self.ends = float("inf")
        self._next = 1

    def start(self) -> None:
        for i in range(2):
            client = new_client(self.args.zk, self.args.session_timeout)
            self.clients.append(client)
            connect(client, CONNECT_TIMEOUT)
            # Router 0 narrates every change; router 1 only records what it holds.
            narrate = self.report.ring_changed if i == 0 else (lambda old, new, i=i: self.report.ring_swapped(i, new))
            self.routers.append(RingWatcher(client, ROOT, self.args.vnodes, on_change=narrate, timeout=CONNECT_TIMEOUT,
                                            on_ignored=lambda name, why, i=i: self.report.ignored(i, name, why)))
            self.report.ring_swapped(i, self.routers[-1].ring)
        self.clients[0].add_listener(self._router_connection)
        for _ in range(self.args.members):
            self.add_member()

    def _router_connection(self, state: str) -> None:
        """Narrate router 0's connection (kazoo's thread: hand the printing on)."""
        if not self.report.muted:
            self.clients[0].handler.spawn(self.out.say, CONNECTION_NEWS[state])

    def time_left(self) -> float:
        return max(0.1, min(CONNECT_TIMEOUT, self.ends - time.monotonic()))

    def add_member(self) -> None:
        member = Member(f"m{self._next}-{RUN_ID}", self.args.zk, self.args.session_timeout, self.out)
        self._next += 1
        self.out.say(f"+ {member.name} joins")
        self.members.append(member)  # listed before it starts: a Ctrl-C in between must still close it
        self.clients.append(member.client)
        try:
            member.start(self.time_left())
        except (KazooTimeoutError, KazooException) as exc:
            self.out.say(f"  {member.name} could not register ({type(exc).__name__}); it stays out")
            self.members.remove(member)
            member.delete(time.monotonic() + 0.5, self.hurry)
            self.forget(member)
            return
        self.settle(lambda ring: member.name in ring)

    def chaos(self) -> None:
        action = self.plan.pop(0) if self.plan else self.rng.choice(["join", "depart"])
        if action == "join" or len(self.members) <= 2:
            return self.add_member()
        member = self.rng.choice(self.members)
        self.members.remove(member)
        if self.rng.random() < 0.5:
            self.out.say(f"- {member.name} leaves cleanly (deletes its znode)")
            member.delete(time.monotonic() + self.time_left(), self.hurry)
        else:
            self.out.say(f"x {member.name} crashes (ZooKeeper expires its session)")
            member.crash(self.routers[0].client, time.monotonic() + self.time_left())
        self.forget(member)
        self.settle(lambda ring: member.name not in ring)

    def forget(self, member: Member) -> None:
        """Close a departed member's session (if the crash has not) and stop tracking it."""
        stop_clients([member.client])
        self.clients.remove(member.client)

    def settle(self, predicate: Callable[[HashRing], bool]) -> None:
        """Wait until the narrating router has seen the change and told it."""
        with contextlib.suppress(TimeoutError):
            ring = self.routers[0].wait_for(predicate, timeout=min(2.0, self.time_left()))
            self.report.wait_narrated(ring.fingerprint, timeout=min(3.0, self.time_left()))

    def run(self) -> None:
        self.start()
        self.ends = time.monotonic() + (self.args.duration or float("inf"))
        while not self.stopping.wait(min(self.args.interval, max(0.0, self.ends - time.monotonic()))):
            if time.monotonic() >= self.ends:
                break
            self.chaos()

    def close(self) -> list[str]:
        """Members delete their znodes (for at most a session timeout), then every session closes.
        Returns the znodes it could not confirm gone: their sessions' expiry removes them."""
        self.stopping.set()
        self.report.muted = True  # the shutdown is not a lesson
        deadline = time.monotonic() + self.args.session_timeout
        gone: list[str] = []
        leaving = [threading.Thread(target=lambda m=m: m.delete(deadline, self.hurry) and gone.append(m.path),
                                    daemon=True) for m in self.members]
        for thread in leaving:
            thread.start()
        for thread in leaving:
            thread.join(max(0.0, deadline + 0.3 - time.monotonic()))
        for router in self.routers:
            router.close(timeout=0.2)
        stop_clients(self.clients)
        return sorted(m.path for m in self.members if m.path not in gone)

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


# ---------------------------------------------------------------- command line

SESSION_HELP = ("seconds (default 4). ZooKeeper grants 2 to 20 ticks: 0.5-60 s on the lab's servers "
                "(tick 250 ms, max 60 s), 4-40 s on a stock server")
HOST = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::(\d+))?")


def _bounded(kind: type, low: float, high: float, low_open: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite `kind` within low..high (above low, if low_open)."""
    words = f"{'a whole number' if kind is int else 'a finite number'} from {low:g} to {high:g}"
    words += " (not 0)" if low_open and low == 0 else ""

    def check(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {words}, not {text!r}") from None
        if not (low < value if low_open else low <= value) or not value <= high:  # false for nan too
            raise argparse.ArgumentTypeError(f"must be {words}, not {text}")
        return value
    check.__name__ = kind.__name__
    return check


def _zk_hosts(text: str) -> str:
    """host:port[,host:port...][/chroot], hosts as names, IPv4 or [IPv6]; ports 1..65535."""
    hosts, slash, chroot = text.strip().partition("/")
    for item in hosts.split(","):
        match = HOST.fullmatch(item.strip())
        if not match or not 1 <= int(match[1] or 2181) <= 65535:
            raise argparse.ArgumentTypeError(f"must be host:port[,host:port...][/chroot] with ports 1 to 65535, "
                                             f"not {text!r}")
    if slash and any(part in ("", ".", "..") for part in chroot.split("/")):
        raise argparse.ArgumentTypeError(f"the chroot must be an absolute znode path like /lab, with no empty "
                                         f"part and no trailing slash, not {slash + chroot!r}")
    return text.strip()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Consistent hashing over ZooKeeper membership, under chaos.")
    parser.add_argument("--zk", type=_zk_hosts, default=os.environ.get("ZK_HOSTS", "127.0.0.1:2181"),
                        help="ZooKeeper connection string, host:port[,host:port...][/chroot] "
                             "(default: $ZK_HOSTS or 127.0.0.1:2181)")
    parser.add_argument("--members", type=_bounded(int, 1, 100), default=4, help="members at start (default 4)")
    parser.add_argument("--vnodes", type=_bounded(int, 1, 1000), default=DEFAULT_VNODES, help="points per member")
    parser.add_argument("--keys", type=_bounded(int, 1, 1_000_000), default=100_000, help="keys for the statistics")
    parser.add_argument("--show", type=_bounded(int, 0, 1000), default=3, help="moved sample keys to print (default 3)")
    parser.add_argument("--interval", type=_bounded(float, 0.1, 3600), default=3.0,
                        help="seconds between chaos events (default 3)")
    parser.add_argument("--duration", type=_bounded(float, 0, 1e6, low_open=True), default=None,
                        help="seconds to run (default: until Ctrl-C)")
    parser.add_argument("--seed", type=int, default=None, help="seed for the chaos driver")
    parser.add_argument("--session-timeout", type=_bounded(float, 0.5, 60), default=4.0, help=SESSION_HELP)
    parser.add_argument("--no-strip", dest="strip", action="store_false", help="do not draw the ring's strip")
    parser.add_argument("--events", metavar="FILE", help="append one JSON line per event to FILE")
    args = parser.parse_args(argv)
    if args.events:
        try:
            args.events = open(args.events, "a", encoding="utf-8")  # noqa: SIM115 (open for the whole run)
        except OSError as exc:
            parser.error(f"argument --events: cannot write {args.events}: {exc.strerror}")
    return args


def check_reachable(zk: str) -> str | None:
    """None if ZooKeeper answers within CONNECT_TIMEOUT and the chroot exists, else a one-line explanation."""
    hosts, slash, chroot = zk.partition("/")
    client = KazooClient(hosts=hosts, timeout=CONNECT_TIMEOUT, connection_retry=CONNECTION_RETRY)
    try:
        connect(client, CONNECT_TIMEOUT)
        if slash and client.exists_async(slash + chroot).get(timeout=CONNECT_TIMEOUT) is None:
            return (f"chroot {slash + chroot} does not exist on ZooKeeper at {hosts}; create it "
                    f"(zkCli.sh create {slash + chroot}) or drop {slash + chroot} from --zk")
    except (KazooTimeoutError, KazooException, OSError, ValueError) as exc:
        return (f"cannot reach ZooKeeper at {hosts} ({type(exc).__name__}); start one with `./run.sh hashing`, "
                f"`docker compose up -d` or `python -m zklab.launcher`")
    finally:
        stop_clients([client])
    return None


def quiet_kazoo() -> None:
    logging.getLogger("kazoo").addHandler(logging.NullHandler())
    logging.getLogger("kazoo").propagate = False  # kazoo's reconnect chatter would drown the report
    warnings.filterwarnings("ignore", message="No chroot path exists")  # check_reachable says it in one line


def hurry_only(demo: Demo) -> None:
    """From now on Ctrl-C or SIGTERM only hurries the shutdown along, once every delete has been sent."""
    signal.signal(signal.SIGINT, lambda *_: demo.hurry.set())
    signal.signal(signal.SIGTERM, lambda *_: demo.hurry.set())


def stop_once(demo: Demo) -> None:
    """The first Ctrl-C or SIGTERM stops the run. Its handler turns every later signal into a hurry
    before it raises, so a second one right behind it (a SIGTERM to the whole process group, as
    `timeout` sends it, and passed on by run.sh too) cannot cut the clean-up short."""
    def stop(*_: object) -> None:
        hurry_only(demo)
        raise KeyboardInterrupt
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)


def shutdown(demo: Demo) -> None:
    """Clean up whatever stopped the run. A second Ctrl-C or a SIGTERM now only hurries it along."""
    hurry_only(demo)
    demo.out.say("shutting down: members leave, routers stop, sessions close")
    left = demo.close()
    for path in left:
        demo.out.say(f"left behind: {path} (ZooKeeper did not answer; its session's expiry removes it)")
    demo.out.event("exit", clean=not left, left=left)
    demo.out.write(demo.summary())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quiet_kazoo()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    if problem := check_reachable(args.zk):
        print(f"error: {problem}", file=sys.stderr)
        return 1
    demo, code = Demo(args), 0
    stop_once(demo)
    try:
        demo.out.event("start", session_timeout=args.session_timeout)
        demo.out.write(f"consistent hashing over {args.zk}{members_path(ROOT)}: {args.vnodes} vnodes, "
                       f"{args.keys:,} keys; Ctrl-C stops")
        demo.run()
    except KeyboardInterrupt:
        demo.out.say("interrupted")
    except (KazooException, KazooTimeoutError, TimeoutError) as exc:  # only the routers' start can raise
        demo.out.say(f"stopped: ZooKeeper stopped answering while the routers started ({type(exc).__name__})")
        code = 1
    finally:
        shutdown(demo)
    return code


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # Ctrl-C before the demo started: nothing to clean up
        sys.exit(0)
