"""The hash ring's guarantees, measured through the script's public API: HashRing, RingWatcher, register_node.

Rules of these scenarios:
- the ring's own promises (agreement across processes, balance, minimal movement, weights, the wrap,
  an empty ring, order of joins) need no ZooKeeper; the routers' promises (they follow membership and
  weight changes in place, swap whole rings, never block kazoo's event thread, keep foreign members
  off) run against a real one;
- nothing here reads private attributes or source; each failure names the step function that holds
  its rule, and shows the few keys or points that prove it.
"""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import sys
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable

from kazoo.client import KazooClient
from kazoo.protocol.states import Callback

from zklab.check_lab import GET_DATA, Broken, Check, Findings, Lab, Verdict, env_without, qualname_at, wait_for
from zklab.proxy import PartitionProxy

KEYS = [f"key:{i}" for i in range(100_000)]
TEN = [f"node-{i}" for i in range(10)]
ROOT = "/ring"
# With 160 points, a member's share strays from the mean by about 1/sqrt(160) = 8% (one standard deviation),
# wherever the points happen to fall: measured over 60 seeds, the busiest of 10 held 1.05 to 1.25x its
# share, and labels other than name#i ("name-i", "name_i") land anywhere in that range. So the bounds sit
# about 4 of those 8% out: every correct ring passes (these miss it about once in a thousand), and one
# point, or 10, per member still fails (1 point: 2 to 3x; 10 points: 1.31x at best).
# A join or leave may move between these multiples of the ideal share (the changed member's share).
MOVE_LOW, MOVE_HIGH = 0.7, 1.3
# The busiest of 10 members may hold this multiple of its fair share.
MAX_BALANCE = 1.3
# Routers must agree this soon after a change reaches ZooKeeper.
CONVERGE = 1.0
# In the callback check, ZooKeeper's answers to getData are held back this long.
SLOW_READ = 0.4

ADVICE_POINT = ("A key's position must come from the same 128-bit point() as the members' points: hash() is "
                "below 2**63, under every point, so every key wraps to one member. Look at point() and "
                "HashRing.owner.")


def owners(ring: object, keys: list[str] = KEYS) -> list[str]:
    return [ring.owner(k) for k in keys]


_TEN_OWNERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def ten_owners(script: object) -> list[str]:
    """The owners of KEYS on a ring of TEN, computed once per loaded script: balance, join and leave
    all start from it (100,000 lookups each time otherwise)."""
    if script not in _TEN_OWNERS:
        _TEN_OWNERS[script] = owners(script.HashRing(nodes=TEN))
    return _TEN_OWNERS[script]


# ---------------------------------------------------------------- agreement across processes

AGREE_CODE = """
import faulthandler, importlib.util, signal, sys
faulthandler.register(signal.SIGUSR1, all_threads=False)  # the checker asks where it is, if it takes too long
spec = importlib.util.spec_from_file_location("challenge", sys.argv[1])
module = importlib.util.module_from_spec(spec)
sys.modules["challenge"] = module
spec.loader.exec_module(module)
ring = module.HashRing(nodes=[f"node-{i}" for i in range(10)])
print(",".join(ring.owner(f"key:{i}") for i in range(int(sys.argv[2]))))
"""


def start_agree(script_file: str) -> list[subprocess.Popen]:
    """The two fresh processes of the agree check, started early: they route while other checks run."""
    return [subprocess.Popen([sys.executable, "-c", AGREE_CODE, script_file, str(len(KEYS))],
                             env={**env_without("PYTHONHASHSEED"), "PYTHONHASHSEED": seed}, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for seed in ("1", "2")]


# How long a fresh process may take to build a ring of 10 and route KEYS: the reference takes about a second
# (two on a loaded machine); one lookup that scans every point takes minutes.
AGREE_WITHIN = 8.0


def script_lines(stack: str, script_file: str) -> list[int]:
    """The lines of the script in a stack a process printed (a traceback, or faulthandler's dump), in its order."""
    return [int(n) for n in re.findall(rf'File "{re.escape(script_file)}", line (\d+)', stack)]


def where_it_runs(proc: subprocess.Popen, script_file: str) -> str:
    """Ask a process that takes too long where it is (faulthandler, on SIGUSR1), then kill it:
    'HashRing.owner_at() (line 120)' for the innermost line of the script it was running ('' if none)."""
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGUSR1)
    try:
        _, err = proc.communicate(timeout=1.0)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    lines = script_lines(err, script_file)
    where = qualname_at(script_file, lines[0]) if lines else None  # faulthandler: the most recent call first
    return f"{where}() (line {lines[0]})" if where else ""


def agree(lab: Lab, found: Findings, prepared: list[subprocess.Popen] | None = None) -> None:
    procs = prepared or start_agree(lab.script.__file__)
    lab.on_close(lambda: [proc.kill() for proc in procs])
    answers = []
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=AGREE_WITHIN)
        except subprocess.TimeoutExpired:
            where = where_it_runs(proc, lab.script.__file__)
            found.fail("agree", f"a fresh process building a ring of 10 and routing {len(KEYS):,} keys did not "
                       f"finish within {AGREE_WITHIN:.0f} s" + (f"; it was in {where}" if where else ""),
                       "Each lookup must be quick: HashRing.owner_at finds the first point at or after the key's "
                       "by binary search (bisect) over the sorted points; a scan of every point for every key, or "
                       "a loop that never ends, takes minutes" + (f". Look at {where.split(' (')[0]}." if where
                                                                   else "."))
            return
        if proc.returncode:
            last = (err.strip().splitlines() or ["no output"])[-1]
            lines = script_lines(err, lab.script.__file__)
            where = qualname_at(lab.script.__file__, lines[-1]) if lines else None
            if where and last.startswith("NotImplementedError"):  # a step still to write, like anywhere else
                found.verdicts["agree"] = Verdict("agree", False, f"not written yet: {where}", f"Write {where}: its "
                                                  "docstring says what it must do. Then check again.", unwritten=where)
                return
            found.fail("agree", f"a fresh process could not route: {last}" + (f" (in {where})" if where else ""),
                       "The script must import and build a ring on its own" +
                       (f": look at {where}, where it raised." if where else "."))
            return
        answers.append(out.strip().split(","))
    same = sum(a == b for a, b in zip(*answers, strict=False))
    found.judge("agree", same == len(KEYS),
                f"2 processes (PYTHONHASHSEED 1 and 2) agree on {same:,} of {len(KEYS):,} keys",
                "Routers in different processes would send the same key to different members. Python salts "
                "hash() per process: place members and keys with mmh3 and a fixed seed (point()).")


# ---------------------------------------------------------------- balance, movement, weights

def shared_points(script: object) -> str:
    """Two members whose point labels coincide (m1's 10th and m11's 1st, if labels lack a separator), said in one
    line; '' if the points of m1..m20 are all distinct, or too narrow to tell (the points guarantee says so)."""
    points = {name: script.member_points(name, 1, script.DEFAULT_VNODES) for name in (f"m{i}" for i in range(1, 21))}
    every = [x for p in points.values() for x in p]
    if not all(isinstance(x, int) for x in every) or max(every, default=0) < 2**64:
        return ""  # narrow points collide by chance: not a label's fault
    seen: dict[int, str] = {}
    for name, mine in points.items():
        for p in mine:
            if seen.setdefault(p, name) != name:
                return f"{seen[p]} and {name} share point {p:#x}: their labels coincide"
    return ""


def balance(lab: Lab, found: Findings) -> None:
    if shared := shared_points(lab.script):
        return found.fail("balance", shared, "Each point's label must name its member unmistakably: without a "
                          "separator, m1's 10th label (m1 + 10) is m11's first (m11 + 0), so they share points and "
                          "the first to sort takes the keys at both. Look at member_points.")
    counts = Counter(ten_owners(lab.script))
    busiest, most = counts.most_common(1)[0]
    ratio = most / (len(KEYS) / len(TEN))
    if found.judge("balance", ratio <= MAX_BALANCE,
                   f"busiest of 10 members holds {ratio:.2f}x its fair share (at most {MAX_BALANCE})", ""):
        return
    found.fail("balance", f"{busiest} holds {most:,} of {len(KEYS):,} keys: {ratio:.2f}x its fair share "
               f"(at most {MAX_BALANCE})",
               ADVICE_POINT if ratio >= 5 else "With few points per member, arcs differ wildly in length and "
               "one member carries several times its share. Give each member many points (vnodes, "
               "DEFAULT_VNODES): look at member_points.")
    found.verdicts["balance"].evidence = ["the busiest, of 10 members (10,000 keys each is fair):",
                                          *(f"{name}: {count:,} keys" for name, count in counts.most_common(3))]


def movement(found: Findings, key: str, ring: object, change: str, member: str, ideal: float,
             before: list[str] | None = None) -> None:
    """Judge the keys that moved when `member` joined or left (`before`: the owners already known)."""
    before = before or owners(ring)
    ring.add(member) if change == "join" else ring.remove(member)
    after = owners(ring)
    moved = [(b, a) for b, a in zip(before, after, strict=True) if b != a]
    share = len(moved) / len(KEYS)
    others = {a if change == "join" else b for b, a in moved} - {member}
    direction = "to the new member" if change == "join" else "from the leaving member"
    ok = not others and MOVE_LOW * ideal <= share <= MOVE_HIGH * ideal
    if ok:
        found.hold(key, f"{change} moved {share:.1%} of keys (ideal {ideal:.1%}), all {direction}")
    elif others:
        found.fail(key, f"{change} moved {share:.1%} of keys (ideal {ideal:.1%}), some between members "
                   f"that did not change ({', '.join(sorted(others)[:3])})",
                   "Every key that moves must go to the joiner or come from the leaver; otherwise caches and "
                   "data move for nothing. Look at how the points are placed: place_points, member_points.")
    else:
        found.fail(key, f"{change} moved {share:.1%} of keys, ideal {ideal:.1%} (the changed member's share)",
                   ADVICE_POINT if share in (0.0, 1.0) or len(set(before)) == 1 else "The changed member owned "
                   "far more or less than its share: with few points per member the arcs are uneven "
                   "(DEFAULT_VNODES). Look at member_points.")
    if not ok:
        shown = [f"{k}: {b} -> {a}" for k, b, a in zip(KEYS, before, after, strict=True) if b != a
                 and (not others or (a if change == "join" else b) in others)][:3]
        found.verdicts[key].evidence = [f"{change} of {member}; keys that moved, for example:", *shown]


def join(lab: Lab, found: Findings) -> None:
    movement(found, "join", lab.script.HashRing(nodes=TEN), "join", "node-new", 1 / 11, ten_owners(lab.script))


def leave(lab: Lab, found: Findings) -> None:
    movement(found, "leave", lab.script.HashRing(nodes=TEN), "leave", "node-3", 1 / 10, ten_owners(lab.script))


# (weight, vnodes, points wanted): the lightest member still gets one point, and a fraction rounds to the
# nearest whole point (0.5 x 3 is 1.5: 2 points; int() would drop the half, shorting every light member).
FEW_POINTS = [(None, 1, 1), (0.5, 3, 2), (0.7, 4, 3)]   # None: MIN_WEIGHT
ADVICE_FEW = ("A member gets max(1, round(vnodes x weight)) points: round, not int(), so 1.5 points are 2; "
              "and at least one, or the lightest member owns no key and a ring of it alone says it is empty. "
              "Look at member_points.")


def few_points(lab: Lab, found: Findings) -> bool:
    """False (and the weights verdict failed) when a light member on few vnodes gets the wrong point count."""
    for weight, vnodes, want in FEW_POINTS:
        weight = lab.script.MIN_WEIGHT if weight is None else weight
        ring = lab.script.HashRing(vnodes=vnodes, nodes={"light": weight})
        owner, error = attempt(lambda r=ring: r.owner("key:1"))
        if ring.point_count != want or owner != "light":
            found.fail("weights", f"a lone member of weight {weight:g} on {vnodes} vnode{'s' * (vnodes > 1)} got "
                       f"{ring.point_count} point{'s' * (ring.point_count != 1)}, {want} wanted; owner('key:1') "
                       f"gave {error or repr(owner)}", ADVICE_FEW)
            return False
    return True


def weights(lab: Lab, found: Findings) -> None:
    if not few_points(lab, found):
        return
    counts = Counter(owners(lab.script.HashRing(nodes={**{n: 1 for n in TEN[:9]}, "heavy": 2})))
    light = sum(counts[n] for n in TEN[:9]) / 9
    ratio = counts["heavy"] / light if light else float("inf")
    found.judge("weights", 1.7 <= ratio <= 2.3,
                f"a weight-2 member holds {ratio:.2f}x a weight-1 member's keys (2x wanted); the lightest "
                "gets 1 point, 0.5 x 3 vnodes 2",
                ADVICE_POINT if len(counts) == 1 else
                "A member with twice the weight must get twice the points, and enough points per member that "
                "its share follows them (vnodes x weight; DEFAULT_VNODES). Look at member_points.")


# ---------------------------------------------------------------- wide points

def wide_points(lab: Lab, found: Findings) -> None:
    labels = [f"m{i}#{j}" for i in range(1000) for j in range(100)]  # 1,000 members, 100 points each
    points = [lab.script.point(label) for label in labels]
    if not all(isinstance(p, int) for p in points):
        kind = next(type(p).__name__ for p in points if not isinstance(p, int))
        found.fail("points", f"point() gave a {kind}, not an integer",
                   "Points must compare as integers: as strings, \"10\" sorts before \"9\". Look at point().")
        return
    if (outside := next((p for p in points if not 0 <= p < 2**128), None)) is not None:
        found.fail("points", f"point() gave {outside}, outside the ring's positions 0 to 2**128 - 1",
                   "A point is a position on the ring, from 0 to 2**128 - 1: HashRing.owner_at takes a position "
                   "past the last point back to the first, and TOP (2**128 - 1) is the last one. mmh3.hash128 is "
                   "unsigned unless told signed=True. Look at point().")
        return
    as_text, as_bytes = attempt(lambda: lab.script.point("clé-7")), attempt(lambda: lab.script.point("clé-7".encode()))
    if as_text != as_bytes:
        found.fail("points", f"point('clé-7') is {as_text[0] or as_text[1]} but point(b'cl\\xc3\\xa9-7') is "
                   f"{as_bytes[0] or as_bytes[1]}: a key given as bytes lands elsewhere than the same key as text",
                   "A key may come as str or as its UTF-8 bytes: both must land at one point. mmh3.hash128 takes "
                   "either (it encodes str as UTF-8); str(b'...') hashes \"b'...'\" instead. Look at point().")
        return
    distinct, widest = len(set(points)), max(points)
    found.judge("points", distinct == len(labels) and widest >= 2**64,
                f"100,000 member points land on {distinct:,} distinct positions ({widest.bit_length()}-bit)",
                "Points on a narrow ring collide: by the birthday bound, 10,000 slots give two members the same "
                "point at about 120 members. Use all 128 bits of the hash: look at point().")


# ---------------------------------------------------------------- the order of joins

def order(lab: Lab, found: Findings) -> None:
    ring_class, script = lab.script.HashRing, lab.script
    forward = ring_class(nodes=TEN)
    orders = [TEN[::-1], sorted(TEN, key=lambda n: script.point(n))]
    rings = [ring_class(nodes=names) for names in orders]
    keys = KEYS[:20_000]
    if any(owners(r, keys) != owners(forward, keys) or r.fingerprint != forward.fingerprint for r in rings):
        found.fail("order", "members added in another order gave different owners",
                   "Two routers that saw members join in different orders would route differently. Look at "
                   "how the points are sorted: place_points.")
        return
    differ = tie_differences(script)
    found.judge("order", differ == 0,
                "members added in 4 orders, and one removed, give the same owners, even with 4-bit points "
                "(ties everywhere)" if not differ else
                f"when points tie, the order of joins changed the owner of {differ:,} of 2,000 keys",
                "Two routers that saw members join in different orders would route differently. Break ties "
                "between equal points by member name: look at place_points.")


def tie_differences(script: object) -> int:
    """With point() cut to 16 positions (ties everywhere): the most keys whose owner depends on join order."""
    ring_class, real = script.HashRing, script.point
    script.point = lambda label: int(real(label)) % 16
    try:
        names, keys = [f"n{i}" for i in range(6)], KEYS[:2000]
        bulk = owners(ring_class(vnodes=5, nodes=names), keys)
        differ = 0
        for sequence in (names, names[::-1], names[3:] + names[:3]):
            ring = ring_class(vnodes=5)
            for name in sequence:
                ring.add(name)
            differ = max(differ, sum(a != b for a, b in zip(owners(ring, keys), bulk, strict=True)))
            if sequence is names:
                ring.remove("n3")
                without = owners(ring_class(vnodes=5, nodes=[n for n in names if n != "n3"]), keys)
                differ = max(differ, sum(a != b for a, b in zip(owners(ring, keys), without, strict=True)))
    finally:
        script.point = real
    return differ


# ---------------------------------------------------------------- routers in ZooKeeper

def converge(routers: list[object], members: set[str], bound: float, key: str, what: str) -> float:
    """Wait until every router holds exactly `members` with one fingerprint; the seconds it took."""
    started = time.monotonic()
    wait_for(lambda: all(set(r.ring.nodes) == members for r in routers)
             and len({r.ring.fingerprint for r in routers}) == 1, bound, key,
             f"after {what}, the routers did not agree within {bound:.1f} s "
             f"(they hold {[sorted(r.ring.nodes) for r in routers]}, want {sorted(members)})",
             "Each router must rebuild its ring on every children event. Look at RingWatcher._rebuild.")
    return time.monotonic() - started


def router(lab: Lab, chroot: str, via: str | None = None) -> object:
    watcher = lab.script.RingWatcher(lab.client(chroot, via=via), ROOT)
    lab.on_close(watcher.close)
    return watcher


def routers(lab: Lab, found: Findings) -> None:
    chroot, proxy = lab.namespace(), lab.proxy()
    pair = [router(lab, chroot) for _ in range(2)]
    register = lab.script.register_node
    register(lab.client(chroot), ROOT, "stable")
    crasher = lab.client(chroot, timeout=4.0, via=proxy.address)
    register(crasher, ROOT, "crasher", weight=2)
    converge(pair, {"stable", "crasher"}, 3 * CONVERGE, "routers", "two members registered")
    if pair[0].ring.weights != {"stable": 1, "crasher": 2}:
        found.fail("routers", f"the router read weights {pair[0].ring.weights}, registered 1 and 2",
                   misread(lab) or "register_node stores the weight in the member's znode; the router must read "
                   "it: look at RingWatcher._read_members.")
        return
    leaver = lab.client(chroot)
    register(leaver, ROOT, "leaver")
    joined = converge(pair, {"stable", "crasher", "leaver"}, CONVERGE, "routers", "a join")
    leaver.delete(f"{ROOT}/members/leaver")
    left = converge(pair, {"stable", "crasher"}, CONVERGE, "routers", "a clean leave")
    crashed = crash(lab, crasher, proxy, chroot, lambda: converge(pair, {"stable"}, CONVERGE, "routers",
                                                                 "a crash (its session ended)"))
    found.hold("routers", f"2 routers agreed {joined * 1000:.0f} ms after a join, {left * 1000:.0f} ms after a "
               f"leave, {crashed * 1000:.0f} ms after a crash; weights read from ZooKeeper")


def misread(lab: Lab) -> str:
    """Advice blaming parse_weight if it misreads a member's data as register_node writes it; '' if it reads it
    right (then the router's reading is to blame)."""
    data = b'{"weight": 3}'
    got, error = attempt(lambda: lab.script.parse_weight(data))
    if not error and got == 3:
        return ""
    return (f"parse_weight({data!r}) gave {error or repr(got)}, not 3: it turns a member's data into its weight, "
            "and the router keeps what it returns. Look at parse_weight.")


def crash(lab: Lab, member: KazooClient, proxy: PartitionProxy, chroot: str, converged: Callable[[], object]) -> float:
    """Cut `member` off and end its session as ZooKeeper's expiry would; seconds until `converged` returns."""
    session = member.client_id  # its id and password; kazoo forgets them once the link drops
    proxy.cut()
    twin = KazooClient(hosts=lab.zk_address + chroot, client_id=session)
    lab.on_close(lambda: (twin.stop(), twin.close()))
    twin.start(timeout=5)
    started = time.monotonic()
    twin.stop()                 # closes the session: ZooKeeper deletes its ephemeral znode and fires the watches
    converged()
    return time.monotonic() - started


def swap(lab: Lab, found: Findings) -> None:
    chroot = lab.namespace()
    watcher = router(lab, chroot)
    lab.script.register_node(lab.client(chroot), ROOT, "a")
    converge([watcher], {"a"}, 3 * CONVERGE, "swap", "a join")
    held = watcher.ring
    members, routes = list(held.nodes), owners(held, KEYS[:1000])
    lab.script.register_node(lab.client(chroot), ROOT, "b")
    converge([watcher], {"a", "b"}, CONVERGE, "swap", "a second join")
    found.judge("swap", held.nodes == members and owners(held, KEYS[:1000]) == routes and watcher.ring is not held,
                "a reader holding the ring during a join kept a whole ring of 1 member; the router swapped in "
                "a new one of 2",
                "The ring a reader held changed under it: a router routing during a rebuild in place can meet "
                "a half-built ring (a member removed, the next not yet added). Build the new ring aside and "
                "swap it in with one assignment: look at RingWatcher._rebuild.")
    if held.nodes != members:
        found.verdicts["swap"].figure = (f"a reader holding the ring saw its members change from {members} to "
                                         f"{held.nodes} under it")


class EventThreadProbe:
    """How long kazoo's event thread keeps a callback waiting: every other watch waits as long."""

    def __init__(self, client: object):
        self.client, self.worst = client, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="event-probe", daemon=True)
        self._thread.start()

    def stop(self) -> float:
        self._stop.set()
        self._thread.join(3 * SLOW_READ + 1)
        return self.worst

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            ran, sent = threading.Event(), time.monotonic()
            self.client.handler.dispatch_callback(Callback("watch", ran.set, ()))
            ran.wait(3 * SLOW_READ)
            self.worst = max(self.worst, time.monotonic() - sent)


def callback(lab: Lab, found: Findings) -> None:
    chroot, tap = lab.namespace(), lab.tap(delay_data=SLOW_READ)
    client = lab.client(chroot, via=tap.address)
    watcher = lab.script.RingWatcher(client, ROOT)
    lab.on_close(watcher.close)
    probe = EventThreadProbe(client)
    lab.on_close(probe.stop)
    lab.script.register_node(lab.client(chroot), ROOT, "slow")
    converge([watcher], {"slow"}, SLOW_READ + 2 * CONVERGE, "callback", "a join whose data was slow to read")
    worst = probe.stop() * 1000
    found.judge("callback", worst < SLOW_READ * 1000 / 2,
                f"kazoo's event thread stayed free (longest wait {worst:.0f} ms while a member's data took "
                f"{SLOW_READ * 1000:.0f} ms to arrive)" if worst < SLOW_READ * 500 else
                f"kazoo's event thread was blocked {worst:.0f} ms while a member's data was read",
                "Kazoo runs every watch callback and listener of a client on one thread: while one waits on "
                "ZooKeeper, all others wait too. A callback only stores what it was given and wakes a thread "
                "of yours, where RingWatcher._rebuild reads: look at the children callback, "
                "RingWatcher._on_children.")


# ---------------------------------------------------------------- members written by hand

# Member znodes anyone could write with zkCli.sh: (name, data, ephemeral?). Only "valid" may join.
# "nested" is JSON 100,000 arrays deep: json.loads raises RecursionError, not ValueError, unless the data's size
# is bounded first. "oversized" is a good record padded past any small bound: reading it is not a router's job.
OVERSIZED = 10_000   # bytes; ours is {"weight": 2.5}, 14 bytes: any bound a router keeps is far below this
FOREIGN_MEMBERS = [
    ("huge", b'{"weight": 1e9}', True),
    ("tiny", b'{"weight": 1e-9}', True),
    ("text", b'{"weight": "2"}', True),
    ("junk", b"\xff\xfe\x00junk", True),
    ("nested", b"[" * 100_000, True),
    ("deep", b"[" * 1000, True),          # under MAX_DATA_BYTES, yet deeper than json's recursion allows
    ("listed", b'["weight"]', True),      # "weight" in it, yet no dict: doc["weight"] raises TypeError
    ("quoted", b'"weight"', True),
    ("oversized", b'{"weight": 1, "pad": "' + b"x" * OVERSIZED + b'"}', True),
    ("persistent", b'{"weight": 1}', False),
    ("valid", b'{"weight": 2}', True),
]


ADVICE_FOREIGN = ("One member with weight 1e9 takes 1.6e11 points: a router runs out of memory; foreign data "
                  "must never count as weight 1, nor a record past MAX_DATA_BYTES (not ours), and a persistent "
                  "member never leaves, so keys would go to it long after it died. A router keeps such a member "
                  "off its ring and reports it in RingWatcher.ignored: look at parse_weight (and check_weight), "
                  "and at how RingWatcher._read_members reads members (the znode's stat.ephemeralOwner).")
ADVICE_UNREPORTED = ("The routers kept the foreign members off their rings but never said so: a member nobody hears "
                     "of is a member nobody fixes. RingWatcher._rebuild must hand the refused members to "
                     "self._note_ignored, which keeps them in RingWatcher.ignored and warns once about each.")
ADVICE_UNPARSED = ("parse_weight must answer ValueError for any data that is not ours, whatever it holds: any other "
                   "exception fails the router's whole rebuild, again on every retry, so no member joins after it. "
                   "Bound the data's size before json.loads (deep nesting raises RecursionError). Look at "
                   "parse_weight.")


def watch_intruders(pair: list[object], bad: set[str], started: float) -> tuple[float | None, dict]:
    """Until CONVERGE: every foreign member seen on a router's ring ((router, name) -> weight), and when
    both routers held only the valid member with every other one reported as ignored (None: never)."""
    intruders: dict[tuple[int, str], object] = {}
    while time.monotonic() - started < CONVERGE:
        for i, watcher in enumerate(pair, 1):
            ring = watcher.ring
            intruders.update({(i, n): ring.weights[n] for n in set(ring.nodes) & bad})
        if all(set(r.ring.nodes) == {"valid"} and bad <= set(r.ignored) for r in pair):
            return time.monotonic() - started, intruders
        time.sleep(0.005)
    return None, intruders


REFUSALS = ("ValueError", "JSONDecodeError", "UnicodeDecodeError")   # parse_weight's answer to foreign data


def unparsed(lab: Lab) -> list[str]:
    """The foreign data on which parse_weight raised something other than ValueError, each said in one line."""
    said = []
    for name, data, _ in FOREIGN_MEMBERS:
        _, error = attempt(lambda d=data: lab.script.parse_weight(d))
        if error and not error.startswith(REFUSALS):
            said.append(f"parse_weight of {name!r} data ({data[:12]!r}..., {len(data):,} bytes) raised "
                        f"{error[:80]}, not ValueError")
    return said


def forgive_refusals(lab: Lab, since: int) -> None:
    """Forget the ValueErrors the script raised on foreign data since `since`: refusing is its answer, not a bug,
    so a failure names what else it raised (a RecursionError), not the first refusal."""
    errors = lab.errors.errors
    errors[since:] = [e for e in errors[since:] if e.kind not in REFUSALS]


ADVICE_GUESS = ("Refuse, never guess: data without a \"weight\" key is not ours (ValueError), and empty data is a "
                "member made by hand with zkCli.sh: weight 1. Look at parse_weight.")


def guesses(lab: Lab) -> str:
    """What parse_weight gets wrong on data whose answer is known without a router; '' if nothing."""
    got, error = attempt(lambda: lab.script.parse_weight(b""))
    if error or got != 1:
        return f"parse_weight(b'') gave {error or repr(got)}, where empty data means weight 1"
    for data in (b"{}", b'{"foo": 1}', b'{"Weight": 2}'):
        got, error = attempt(lambda d=data: lab.script.parse_weight(d))
        if not error.startswith(REFUSALS):
            return f"parse_weight({data!r}) gave {error or repr(got)}, where data without a weight is not ours"
    return ""


def foreign(lab: Lab, found: Findings) -> None:
    since = len(lab.errors.errors)
    lab.on_close(lambda: forgive_refusals(lab, since))
    if wrong := guesses(lab):
        return found.fail("foreign", wrong, ADVICE_GUESS)
    chroot = lab.namespace()
    pair = [router(lab, chroot) for _ in range(2)]
    writer, path = lab.client(chroot), lab.script.members_path(ROOT)
    bad = {name for name, _, _ in FOREIGN_MEMBERS if name != "valid"}
    started = time.monotonic()
    for name, data, ephemeral in FOREIGN_MEMBERS:
        writer.create(f"{path}/{name}", data, ephemeral=ephemeral)
    lab.on_close(lambda: [writer.delete(f"{path}/{name}") for name, _, ephemeral in FOREIGN_MEMBERS
                          if not ephemeral])
    joined, intruders = watch_intruders(pair, bad, started)
    if intruders:
        on = {name: (weight, sorted(i for i, n in intruders if n == name)) for (_, name), weight in intruders.items()}
        found.fail("foreign", "; ".join(f"member {name!r} got on the ring of router{'s' * (len(rs) > 1)} "
                                        f"{' and '.join(map(str, rs))} "
                                        f"with weight {weight!r}" for name, (weight, rs) in sorted(on.items())),
                   ADVICE_FOREIGN)
    elif joined is None:
        rings = [sorted(r.ring.weights.items()) for r in pair]
        unreported = sorted(n for n in bad if any(n not in r.ignored for r in pair))
        failed_parse = unparsed(lab)
        kept_off = all(held == [("valid", 2)] for held in rings)   # off the ring, but never said
        figure = ("both routers kept the foreign members off their rings" if kept_off else
                  f"within {CONVERGE:.1f} s the routers held {rings}, want [('valid', 2)]")
        found.fail("foreign", figure + (f"; {', '.join(unreported)} not reported in RingWatcher.ignored"
                                        if unreported else ""),
                   ADVICE_UNPARSED if failed_parse else ADVICE_UNREPORTED if kept_off else ADVICE_FOREIGN)
        found.verdicts["foreign"].evidence = failed_parse[:3]
    else:
        late_join(lab, found, chroot, pair, joined, len(bad))


def late_join(lab: Lab, found: Findings, chroot: str, pair: list[object], joined: float, refused: int) -> None:
    """A valid member joining after the foreign ones must still reach both routers: they keep rebuilding."""
    started = time.monotonic()
    lab.script.register_node(lab.client(chroot), ROOT, "late")
    try:
        wait_for(lambda: all(set(r.ring.nodes) == {"valid", "late"} for r in pair), CONVERGE, "foreign", "", "")
    except Broken:
        failed_parse = unparsed(lab)
        found.fail("foreign", f"a valid member that joined after the foreign ones did not reach both routers "
                   f"within {CONVERGE:.1f} s (they hold {[r.ring.nodes for r in pair]})",
                   ADVICE_UNPARSED if failed_parse else "A router must rebuild on every change, with foreign "
                   "members among the children: look at RingWatcher._read_members.")
        found.verdicts["foreign"].evidence = failed_parse[:3]
        return
    late = time.monotonic() - started
    if full_ring(lab, found):
        found.hold("foreign", f"{refused} members with foreign, oversized, out-of-range or persistent data stayed "
                   f"off both routers' rings, each reported in ignored; the valid one joined {joined * 1000:.0f} ms "
                   f"after the writes began, and one joining after them {late * 1000:.0f} ms later; on a full ring, "
                   "a third member waited in ignored until one left")


ADVICE_FULL = ("MAX_POINTS caps the ring so that no set of members can exhaust a router's memory: a member that "
               "does not fit is kept off and reported in RingWatcher.ignored, and the ring of those that fit is "
               "built all the same. A rebuild that raises instead leaves the router on its old ring for good. Look "
               "at RingWatcher._rebuild: build the ring of self._fit(weights, refused).")


def full_ring(lab: Lab, found: Findings) -> bool:
    """MAX_POINTS cut to two members' points: a third must wait in `ignored` while the routers route on, and
    get on once one leaves. False (and the verdict failed) if not."""
    script, saved = lab.script, lab.script.MAX_POINTS
    script.MAX_POINTS = 2 * script.DEFAULT_VNODES
    lab.on_close(lambda: setattr(script, "MAX_POINTS", saved))
    chroot = lab.namespace()
    pair, members = [router(lab, chroot) for _ in range(2)], lab.client(chroot)
    for name in ("a", "b", "c"):
        script.register_node(members, ROOT, name)
    try:
        wait_for(lambda: all(set(r.ring.nodes) == {"a", "b"} and "c" in r.ignored for r in pair), 3 * CONVERGE,
                 "foreign", "", "")
        members.delete(f"{script.members_path(ROOT)}/b")
        wait_for(lambda: all(set(r.ring.nodes) == {"a", "c"} for r in pair), CONVERGE, "foreign", "", "")
    except Broken:
        found.fail("foreign", f"with room for 2 members ({script.MAX_POINTS} points), a, b and c registered, then "
                   f"b left: the routers hold {[sorted(r.ring.nodes) for r in pair]}, ignoring "
                   f"{[sorted(r.ignored) for r in pair]}", ADVICE_FULL)
        return False
    return True


# ---------------------------------------------------------------- an empty ring, and the wrap

ADVICE_OWNER_AT = ("A position past the last point belongs to the first point's member: the ring is a circle. "
                   "And an empty ring has no owner: it raises LookupError saying so, not IndexError from a list. "
                   "Look at HashRing.owner_at.")
TOP = 2**128 - 1   # the last position on a 128-bit ring


def attempt(call: Callable[[], object]) -> tuple[object, str]:
    """(answer, '') or (None, 'IndexError: ...'): what a lookup gave."""
    try:
        return call(), ""
    except Exception as exc:
        return None, f"{type(exc).__name__}" + (f": {str(exc).splitlines()[0]}" if str(exc) else "")


def empty_ring(lab: Lab, found: Findings) -> None:
    ring = lab.script.HashRing(nodes=["a"])
    ring.remove("a")
    for ask, call in (("owner('key:1')", lambda: ring.owner("key:1")), ("owner_at(0)", lambda: ring.owner_at(0)),
                      ("a fresh ring's owner('key:1')", lambda: lab.script.HashRing().owner("key:1"))):
        try:
            answer = call()
        except IndexError as exc:
            found.fail("empty-ring", f"{ask} on an empty ring raised IndexError ({exc}), not a LookupError "
                       "that says the ring is empty", ADVICE_OWNER_AT)
            return
        except LookupError as exc:
            if not str(exc):
                found.fail("empty-ring", f"{ask} on an empty ring raised {type(exc).__name__} with no message",
                           ADVICE_OWNER_AT)
                return
            continue
        except Exception as exc:
            found.fail("empty-ring", f"{ask} on an empty ring raised {type(exc).__name__}: {exc}, not a "
                       "LookupError", ADVICE_OWNER_AT)
            return
        found.fail("empty-ring", f"{ask} on an empty ring answered {answer!r}", ADVICE_OWNER_AT)
        return
    found.hold("empty-ring", "an empty ring raises LookupError for a key or a position, never IndexError")


def wrap(lab: Lab, found: Findings) -> None:
    ring = lab.script.HashRing(vnodes=1, nodes=["a", "b"])
    placed = sorted((lab.script.member_points(name, 1, 1)[0], name) for name in ("a", "b"))
    (first, first_name), (last, last_name) = placed
    asks = [(last + 1, first_name), (TOP, first_name), (first, first_name), (last, last_name),
            (first + 1, last_name), (0, first_name)]
    for position, want in asks:
        got, error = attempt(lambda p=position: ring.owner_at(p))
        if got != want:
            shown = "the last point" if position > last else "the first point" if position <= first else "a point"
            found.fail("wrap", f"owner_at({position:#x}), at or past {shown}, gave "
                       f"{error or repr(got)}; {want!r} owns it", ADVICE_OWNER_AT)
            found.verdicts["wrap"].evidence = [f"{name}'s only point: {p:#034x}" for p, name in placed]
            return
    found.hold("wrap", "a position past the last point, up to 2**128-1, goes to the first point's member")


# ---------------------------------------------------------------- a weight changed in place

def weight_change(lab: Lab, found: Findings) -> None:
    chroot = lab.namespace()
    watcher = router(lab, chroot)
    member = lab.client(chroot)
    for name in ("a", "b"):
        lab.script.register_node(member, ROOT, name)
    converge([watcher], {"a", "b"}, 3 * CONVERGE, "weight-change", "two members registered")
    started = time.monotonic()
    member.set(f"{lab.script.members_path(ROOT)}/b", b'{"weight": 3}')   # in place: no join, no leave
    try:
        wait_for(lambda: watcher.ring.weights.get("b") == 3, CONVERGE, "weight-change", "", "")
    except Broken:
        found.fail("weight-change", f"b set its weight from 1 to 3 in place; {CONVERGE:.0f} s later the router "
                   f"still holds {watcher.ring.weights}",
                   misread(lab) or "A children watch fires when members join or leave, not when a member's data "
                   "changes. Read each member's data with a data watch (get(path, watch=...)) and rebuild when it "
                   "fires: look at RingWatcher._read_members.")
        return
    took = time.monotonic() - started
    share = sum(o == "b" for o in owners(watcher.ring, KEYS[:20_000])) / 20_000
    if found.judge("weight-change", 0.65 <= share <= 0.85,
                f"b set its weight from 1 to 3 in place: {took * 1000:.0f} ms later it held {share:.0%} of keys "
                "(75% wanted)", ADVICE_POINT if share in (0.0, 1.0) else "The router read the new weight, but "
                "the share does not follow it: with few points per member (DEFAULT_VNODES) a member's share is "
                "luck, not weight. Look at member_points."):
        changed_again(lab, found, watcher, member)
        if found.verdicts["weight-change"].ok:
            slow_read(lab, found, chroot)


ADVICE_ONCE = ("A data watch fires once: every read of a member's data must ask for a watch again, for every member, "
               "one that left and joined again under the same name too. Look at RingWatcher._read_members.")


def changed_again(lab: Lab, found: Findings, watcher: object, member: KazooClient) -> None:
    """b changes its weight a second time, then leaves, joins again under the same name and changes it once more:
    the router must follow each change (a data watch fires once, and a new node needs a watch of its own)."""
    path = f"{lab.script.members_path(ROOT)}/b"
    steps = [("changed its weight again, to 2", lambda: member.set(path, b'{"weight": 2}'), 2),
             ("left and joined again with weight 1", lambda: (member.delete(path),
                                                              lab.script.register_node(member, ROOT, "b")), 1),
             ("changed its weight after joining again, to 3", lambda: member.set(path, b'{"weight": 3}'), 3)]
    for what, act, weight in steps:
        act()
        try:
            wait_for(lambda w=weight: watcher.ring.weights == {"a": 1, "b": w}, CONVERGE, "weight-change", "", "")
        except Broken:
            return found.fail("weight-change", f"b {what}; {CONVERGE:.0f} s later the router holds "
                              f"{dict(watcher.ring.weights)}", ADVICE_ONCE)
    found.verdicts["weight-change"].figure += "; it followed a second change, and one after b left and joined again"


ADVICE_SLOW_READ = ("A read that fails for want of an answer (KazooTimeoutError, ConnectionLoss: any KazooException) "
                    "says nothing about the member: let it propagate, and the rebuild is tried again. Only "
                    "ValueError (data that is not ours) keeps a member off the ring. Look at "
                    "RingWatcher._read_members.")
# A router whose reads give up this soon (and whose first ring must come as soon); its read of a member is
# then held on the wire longer.
IMPATIENT = 0.5


def slow_read(lab: Lab, found: Findings, chroot: str) -> None:
    """b changes its weight; a router whose reads give up after IMPATIENT s has its next read held on the wire
    for longer: its read fails, and the member must not be refused for it (the rebuild is tried again)."""
    tap = lab.tap()
    # A long session: kazoo drops a connection whose pings go unanswered for 2/3 of one, and the reconnect would
    # rebuild the ring, hiding a member refused for a read that went unanswered.
    watcher = lab.script.RingWatcher(lab.client(chroot, 10.0, via=tap.address), ROOT, timeout=IMPATIENT)
    lab.on_close(watcher.close)
    converge([watcher], {"a", "b"}, 3 * CONVERGE, "weight-change", "a router that joined late")
    tap.hold_next(GET_DATA, at_most=1.5 * IMPATIENT)
    lab.client(chroot).set(f"{lab.script.members_path(ROOT)}/b", b'{"weight": 2}')
    wait_for(tap.held.is_set, CONVERGE, "weight-change", "the router did not read the members again after b "
             "changed its weight", ADVICE_ONCE)
    try:
        wait_for(lambda: watcher.ring.weights == {"a": 1, "b": 2} and not watcher.ignored, 3 * CONVERGE,
                 "weight-change", "", "")
    except Broken:
        return found.fail("weight-change", f"a router's read of a member went unanswered for {IMPATIENT} s (held "
                          f"on the wire); {3 * CONVERGE:.0f} s later the router holds {dict(watcher.ring.weights)} "
                          f"and ignores {dict(watcher.ignored)}", ADVICE_SLOW_READ)
    found.verdicts["weight-change"].figure += "; a read that went unanswered was tried again"


# ---------------------------------------------------------------- what `check hashing` runs, in order
# In the order of the rules they test (the step order of the lesson), so the first advice printed
# when several fail is about the earliest rule; join and leave need steps 1-4, so they follow them.

AGREE = Check({"agree": "routers in different processes agree on every key"}, agree, bound=30, needs_zk=False,
              prepare=start_agree)
POINTS = Check({"points": "points are 128-bit: members never collide"}, wide_points, bound=20, needs_zk=False)
BALANCE = Check({"balance": "keys spread evenly over 10 members"}, balance, bound=20, needs_zk=False)
WEIGHTS = Check({"weights": "a member's share follows its weight"}, weights, bound=20, needs_zk=False)
EMPTY_RING = Check({"empty-ring": "an empty ring says so with a LookupError"}, empty_ring, bound=5, needs_zk=False)
WRAP = Check({"wrap": "a key past the last point goes to the first"}, wrap, bound=5, needs_zk=False)
ORDER = Check({"order": "the order of joins changes no owner, even when points tie"}, order, bound=20,
              needs_zk=False)
JOIN = Check({"join": "a join moves about 1/N of the keys, only to the joiner"}, join, bound=20, needs_zk=False)
LEAVE = Check({"leave": "a departure moves only the leaver's keys"}, leave, bound=20, needs_zk=False)
ROUTERS = Check({"routers": "routers follow joins, leaves and crashes within a second"}, routers, bound=20)
SWAP = Check({"swap": "a router swaps in a whole new ring; the ring a reader holds never changes"}, swap,
             bound=15)
CALLBACK = Check({"callback": "a watch callback never waits on ZooKeeper"}, callback, bound=15)
FOREIGN = Check({"foreign": "a member with foreign data, not ephemeral, or with no room left stays off the ring"},
                foreign, bound=10)
WEIGHT_CHANGE = Check({"weight-change": "a member that changes its weight in place gets its new share"},
                      weight_change, bound=12)
CHECKS = [AGREE, POINTS, ORDER, JOIN, LEAVE, BALANCE, WEIGHTS, EMPTY_RING, WRAP, ROUTERS, SWAP, CALLBACK,
          WEIGHT_CHANGE, FOREIGN]
# The step of the lesson that holds each guarantee's rule (the step cut): the order above follows it. After the
# hash, the steps go from caller to callee (a ring is built by place_points, which calls member_points, before
# owner_at answers; _rebuild calls _read_members, which calls parse_weight), so that with steps 1..k written a
# guarantee of theirs waits at most on step k+1.
STEPS = {"agree": 1, "points": 1, "order": 2, "join": 2, "leave": 2, "balance": 3, "weights": 3, "empty-ring": 4,
         "wrap": 4, "routers": 5, "swap": 5, "callback": 5, "weight-change": 6, "foreign": 7}
