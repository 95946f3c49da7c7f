"""Challenge 2: consistent hashing, with membership kept in ZooKeeper.

Members register as ephemeral znodes; each router watches the member list and rebuilds its own hash ring
from it, so that routers agree across processes, a change moves few keys, and the load spreads evenly:
- point(): mmh3, 128 bits, a fixed SEED. hash() is salted per process; 10,000 slots collide at ~120 members.
- member_points(): vnodes x weight points per member. With one point each, one of 10 members gets ~3x the mean.
- HashRing.owner_at(): binary search for the first point at or after the key, wrapping past the last one;
  an empty ring owns nothing: LookupError.
- place_points(): points sorted as integers ("10" < "9" as text), ties broken by name: join order never matters.
- RingWatcher._rebuild(): the watch callback only wakes a thread (kazoo runs every callback on one thread);
  that thread builds the new ring aside and swaps it in with one assignment: nobody sees half a ring.
- parse_weight(): trust no member's data. Junk, a weight outside MIN_WEIGHT..MAX_WEIGHT or a persistent znode
  (it outlives its member) keeps a member off the ring, with one warning; the ring stays within MAX_POINTS.
- RingWatcher._read_members(): a children watch fires on a join or a leave, never when a member sets new data:
  read each member with a data watch, and again when it fires.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":  # Ctrl-C or SIGTERM while Python loads kazoo: nothing to clean up yet, exit quietly
    import _signal  # `signal`'s C core, already loaded; os._exit, as an exception raised mid-import can turn
    _signal.signal(_signal.SIGINT, lambda *_: os._exit(0))  # into another one, with a traceback
    _signal.signal(_signal.SIGTERM, lambda *_: os._exit(0))

import argparse
import bisect
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
from collections import Counter
from collections.abc import Callable, Iterable, Mapping

try:  # a copy run where kazoo or mmh3 is missing: say what to install, in one line, not a traceback
    import mmh3
    from kazoo.client import KazooClient
except ImportError as missing:  # not installed, or installed but broken: Python's words, and what to do
    sys.exit(f"error: {missing}; pip install kazoo mmh3 (in the lab: bash start_venv.sh)")
from kazoo.exceptions import KazooException, NoAuthError, NoNodeError
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.recipe.watchers import ChildrenWatch

SEED = 0x5EED  # fixed: every process, on every machine, puts every key and member at the same place
DEFAULT_VNODES = 160  # points per unit of weight, ketama's choice: a member's share within ~8% of the mean
MIN_WEIGHT, MAX_WEIGHT = 0.01, 100  # below, a member's one or two points make its share noise; above, a typo
# A point costs a router ~120 bytes. Uncapped, one znode saying {"weight": 1e9} asked for 1.6e11 points.
MAX_POINTS = 1_000_000
MAX_VNODES = MAX_POINTS // MAX_WEIGHT  # so that one member of the largest weight still fits
MAX_DATA_BYTES = 1024  # ours is {"weight": 2.5}: reading more is not worth a router's time
NOT_EPHEMERAL = "not ephemeral: a member must vanish with its session"  # else nothing would ever remove it
log = logging.getLogger(__name__)


# ---------------------------------------------------------------- the ring

def point(label: str | bytes) -> int:
    """Step 1. The position of a key or a member's point label on the ring: an int from 0 to 2**128 - 1,
    the same in every process (mmh3.hash128 with SEED; never hash(), salted per process, 64 bits)."""
    return mmh3.hash128(label, SEED)


def member_points(name: str, weight: float, vnodes: int) -> list[int]:
    """Step 3. A member's points, max(1, round(vnodes * weight)) of them: weight 2 gets twice the points
    (and keys) of weight 1, the lightest still one. Point i is point(f"{name}#{i}"), in order of i."""
    count = max(1, round(vnodes * check_weight(weight)))
    return [point(f"{name}#{i}") for i in range(count)]


def place_points(weights: Mapping[str, float], vnodes: int) -> tuple[list[int], list[str]]:
    """Step 2. Every member's points sorted by (point, name), and their owners: owners[i] owns points[i].
    The name breaks a tie between equal points, so routers that saw members join in other orders agree."""
    entries: list[tuple[int, str]] = []
    for name, weight in weights.items():
        entries += [(p, name) for p in member_points(name, weight, vnodes)]
    entries.sort()
    return [p for p, _ in entries], [name for _, name in entries]


def points_needed(weights: Mapping[str, float], vnodes: int) -> int:
    """How many points member_points gives these members (checking each weight): what MAX_POINTS caps."""
    return sum(max(1, round(vnodes * check_weight(w))) for w in weights.values())


def check_weight(weight: object) -> float:
    """`weight` if it is a number within MIN_WEIGHT..MAX_WEIGHT, else ValueError saying why not."""
    if isinstance(weight, bool) or not isinstance(weight, (int, float)):
        raise ValueError(f"weight {weight!r} is not a number")
    if not MIN_WEIGHT <= weight <= MAX_WEIGHT:  # also false for nan and inf
        shown = f"{weight:g}" if isinstance(weight, float) or abs(weight) < 1e300 else f"of {len(str(weight))} digits"
        shown = shown.replace("e+0", "e").replace("e-0", "e-")  # 1e9, not 1e+09
        raise ValueError(f"weight {shown} is outside {MIN_WEIGHT:g}..{MAX_WEIGHT:g}")
    return weight


class HashRing:
    """Members on a ring of 2**128 positions, `vnodes` points per unit of weight. Each change places every
    point again (place_points): simpler than merging, and about 2x the floor (see bench/RESULTS.md)."""

    def __init__(self, vnodes: int = DEFAULT_VNODES, nodes: Iterable[str] | Mapping[str, float] | None = None):
        if isinstance(vnodes, bool) or not isinstance(vnodes, int) or not 1 <= vnodes <= MAX_VNODES:
            raise ValueError(f"vnodes must be a whole number from 1 to {MAX_VNODES:,}, not {vnodes!r}")
        self.vnodes = vnodes
        items = nodes.items() if isinstance(nodes, Mapping) else ((n, 1) for n in nodes or ())
        self._place(dict(items))

    def _place(self, weights: dict[str, float]) -> None:
        if (total := points_needed(weights, self.vnodes)) > MAX_POINTS:  # checked before a point is hashed
            raise ValueError(f"the ring would hold {total:,} points, more than MAX_POINTS ({MAX_POINTS:,})")
        points, owners = place_points(weights, self.vnodes)
        self._weights, self._points, self._owners = weights, points, owners  # _owners[i] owns _points[i]

    def add(self, node: str, weight: float = 1) -> None:
        """Place a member (again, if its weight changed). A bad weight changes nothing: ValueError."""
        self._place({**self._weights, node: weight})

    def remove(self, node: str) -> None:
        if node not in self._weights:
            raise KeyError(f"{node!r} is not on the ring")
        self._place({n: w for n, w in self._weights.items() if n != node})

    def owner(self, key: str | bytes) -> str:
        """The member owning `key`: the first point at or after the key's hash, clockwise."""
        return self.owner_at(point(key))

    def owner_at(self, position: int) -> str:
        """Step 4. The owner of the first point at or after `position` (binary search in the sorted
        self._points; self._owners[i] owns self._points[i]). Past the last point, wrap around to the first.
        An empty ring has no owner: LookupError."""
        if not self._points:
            raise LookupError("the ring is empty: no member to own any key")
        i = bisect.bisect_left(self._points, position)
        return self._owners[i % len(self._points)]  # past the last point, the ring wraps around to the first

    def owners(self, key: str | bytes, n: int) -> list[str]:
        """n distinct members clockwise from `key`, owner(key) first: a replica preference list."""
        if not 1 <= n <= len(self._weights):
            raise ValueError(f"asked for {n} owners, but the ring has {len(self._weights)} members")
        start, found = bisect.bisect_left(self._points, point(key)), {}  # a dict keeps the order of finding
        for step in range(len(self._points)):
            found.setdefault(self._owners[(start + step) % len(self._points)])
            if len(found) == n:
                break
        return list(found)

    nodes = property(lambda self: sorted(self._weights))
    weights = property(lambda self: dict(self._weights))
    point_count = property(lambda self: len(self._points))

    @property
    def fingerprint(self) -> str:
        """Equal for two rings exactly when they hold the same members, weights and vnodes."""
        return f"{mmh3.hash128(json.dumps([self.vnodes, sorted(self._weights.items())]), SEED):032x}"[:12]

    def __len__(self) -> int:
        return len(self._weights)

    def __contains__(self, node: object) -> bool:
        return node in self._weights


# ---------------------------------------------------------------- membership in ZooKeeper

def members_path(root: str) -> str:
    return f"{root.rstrip('/')}/members"


def register_node(client: KazooClient, root: str, name: str, weight: float = 1, timeout: float | None = None) -> str:
    """Register a member: an ephemeral znode holding its weight, gone when its session ends."""
    if not name or "/" in name or name in (".", ".."):
        raise ValueError(f"member name must be non-empty, not '.' or '..', and without '/': {name!r}")
    data = json.dumps({"weight": check_weight(weight)}).encode()  # the validation the routers apply
    return client.create_async(f"{members_path(root)}/{name}", data, ephemeral=True, makepath=True).get(timeout=timeout)


def parse_weight(data: bytes) -> float:
    """Step 7. A member's weight from its znode's data, or ValueError saying why the data is not ours.
    Ours is {"weight": number} of at most MAX_DATA_BYTES; empty data means weight 1 (a member made by hand
    with zkCli.sh). Refuse the rest, never guess: anyone can write a znode."""
    if not data:
        return 1
    if len(data) > MAX_DATA_BYTES:
        raise ValueError(f"its data is {len(data):,} bytes, not a small {{\"weight\": number}}")
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError too
        raise ValueError(f"its data {data[:24]!r} is not JSON") from None
    if not isinstance(doc, dict) or "weight" not in doc:
        raise ValueError(f"its data {data[:24]!r} is not {{\"weight\": number}}")
    return check_weight(doc["weight"])


class RingWatcher:
    """A router's view: `.ring` is rebuilt from ZooKeeper on every change of the members or their data.
    Members refused (bad data, not ephemeral, no room) stay off it: `.ignored` maps each to the reason."""

    def __init__(self, client: KazooClient, root: str, vnodes: int = DEFAULT_VNODES,
                 on_change: Callable[[HashRing, HashRing], None] | None = None, timeout: float = 10.0,
                 on_ignored: Callable[[str, str], None] | None = None):
        self.client, self.root, self.path, self.vnodes = client, root, members_path(root), vnodes
        self.timeout, self._on_change, self._on_ignored = timeout, on_change, on_ignored
        self.ring, self.ignored, self.changes = HashRing(vnodes), {}, 0
        self._children, self._stopped, self._failure = [], False, None
        self._changed, self._built = threading.Event(), threading.Condition()
        client.ensure_path_async(self.path).get(timeout=timeout)
        threading.Thread(target=self._rebuild_loop, name="ring-watcher", daemon=True).start()
        ChildrenWatch(client, self.path, self._on_children)
        self.wait_for(lambda ring: self.changes > 0 or self._failure is not None, timeout)
        if not self.changes and self._failure:  # the first ring could not be built: say why now, not after `timeout`
            self.close()
            raise self._failure

    fingerprint = property(lambda self: self.ring.fingerprint)
    pending = property(lambda self: self._changed.is_set(), doc="ZooKeeper told of a change .ring lacks yet")

    def close(self, timeout: float = 2.0) -> None:  # the rebuilder, a daemon thread, may finish a read first
        self._stopped = True
        self._changed.set()

    def wait_for(self, predicate: Callable[[HashRing], bool], timeout: float = 10.0) -> HashRing:
        """Block until predicate(ring) holds; raise TimeoutError if it does not within `timeout`."""
        with self._built:
            if not self._built.wait_for(lambda: predicate(self.ring), timeout):
                raise TimeoutError(f"ring never satisfied the condition; it holds {self.ring.nodes}")
            return self.ring

    def _on_children(self, children: list[str]) -> bool:  # on kazoo's one event thread: record, wake, return
        if self._stopped:
            return False  # tells kazoo to drop the watch
        self._children = children
        self._changed.set()
        return True

    def _member_changed(self, event: object) -> None:
        self._changed.set()  # a member's data changed or its znode went; or the session ended, taking every watch

    def _rebuild_loop(self) -> None:
        failures = 0
        while self._changed.wait() and not self._stopped:
            self._changed.clear()
            try:
                self._rebuild(self._children)
                failures = 0
            except Exception as exc:  # a dead rebuilder would leave this router on a stale ring forever
                if not isinstance(exc, (KazooException, KazooTimeoutError)):
                    log.warning("ring watcher: rebuild failed (%s: %s); retrying", type(exc).__name__, exc)
                    with self._built:  # a constructor waiting for the first ring hears of it
                        self._failure = exc
                        self._built.notify_all()
                while not self._stopped and not self.client.connected:
                    time.sleep(0.05)
                time.sleep(min(1.0, 0.05 * 2 ** min(failures := failures + 1, 5)))  # repeated failures: back off
                self._changed.set()

    def _rebuild(self, children: list[str]) -> None:
        """Step 5. Make self.ring the ring of `children`: build it aside, swap it in with one assignment
        (under self._built, counting self.changes and waking wait_for), then tell _note_ignored and on_change."""
        old = self.ring
        weights, refused = self._read_members(children)
        new = HashRing(self.vnodes, self._fit(weights, refused))
        with self._built:
            self.ring = new  # readers see the old ring or the new one, never half of one
            self.changes += 1
            self._built.notify_all()
        self._note_ignored(refused)
        if self._on_change and new.fingerprint != old.fingerprint:
            self._on_change(old, new)

    def _read_members(self, names: list[str]) -> tuple[dict[str, float], dict[str, str]]:
        """Step 6. ({name: weight}, {name: why refused}) for these members, each read with a data watch that
        fires once when its data changes or its znode goes: a children watch sees neither. All asked at once."""
        pending = {name: self.client.get_async(f"{self.path}/{name}", watch=self._member_changed) for name in names}
        weights, refused = {}, {}
        for name, answer in pending.items():
            try:
                data, stat = answer.get(timeout=self.timeout)
                weight = parse_weight(data)  # bad data is the first thing to tell, persistent or not
                if not stat.ephemeralOwner:
                    raise ValueError(NOT_EPHEMERAL)  # a persistent znode outlives every session
                weights[name] = weight
            except NoNodeError:
                continue  # left already; the next children event says so
            except ValueError as exc:
                refused[name] = str(exc)
        return weights, refused

    def _fit(self, weights: dict[str, float], refused: dict[str, str]) -> dict[str, float]:
        """The members that fit in MAX_POINTS, those on the ring first; the rest go to `refused`."""
        fitted, room = {}, MAX_POINTS
        for name in sorted(weights, key=lambda n: (n not in self.ring, n)):
            if (need := points_needed({name: weights[name]}, self.vnodes)) > room:
                refused[name] = f"the ring is full (MAX_POINTS {MAX_POINTS:,} points)"
            else:
                fitted[name], room = weights[name], room - need
        return fitted

    def _note_ignored(self, refused: dict[str, str]) -> None:
        """Remember the members kept off the ring; warn once about each new refusal, not on every rebuild."""
        with self._built:
            heard, self.ignored = self.ignored, refused
            self._built.notify_all()
        for name, why in refused.items():
            if heard.get(name) != why:
                log.warning("ring watcher: member %r is not on the ring: %s", name, why)  # a name is data too
                if self._on_ignored:
                    self._on_ignored(name, why)


# ================================================================ the demo
# Members join, leave and crash; a router follows them through ZooKeeper; each change prints what it
# moved next to the ideal. The lab's richer demo of this same recipe: `python -m zklab.demo_hashing`.

ROOT = "/lab/consistent-hashing"
CONNECT_TIMEOUT = 5.0  # how long a client may take to connect, or ZooKeeper to answer, before we give up
STOP_TIMEOUT = 1.5     # kazoo's stop() can wait max(10 s, session timeout) for a server that is gone
RUN_ID = os.urandom(2).hex()  # member names stay unique when two copies of this script run
SESSION_HELP = ("seconds (default 4). ZooKeeper grants 2 to 20 ticks: 0.5-60 s on the lab's servers "
                "(tick 250 ms, max 60 s), 4-40 s on a stock server")


def ideal_fraction(old: Mapping[str, float], new: Mapping[str, float]) -> float:
    """The least any scheme must move: the weight share of the members that joined or left."""
    joined = sum(w for n, w in new.items() if n not in old) / sum(new.values()) if new else 0
    left = sum(w for n, w in old.items() if n not in new) / sum(old.values()) if old else 0
    return joined + left


class Demo:
    def __init__(self, args: argparse.Namespace, shutdown: Shutdown):
        self.args, self.shutdown, self.started = args, shutdown, time.monotonic()
        self.ends, self.keys = self.started + (args.duration or math.inf), [f"key:{i}" for i in range(args.keys)]
        self.client, self.members = new_client(args.zk, args.session_timeout), {}  # the router's session
        self.router, self.rng, self.joined, self.ratios = None, random.Random(args.seed), 0, []

    def say(self, text: str) -> None:
        self.shutdown.print(f"{time.monotonic() - self.started:7.2f}s  {text}")

    def left(self) -> float:
        return max(0.1, min(CONNECT_TIMEOUT, self.ends - time.monotonic()))

    def run(self) -> None:
        """The demo's own thread: the main thread keeps the deadline and the signals, whatever happens here."""
        plan = ["join"] * self.args.members + ["join", "leave", "crash"]  # a short run shows each lesson once
        try:
            self.router = RingWatcher(self.client, ROOT, timeout=self.left())
            while not self.shutdown.requested.is_set() and time.monotonic() < self.ends:
                action = plan.pop(0) if plan else self.rng.choice(["join", "leave", "crash"])
                self.join() if action == "join" or len(self.members) < 2 else self.depart(action == "crash")
                if self.joined >= self.args.members:  # the first members join without a pause
                    self.shutdown.requested.wait(max(0.0, min(self.args.interval, self.ends - time.monotonic())))
        except NoAuthError:  # an ACL refused: said in the leader script's words
            self.shutdown.request(f"error: ZooKeeper refused to create or read {parse_zk(self.args.zk)[1]}{ROOT} "
                                  "(NoAuthError); grant CREATE and READ on the way, or choose another chroot in --zk")
        except Exception as exc:  # NotImplementedError: a step still to write, or ZooKeeper went away
            if time.monotonic() < self.ends and not self.shutdown.requested.is_set():
                self.shutdown.request(f"error: the demo stopped, working under {ROOT}: {exc!r}")
        self.shutdown.request("done")

    def join(self) -> None:
        self.joined += 1
        name, before = f"m{self.joined}-{RUN_ID}", self.router.ring
        client = self.members[name] = new_client(self.args.zk, self.args.session_timeout)
        if start_client(client, self.left(), self.shutdown.requested):
            register_node(client, ROOT, name, timeout=self.left())
            self.say(f"+ {name} joins: an ephemeral znode under {ROOT}/members")
            self.show(before, lambda ring: name in ring)

    def depart(self, crash: bool) -> None:
        name = self.rng.choice(sorted(self.members))
        client, before = self.members.pop(name), self.router.ring
        if crash:  # no goodbye: ZooKeeper ends the session once it has heard nothing for a session timeout
            self.say(f"x {name} crash: its session is expired at once, where a real crash waits one session timeout")
            client.set_hosts("127.0.0.1:9" + parse_zk(self.args.zk)[1])  # its reconnects go nowhere, and...
            twin = new_client(self.args.zk, client_id=client.client_id)  # ...the same session, taken over, ends
            start_client(twin, self.left())
            stop_client(twin, STOP_TIMEOUT)
        else:
            self.say(f"- {name} leaves: it closes its session, so ZooKeeper deletes its znode")
        stop_client(client, STOP_TIMEOUT)
        self.show(before, lambda ring: name not in ring)

    def show(self, before: HashRing, changed: Callable[[HashRing], bool]) -> None:
        after = self.router.wait_for(changed, timeout=self.left())
        owners = [after.owner(k) for k in self.keys]
        counts, total = Counter(owners), sum(after.weights.values())
        busiest = max(counts[n] * total / (w * len(owners)) for n, w in after.weights.items())
        line = f"  ring of {len(after)}: the busiest member holds {busiest:.2f}x its fair share"
        if len(before):
            moved = sum(before.owner(k) != o for k, o in zip(self.keys, owners, strict=True)) / len(owners)
            self.ratios.append(moved / (ideal := ideal_fraction(before.weights, after.weights)))
            line += f"; moved {moved:.2%} of {len(owners):,} keys (ideal {ideal:.2%}: the changed member's share)"
        self.say(line)

    def close(self) -> None:
        """Every session closes, in parallel and bounded: ZooKeeper deletes each member's znode at once."""
        self.shutdown.request("closing")
        if self.router:
            self.router.close()
        deadline = time.monotonic() + STOP_TIMEOUT
        for client in [*self.members.values(), self.client]:  # a round trip each, all within STOP_TIMEOUT
            stop_client(client, max(0.0, deadline - time.monotonic()))


# ---------------------------------------------------------------- command line

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(allow_abbrev=False,
                                     description="Consistent hashing over ZooKeeper membership: a compact demo.")
    parser.add_argument("--zk", type=zk_arg, default=os.environ.get("ZK_HOSTS", "127.0.0.1:2181"),
                        help=f"ZooKeeper, {ZK_FORM} (default: $ZK_HOSTS or 127.0.0.1:2181)")
    parser.add_argument("--members", type=number_arg(int, 1, 100), default=4, help="members at start (default 4)")
    parser.add_argument("--keys", type=number_arg(int, 1, 1_000_000), default=10_000, help="keys to route (10,000)")
    parser.add_argument("--interval", type=number_arg(float, 0.1, 3600), default=2.0, help="seconds between changes")
    parser.add_argument("--duration", type=number_arg(float, 0, 1e6, above=True), help="seconds (default: Ctrl-C)")
    parser.add_argument("--seed", type=number_arg(int, 0, 999_999), default=None, help="seed for the choice of changes")
    parser.add_argument("--session-timeout", type=number_arg(float, 0.5, 60), default=4.0, help=SESSION_HELP)
    parser.error = lambda message: parser.exit(2, f"{parser.prog}: error: {message}; --help says more\n")  # no usage
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.getLogger("kazoo").setLevel(logging.CRITICAL)  # its reconnect chatter would drown the demo
    demo = Demo(args, Shutdown().install())
    hosts, chroot = args.zk.partition("/")[0], parse_zk(args.zk)[1]
    try:
        if not start_client(demo.client, demo.left(), demo.shutdown.requested):  # --duration bounds it too
            demo.shutdown.request(f"error: cannot reach ZooKeeper at {hosts}; start one: `./run.sh zk start` or "
                                  "`docker compose up -d`")
        elif chroot and demo.client.exists_async("/").get(timeout=CONNECT_TIMEOUT) is None:
            demo.shutdown.request(f"error: chroot {chroot} does not exist on ZooKeeper at {hosts}; create it or "
                                  "drop it from --zk")
        else:
            threading.Thread(target=demo.run, name="demo", daemon=True).start()
            demo.shutdown.requested.wait(min(threading.TIMEOUT_MAX, demo.ends - time.monotonic() + CONNECT_TIMEOUT))
    finally:
        demo.close()
    if demo.shutdown.why.startswith("error"):
        return print(demo.shutdown.why, file=sys.stderr) or 1
    if demo.shutdown.stdout_error:  # a full disk, not a reader who left (`| head`)
        return print(f"error: cannot write to stdout ({demo.shutdown.stdout_error})", file=sys.stderr) or 1
    if ratios := demo.ratios:
        demo.say(f"summary: keys moved / ideal over {len(ratios)} changes: mean {sum(ratios) / len(ratios):.2f}x, "
                 f"worst {max(ratios):.2f}x")
    return 0


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
