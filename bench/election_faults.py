"""Benchmarks 2 and 3: a partitioned leader, and a crashed one.

2. The leader is black-holed for 1.5 session timeouts, then healed and watched for one more. We
   measure how long two candidates acted as leader at the same time: ours against kazoo's Election,
   whose leader function is "acting" for as long as it runs.
3. The leader's session expires (for real, on the server). We measure from ZooKeeper deleting its node
   (an observer's watch fires) to the next leader acting.
"""

from __future__ import annotations

import contextlib
import threading
import time

from kazoo.client import KazooClient
from kazoo.exceptions import KazooException

from bench.common import (
    clients,
    close_all,
    machine,
    pct,
    stop_kazoo_elections,
    summary_ms,
    table,
    verdict,
    zookeeper,
)
from challenge_leader_election import LeaderElection
from zklab.faults import expire_session, wait_until
from zklab.lanes import leader_terms
from zklab.proxy import PartitionProxy

SESSION = 2.0
HOLD, AFTER = 1.5 * SESSION, 1.0 * SESSION
TRIALS = 3
CRASHES = 20

Interval = tuple[float, float]


def overlap(first: list[Interval], second: list[Interval]) -> float:
    """Total time during which an interval of `first` and one of `second` both held."""
    return sum(max(0.0, min(a_end, b_end) - max(a_start, b_start))
               for a_start, a_end in first for b_start, b_end in second)


# ---------------------------------------------------------------- 2. partition

def ours_partition(zk_address: str) -> float:
    proxy = PartitionProxy(zk_address)
    made = [KazooClient(hosts=proxy.address, timeout=SESSION)] + clients(zk_address, 2, SESSION)
    made[0].start(timeout=10)
    elections = [LeaderElection(c, "/ours-partition", f"c{i}") for i, c in enumerate(made)]
    try:
        elections[0].start()
        wait_until(lambda: elections[0].is_leader, 10, "the first leader")
        for e in elections[1:]:
            e.start()
        proxy.blackhole()
        time.sleep(HOLD)
        proxy.heal()
        time.sleep(AFTER)
        end = time.monotonic()
        old = leader_terms(elections[0].history, end)
        return sum(overlap(old, leader_terms(e.history, end)) for e in elections[1:])
    finally:
        for e in elections:
            e.resign()
        close_all(made)
        proxy.close()


def kazoo_partition(zk_address: str) -> float:
    proxy = PartitionProxy(zk_address)
    made = [KazooClient(hosts=proxy.address, timeout=SESSION)] + clients(zk_address, 2, SESSION)
    made[0].start(timeout=10)
    acting: dict[int, list[float]] = {}
    stop = threading.Event()

    def lead(i: int) -> None:  # kazoo's Election calls this while we lead; nothing stops it early
        acting[i] = [time.monotonic(), float("inf")]
        stop.wait()
        acting[i][1] = time.monotonic()

    elections = [c.Election("/kazoo-partition", f"k{i}") for i, c in enumerate(made)]
    threads = [threading.Thread(target=_run_quietly, args=(e, lead, i), daemon=True) for i, e in enumerate(elections)]
    try:
        threads[0].start()
        wait_until(lambda: 0 in acting, 10, "the first kazoo leader")
        for t in threads[1:]:
            t.start()
        proxy.blackhole()
        time.sleep(HOLD)
        proxy.heal()
        time.sleep(AFTER)
        end = time.monotonic()
        old = [(acting[0][0], min(acting[0][1], end))]
        return sum(overlap(old, [(s, min(e, end))]) for i, (s, e) in acting.items() if i != 0)
    finally:
        stop.set()
        stop_kazoo_elections(elections, threads, made)
        proxy.close()


def _run_quietly(election: object, func: object, i: int) -> None:
    with contextlib.suppress(KazooException):
        election.run(func, i)


# ---------------------------------------------------------------- 3. crash failover

class Stopwatch:
    """Remembers when a watch fired."""

    def __init__(self) -> None:
        self._fired = threading.Event()
        self.at = 0.0

    def stop(self, _event: object) -> None:
        self.at = time.monotonic()
        self._fired.set()

    def wait(self) -> float:
        if not self._fired.wait(10):
            raise AssertionError("the leader's node was never deleted")
        return self.at


def crash_failover(zk_address: str, rounds: int) -> list[float]:
    proxies = [PartitionProxy(zk_address) for _ in range(5)]
    made = [KazooClient(hosts=p.address, timeout=10.0) for p in proxies]
    observer = clients(zk_address, 1)[0]
    for c in made:
        c.start(timeout=10)
    elections = [LeaderElection(c, "/failover", f"c{i}") for i, c in enumerate(made)]
    for e in elections:
        e.start()
        wait_until(lambda e=e: e.name in e.participants(), 10, "a candidate to join")
    results = []
    try:
        for _ in range(rounds):
            old = wait_until(lambda: next((e for e in elections if e.is_leader), None), 10, "a leader")
            i = elections.index(old)
            deletion = Stopwatch()
            observer.exists(old.token.node_path, watch=deletion.stop)
            expire_session(made[i], proxies[i])
            new = wait_until(lambda: next((e for e in elections if e.is_leader), None), 10, "a new leader")
            results.append(new.history[-1][0] - deletion.wait())
            wait_until(lambda: len(observer.get_children("/failover")) == len(elections), 10, "the rejoin")
    finally:
        for e in elections:
            e.resign()
        close_all(made + [observer])
        for p in proxies:
            p.close()
    return results


# ---------------------------------------------------------------- report

def run() -> str:
    with zookeeper() as zk:
        address = zk.servers[0].address
        ours = [ours_partition(address) for _ in range(TRIALS)]
        theirs = [kazoo_partition(address) for _ in range(TRIALS)]
        failover = crash_failover(address, CRASHES)
        where = machine(zk)
    return "\n\n".join([
        "## 2. Partitioned leader",
        f"The leader is black-holed for {HOLD:.0f} s with a {SESSION:.0f} s session, healed, and watched for "
        f"{AFTER:.0f} s more. Seconds during which two leaders acted at once, per trial. Target: ours is 0.",
        table(["trials", "ours (each)", "kazoo Election (each)", "target"],
              [[TRIALS, ", ".join(f"{v:.3f}" for v in ours), ", ".join(f"{v:.3f}" for v in theirs),
                verdict(max(ours) == 0)]]),
        "kazoo's leader function is never told that its session was lost, so it acts until it returns: "
        "here, until the end of each trial. Ours stops at SUSPENDED or when its lease runs out, "
        "whichever comes first, before ZooKeeper can expire its session.",
        "## 3. Crash failover",
        f"The leader's session is expired on the server ({CRASHES} times). From ZooKeeper deleting its node "
        "(seen by an observer's watch) to the next leader acting, milliseconds p50 / p95 / max. Target: 50 ms or less.",
        table(["crashes", "failover", "target"],
              [[CRASHES, summary_ms(failover), verdict(pct(failover, 95) <= 0.050)]]),
        f"_Measured on {where}._",
    ])


if __name__ == "__main__":
    print(run())
