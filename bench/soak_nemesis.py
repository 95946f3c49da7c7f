"""The chaos soak's nemesis: seeded faults against ZooKeeper, the demos' links, their data and processes.

Faults come from a deck: a seeded shuffle of every kind, dealt in order, then a new shuffle. So every
kind happens once in each round (a one-minute soak deals at least one full round), and the run is
repeatable from its seed, up to timing. Each fault belongs to a lane; a lane holds one fault at a
time, so the ensemble is never hit twice at once (it keeps its quorum, except in the one fault that
takes it away on purpose) while link, data and process faults overlap with it.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from kazoo.client import KazooClient

from zklab.launcher import ZooKeeperCluster
from zklab.proxy import DIRECTIONS, PartitionProxy

# Seconds between two faults: short enough that a one-minute soak deals every kind.
GAP = (0.3, 1.5)
# A killed server stays down this long before it restarts.
DOWN = (0.5, 2.5)
# A paused server (SIGSTOP) is continued within this bound: below the 4 s session timeout, so a
# pause alone never expires a healthy session.
PAUSE = (0.5, 3.0)
# Quorum is taken away only briefly.
NO_QUORUM = (0.5, 2.0)
# Demo links stay cut or black-holed this long: past the session timeout at the top, so sessions
# behind a partition really expire and the demos meet LOST.
LINK_HOLD = (1.0, 6.0)
# Hostile member znodes stay this long before the nemesis deletes them.
HOSTILE_HOLD = (2.0, 6.0)
HOSTILE_PER_FAULT = (3, 5)
# A znode's data is limited by jute.maxbuffer (1 MiB less a little): this is as large as it gets.
HUGE_DATA = 1_000_000
# Bounds on restarting a server: the nemesis waits for it in the soak's main thread.
START_TIMEOUT = 15.0
# After a fault the ensemble must commit a write again within this. Servers that all report a mode
# yet commit nothing are wedged (seen with ZooKeeper 3.8.0 after two servers were paused at once:
# "Learner - Got zxid 0x2200000020 expected 0x1", requests outstanding for good); a rolling restart
# brings them back, and the soak counts it as ZooKeeper's failure, not the demos'.
COMMIT_BOUND = 10.0
PROBE = "/soak-probe"
# How long a nemesis call to ZooKeeper may take before the nemesis gives up on it: short, because
# the nemesis must also undo its other faults on time.
ZK_CALL = 1.0
# The "early" signal is sent within this many seconds of the demo's start (leaving the few ms that
# sending and recording take inside the 100 ms).
EARLY = 0.09

# Member data that contract C says no router may put on its ring (the rest is either valid, or left
# to the hashing demo's documented choice: empty data, and a megabyte that does hold a weight).
INVALID = {"junk bytes", "weight 1e-9 (tiny)", "weight 1e9 (huge)", "weight Infinity", "weight NaN", "weight -1",
           'weight "2" (a string)', "weight true", "data not an object",
           "persistent member"}  # valid data, but never vanishes: routers keep it off the ring too

ZK, LINK, DATA, PROCESS = "zookeeper", "link", "data", "process"
KINDS = {  # what the table calls each fault -> its lane
    "kill -9 the ZooKeeper leader": ZK,
    "kill -9 a ZooKeeper follower": ZK,
    "pause a ZooKeeper server (SIGSTOP, then SIGCONT)": ZK,
    "restart a ZooKeeper server": ZK,
    "lose quorum (pause 2 of 3 servers)": ZK,
    "cut demo links": LINK,
    "blackhole demo links": LINK,
    "hostile member znodes": DATA,
    "SIGTERM a demo": PROCESS,
    "SIGINT a demo": PROCESS,
    "SIGTERM/SIGINT within 100 ms of a demo's start": PROCESS,
}


# ---------------------------------------------------------------- hostile member znodes

def _json(value: object) -> bytes:
    return json.dumps(value).encode()


def hostile_variants(rng: random.Random) -> list[tuple[str, Callable[[int], str], Callable[[], bytes], bool]]:
    """(label, name for the n-th node, its data, persistent?) for every kind of hostile member.

    Names are unique per node, so a router never sees a name come back with other data, and never
    end in "-<4 hex digits>" as the demos' own names do.
    """
    plain = lambda n: f"hostile-n{n}"  # noqa: E731 - a table of small lambdas reads best here
    weight_1 = lambda: _json({"weight": 1})  # noqa: E731
    pad = HUGE_DATA - len(_json({"weight": 1, "pad": ""}))
    return [
        ("junk bytes", plain, lambda: bytes(rng.randrange(256) for _ in range(64)), False),
        ("1 MB of data", plain, lambda: _json({"weight": 1, "pad": "x" * pad}), False),
        ("weight 1e-9 (tiny)", plain, lambda: _json({"weight": 1e-9}), False),
        ("weight 1e9 (huge)", plain, lambda: _json({"weight": 1e9}), False),
        ("weight Infinity", plain, lambda: b'{"weight": Infinity}', False),
        ("weight NaN", plain, lambda: b'{"weight": NaN}', False),
        ("weight -1", plain, lambda: _json({"weight": -1}), False),
        ('weight "2" (a string)', plain, lambda: _json({"weight": "2"}), False),
        ("weight true", plain, lambda: _json({"weight": True}), False),
        ("empty data", plain, lambda: b"", False),
        ("data not an object", plain, lambda: b"[1, 2]", False),
        ("weight 100 (the largest allowed)", plain, lambda: _json({"weight": 100}), False),
        ("weight 0.01 (the smallest allowed)", plain, lambda: _json({"weight": 0.01}), False),
        ("persistent member", plain, weight_1, True),
        ('name ending in "_"', lambda n: f"a{n}_", weight_1, False),
        ("name with spaces", lambda n: f"a member n{n}", weight_1, False),
        ("unicode name", lambda n: f"mémbre-✓-n{n}", weight_1, False),
        ("1,000-character name", lambda n: f"n{n}-" + "L" * 1000, weight_1, False),
    ]


# ---------------------------------------------------------------- the nemesis

@dataclass
class Undo:
    due: float
    lane: str
    what: str
    act: Callable[[], bool]  # True when done; False to try again a second later


class Nemesis:
    """Deals seeded faults; each is logged with its time, and undone (healed, resumed, restarted) later."""

    def __init__(self, rng: random.Random, cluster: ZooKeeperCluster, proxies: list[PartitionProxy],
                 client: KazooClient, members: str, demos: object, say: Callable[[str, str], None]):
        self.rng, self.cluster, self.proxies, self.client = rng, cluster, proxies, client
        self.members, self.demos, self.say = members, demos, say
        self.counts: Counter[str] = Counter()
        self.notes: dict[str, Counter[str]] = {kind: Counter() for kind in KINDS}
        self.errors: list[str] = []
        self.invalid_members: set[str] = set()  # hostile members whose data no ring may accept
        self.pending: list[Undo] = []
        self.zk_recovered = 0.0        # when the ensemble last came back from a fault (sessions re-timed)
        self.wedged: list[str] = []    # faults after which ZooKeeper committed nothing until restarted
        client.ensure_path(PROBE)
        self.quorum_lost_s = 0.0
        self.early_ms: list[float] = []
        self._deck: list[str] = []
        self._next = 0.0
        self._variants = hostile_variants(rng)
        self._variant_deck: list[int] = []
        self._nodes = 0

    # -- dealing

    def step(self, now: float) -> None:
        self._undo_due(now)
        if now < self._next:
            return
        if not self._deck:
            self._deck = self.rng.sample(list(KINDS), len(KINDS))
        kind = self._deck[0]
        if any(u.lane == KINDS[kind] for u in self.pending):
            return  # its lane still holds a fault: deal it once that one is undone
        try:
            done = ACTIONS[kind](self)
        except Exception as exc:  # noqa: BLE001 - a nemesis error is reported, never fatal
            self.errors.append(f"{kind}: {type(exc).__name__}: {exc}")
            self.say("nemesis", f"ERROR in {kind}: {exc}")
            done = True
        if done:
            self._deck.pop(0)
            self.counts[kind] += 1
        self._next = time.monotonic() + (self.rng.uniform(*GAP) if done else 0.2)

    def heal(self, lanes: tuple[str, ...] = (ZK, LINK)) -> None:
        """Undo every pending fault in `lanes` now: before a quiet check, and at the end."""
        for undo in sorted(self.pending, key=lambda u: u.due):
            if undo.lane in lanes:
                undo.due = 0.0
        self._undo_due(time.monotonic())

    def _undo_due(self, now: float) -> None:
        for undo in sorted(self.pending, key=lambda u: u.due):
            if undo.due > now:
                continue
            try:
                done = undo.act()
            except Exception as exc:  # noqa: BLE001
                self.errors.append(f"undo {undo.what}: {type(exc).__name__}: {exc}")
                done = True
            if done:
                self.pending.remove(undo)
            else:
                undo.due = time.monotonic() + 1.0

    def _later(self, hold: tuple[float, float], lane: str, what: str, act: Callable[[], bool]) -> float:
        seconds = self.rng.uniform(*hold)
        self.pending.append(Undo(time.monotonic() + seconds, lane, what, act))
        return seconds

    # -- ZooKeeper servers

    def _role(self, sid: int) -> str:
        return self.cluster.server(sid).mode() or "not serving"

    def _sid_with(self, role: str) -> int | None:
        sids = [s.sid for s in self.cluster.servers if s.mode() == role]
        return self.rng.choice(sids) if sids else None

    def _recovered(self, after: str = "a fault") -> bool:
        """Wait (bounded) until every server serves and a write commits; from then, sessions count
        down afresh. A wedged ensemble gets a rolling restart."""
        try:
            self.cluster.wait_ready(START_TIMEOUT)
        except (TimeoutError, RuntimeError) as exc:
            self.errors.append(f"ensemble did not recover: {exc}")
        if not self._commits():
            self.wedged.append(after)
            self.say("nemesis", f"ZooKeeper serves but commits nothing {COMMIT_BOUND:.0f} s after {after} "
                                "(wedged): restarting every server, one at a time")
            for server in self.cluster.servers:
                self.cluster.restart_server(server.sid, timeout=START_TIMEOUT)
            if not self._commits():
                self.errors.append(f"ZooKeeper still commits nothing after a rolling restart (after {after})")
        self.zk_recovered = time.monotonic()
        return True

    def _commits(self) -> bool:
        """True once a write to the probe znode commits, within COMMIT_BOUND."""
        deadline = time.monotonic() + COMMIT_BOUND
        while time.monotonic() < deadline:
            try:
                self.client.set_async(PROBE, b"probe").get(timeout=min(2.0, deadline - time.monotonic()))
                return True
            except Exception:  # noqa: BLE001 - not yet: an election may still be on
                time.sleep(0.2)
        return False

    def _kill(self, role: str) -> bool:
        sid = self._sid_with(role)
        if sid is None:
            return False  # no server has that role right now (an election is on): try again shortly
        self.cluster.kill_server(sid)
        kind = "kill -9 the ZooKeeper leader" if role == "leader" else "kill -9 a ZooKeeper follower"
        down = self._later(DOWN, ZK, f"start server {sid}", lambda: self._start(sid))
        self.say("nemesis", f"kill -9 ZooKeeper server {sid} (the {role}); it restarts in {down:.1f}s")
        self.notes[kind][f"server {sid}"] += 1
        return True

    def _start(self, sid: int) -> bool:
        self.cluster.start_server(sid, timeout=START_TIMEOUT)
        self.say("nemesis", f"ZooKeeper server {sid} serves again ({self._role(sid)})")
        return self._recovered(f"kill -9 of server {sid}")

    def kill_leader(self) -> bool:
        return self._kill("leader")

    def kill_follower(self) -> bool:
        return self._kill("follower")

    def _running(self) -> list[int]:
        return [s.sid for s in self.cluster.servers if s.running]

    def pause(self) -> bool:
        sid = self.rng.choice(self._running())
        role, pid = self._role(sid), self.cluster.server(sid).process.pid
        os.kill(pid, signal.SIGSTOP)
        held = self._later(PAUSE, ZK, f"SIGCONT server {sid}", lambda: self._resume([pid]))
        self.say("nemesis", f"SIGSTOP ZooKeeper server {sid} (the {role}) for {held:.1f}s")
        self.notes["pause a ZooKeeper server (SIGSTOP, then SIGCONT)"][f"the {role}"] += 1
        return True

    def _resume(self, pids: list[int], lost_at: float | None = None) -> bool:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
        self.say("nemesis", f"SIGCONT {len(pids)} ZooKeeper server(s)")
        if lost_at is not None:
            self.quorum_lost_s += time.monotonic() - lost_at
        return self._recovered("losing quorum" if lost_at is not None else "a pause")

    def restart(self) -> bool:
        sid = self.rng.choice(self._running())
        role = self._role(sid)
        self.say("nemesis", f"restart ZooKeeper server {sid} (the {role})")
        self.cluster.restart_server(sid, timeout=START_TIMEOUT)
        self.notes["restart a ZooKeeper server"][f"the {role}"] += 1
        return self._recovered(f"restarting server {sid}")

    def lose_quorum(self) -> bool:
        sids = self.rng.sample(self._running(), 2)
        pids = [self.cluster.server(sid).process.pid for sid in sids]
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        lost_at = time.monotonic()
        held = self._later(NO_QUORUM, ZK, "SIGCONT both", lambda: self._resume(pids, lost_at))
        self.say("nemesis", f"SIGSTOP ZooKeeper servers {sids[0]} and {sids[1]}: NO QUORUM for {held:.1f}s")
        return True

    # -- the proxied demos' links (one PartitionProxy per server)

    def _links(self, fault: str, apply: Callable[[PartitionProxy], None]) -> bool:
        chosen = self.proxies if self.rng.random() < 0.7 else [self.rng.choice(self.proxies)]
        for proxy in chosen:
            apply(proxy)
        scope = "every link" if len(chosen) == len(self.proxies) else f"the link to 1 of {len(self.proxies)} servers"
        held = self._later(LINK_HOLD, LINK, "heal links", lambda: self._heal(chosen))
        self.say("nemesis", f"{fault} {scope} of the proxied demos for {held:.1f}s")
        self.notes[f"{fault.split()[0]} demo links"][scope] += 1
        return True

    def _heal(self, proxies: list[PartitionProxy]) -> bool:
        for proxy in proxies:
            proxy.heal()
        self.say("nemesis", "links healed")
        return True

    def cut(self) -> bool:
        return self._links("cut", PartitionProxy.cut)

    def blackhole(self) -> bool:
        direction = self.rng.choice(DIRECTIONS)
        return self._links(f"blackhole ({direction})", lambda proxy: proxy.blackhole(direction))

    # -- hostile member znodes

    def hostile(self) -> bool:
        made = []
        for _ in range(self.rng.randint(*HOSTILE_PER_FAULT)):
            if not self._variant_deck:
                self._variant_deck = self.rng.sample(range(len(self._variants)), len(self._variants))
            label, name, data, persistent = self._variants[self._variant_deck.pop()]
            self._nodes += 1
            path = f"{self.members}/{name(self._nodes)}"
            try:
                self.client.create_async(path, data(), ephemeral=not persistent).get(timeout=ZK_CALL)
            except Exception as exc:  # noqa: BLE001 - ZooKeeper may be down: the fault did not happen
                self.say("nemesis", f"could not write hostile member ({label}): {type(exc).__name__}")
                break  # do not hold up the undoing of other faults: try again later
            made.append(path)
            self.notes["hostile member znodes"][label] += 1
            if label in INVALID:
                self.invalid_members.add(path.rsplit("/", 1)[1])
        if made:
            held = self._later(HOSTILE_HOLD, DATA, "delete hostile members", lambda: self._delete(made))
            self.say("nemesis", f"wrote {len(made)} hostile member znodes for {held:.1f}s: "
                                f"{', '.join(p.rsplit('/', 1)[1][:24] for p in made)}")
        return bool(made)

    def _delete(self, paths: list[str]) -> bool:
        for path in list(paths):
            try:
                self.client.delete_async(path).get(timeout=ZK_CALL)
            except Exception as exc:  # noqa: BLE001
                if type(exc).__name__ != "NoNodeError":
                    return False  # ZooKeeper unavailable: try again in a second
            paths.remove(path)
        self.say("nemesis", "hostile members deleted")
        return True

    # -- signals to demo processes

    def _signal(self, sig: signal.Signals) -> bool:
        live = self.demos.signalable()
        if not live:
            return False
        run = self.rng.choice(live)
        self.demos.signal(run, sig)
        self.notes[f"{sig.name} a demo"][run.kind] += 1
        return True

    def sigterm(self) -> bool:
        return self._signal(signal.SIGTERM)

    def sigint(self) -> bool:
        return self._signal(signal.SIGINT)

    def early_signal(self) -> bool:
        """Start an extra copy of a demo and signal it within its first 100 ms."""
        sig = self.rng.choice([signal.SIGTERM, signal.SIGINT])
        kind = self.rng.choice(["leader", "hashing"])
        delay = self.rng.uniform(0, EARLY)
        run = self.demos.start_extra(kind)
        time.sleep(max(0.0, run.started + delay - time.monotonic()))
        self.demos.signal(run, sig)
        self.early_ms.append((run.signaled_at - run.started) * 1000)
        self.notes["SIGTERM/SIGINT within 100 ms of a demo's start"][f"{sig.name} to {kind}"] += 1
        return True


ACTIONS: dict[str, Callable[[Nemesis], bool]] = {
    "kill -9 the ZooKeeper leader": Nemesis.kill_leader,
    "kill -9 a ZooKeeper follower": Nemesis.kill_follower,
    "pause a ZooKeeper server (SIGSTOP, then SIGCONT)": Nemesis.pause,
    "restart a ZooKeeper server": Nemesis.restart,
    "lose quorum (pause 2 of 3 servers)": Nemesis.lose_quorum,
    "cut demo links": Nemesis.cut,
    "blackhole demo links": Nemesis.blackhole,
    "hostile member znodes": Nemesis.hostile,
    "SIGTERM a demo": Nemesis.sigterm,
    "SIGINT a demo": Nemesis.sigint,
    "SIGTERM/SIGINT within 100 ms of a demo's start": Nemesis.early_signal,
}
