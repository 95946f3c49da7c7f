"""Benchmarks 4 and 5: ring lookups, balance and movement against uhashring; rebuilds and convergence.

Lookups route the same keys over the same members with the same vnodes through three routes: our
HashRing.owner, uhashring's get_node, and the floor (mmh3 and bisect inline in a list comprehension,
over our own points: no method call, no checks). Best of several runs each. The ring places every
point again on each change; building it is measured against its floor (hash every point, one sort)
in the same run.
"""

from __future__ import annotations

import bisect
import time
from collections import Counter
from collections.abc import Callable

import mmh3
from uhashring import HashRing as UHashRing

from bench.common import clients, close_all, machine, pct, summary_ms, table, verdict, zookeeper
from challenge_consistent_hashing import SEED, HashRing, RingWatcher, register_node

KEYS = [f"key:{i}" for i in range(200_000)]
MEMBERS, VNODES, REPEAT = 10, 160, 5
BIG = 1000
JOINS = 50


def best_rate(route: Callable[[], list]) -> float:
    """Keys per second for the fastest of REPEAT runs."""
    best = float("inf")
    for _ in range(REPEAT):
        started = time.perf_counter()
        route()
        best = min(best, time.perf_counter() - started)
    return len(KEYS) / best


def balance(owners: list[str]) -> float:
    counts = Counter(owners)
    return max(counts.values()) / (len(owners) / len(counts))


def moved(before: list[str], after: list[str]) -> float:
    return sum(a != b for a, b in zip(before, after, strict=True)) / len(before)


# ---------------------------------------------------------------- 4. lookups

def lookups() -> str:
    names = [f"node-{i}" for i in range(MEMBERS)]
    ours, theirs = HashRing(VNODES, names), UHashRing(nodes=names, vnodes=VNODES)
    points, owners, size, hash128 = ours._points, ours._owners, len(ours._points), mmh3.hash128
    rates = {
        "ours": best_rate(lambda: [ours.owner(k) for k in KEYS]),
        "uhashring": best_rate(lambda: [theirs.get_node(k) for k in KEYS]),
        "floor": best_rate(lambda: [owners[bisect.bisect_left(points, hash128(k, SEED)) % size] for k in KEYS]),
    }
    ours_owners, their_owners = [ours.owner(k) for k in KEYS], [theirs.get_node(k) for k in KEYS]
    ours.add("node-new")
    theirs.add_node("node-new")
    ours_moved = moved(ours_owners, [ours.owner(k) for k in KEYS])
    their_moved = moved(their_owners, [theirs.get_node(k) for k in KEYS])
    vs_uhash, vs_floor = rates["ours"] / rates["uhashring"], rates["ours"] / rates["floor"]
    return "\n\n".join([
        "## 4. Ring lookups",
        f"{len(KEYS):,} keys over {MEMBERS} members x {VNODES} vnodes, best of {REPEAT}. "
        "Targets: ours at least 2x uhashring, and at least 50% of the floor.",
        table(["route", "lookups/s", "ours relative to it", "target"], [
            ["ours: HashRing.owner", f"{rates['ours'] / 1e6:.2f} M", "1.00x", ""],
            ["uhashring get_node", f"{rates['uhashring'] / 1e6:.2f} M", f"{vs_uhash:.2f}x", verdict(vs_uhash >= 2)],
            ["floor: mmh3 + bisect inline", f"{rates['floor'] / 1e6:.2f} M", f"{vs_floor:.0%}",
             verdict(vs_floor >= 0.5)],
        ]),
        f"Balance and movement, same keys and members (ideal move on the 11th join: {1 / 11:.2%}):",
        table(["ring", "load max/mean (N=10)", "keys moved on a join"], [
            ["ours", f"{balance(ours_owners):.3f}", f"{ours_moved:.2%}"],
            ["uhashring", f"{balance(their_owners):.3f}", f"{their_moved:.2%}"],
        ]),
    ])


# ---------------------------------------------------------------- 5. rebuild and convergence

def floor_build(names: list[str]) -> None:
    """The least a build can cost: hash every point with mmh3 and sort them once (no owners, no checks)."""
    points = [mmh3.hash128(f"{name}#{i}", SEED) for name in names for i in range(VNODES)]
    points.sort()


def best_of(runs: int, work: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


def rebuild() -> list[list[object]]:
    """HashRing places every point again on each change (place_points); it may, within 3x the floor."""
    names = [f"node-{i}" for i in range(BIG)]
    floor = best_of(3, lambda: floor_build(names))
    build = best_of(3, lambda: HashRing(VNODES, names))
    ring = HashRing(VNODES, names)
    add = best_of(3, lambda: (ring.add("joiner"), ring.owner("the next lookup"), ring.remove("joiner")))
    return [
        [f"floor: hash {BIG * VNODES:,} points with mmh3, one sort", f"{floor * 1e3:.1f} ms (best of 3)", "", ""],
        [f"build {BIG:,} members x {VNODES} vnodes",
         f"{build * 1e3:.1f} ms (best of 3), {build / floor:.2f}x the floor", "<= 3x the floor",
         verdict(build <= 3 * floor)],
        ["add one member to it and remove it again (two whole rebuilds), plus a lookup",
         f"{add * 1e3:.1f} ms (best of 3), {add / floor:.2f}x the floor", "<= 6x the floor", verdict(add <= 6 * floor)],
    ]


def convergence(hosts: str) -> tuple[list[object], list[float]]:
    made = clients(hosts, 3)
    routers = [RingWatcher(c, "/bench-ring", VNODES) for c in made[:2]]
    times = []
    try:
        for i in range(JOINS):
            name = f"member-{i}"
            started = time.monotonic()
            register_node(made[2], "/bench-ring", name)
            for router in routers:
                router.wait_for(lambda ring, name=name: name in ring, 5)
            times.append(time.monotonic() - started)
    finally:
        for router in routers:
            router.close()
        close_all(made)
    return (["routers converge after a join (2 routers)", f"p50 / p95 / max {summary_ms(times)} ms",
             "p95 <= 50 ms", verdict(pct(times, 95) <= 0.050)], times)


def run() -> str:
    parts = [lookups()]
    with zookeeper() as zk:
        row, _ = convergence(zk.hosts)
        where = machine(zk)
    parts += [
        "## 5. Ring rebuild and convergence",
        f"Convergence: a member registers (its znode is created) and we time until every router's ring "
        f"holds it, {JOINS} joins.",
        table(["what", "measured", "target", ""], rebuild() + [row]),
        f"_Measured on {where}._",
    ]
    return "\n\n".join(parts)


if __name__ == "__main__":
    print(run())
