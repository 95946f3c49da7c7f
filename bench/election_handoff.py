"""Benchmark 1: leadership hand-off latency and watch events per hand-off.

A hand-off starts when the leader steps down (our resign(), kazoo's leader function returning) and
ends when the next candidate acts as leader. The old leader then rejoins at the back, so the number
of candidates stays N. Watch events are counted per departure, before the rejoin.
"""

from __future__ import annotations

import contextlib
import queue
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
    timed_handoff,
    verdict,
    zookeeper,
)
from challenge_leader_election import LeaderElection
from zklab.faults import settle, wait_until

ROUNDS = 200       # hand-offs per size, for ours and kazoo's: enough for a stable p95
HERD_ROUNDS = 50   # the herd is slow at N=50, and its event count does not vary
SIZES = (10, 50)


# ---------------------------------------------------------------- ours

def ours(hosts: str, n: int, rounds: int) -> tuple[list[float], list[int]]:
    made = clients(hosts, n)
    elected = threading.Event()
    path = f"/ours-{n}"
    notified = [0]  # predecessor watches that fired, for every candidate: the herd counter

    def heard(_: LeaderElection, event: str, detail: str) -> None:
        if event == "elected":
            elected.set()
        elif event == "woken":
            notified[0] += 1

    def join(i: int) -> LeaderElection:
        e = LeaderElection(made[i], path, f"c{i}", on_change=heard)
        e.start()
        wait_until(lambda: e.name in e.participants(), 10, "a candidate to join")
        return e

    elections = [join(i) for i in range(n)]
    handoffs, events = [], []
    try:
        wait_until(lambda: any(e.is_leader for e in elections), 10, "a first leader")
        for _ in range(rounds):
            before = notified[0]
            i, seconds = timed_handoff(elections, elected)
            handoffs.append(seconds)
            for client in made:
                settle(client)
            events.append(notified[0] - before)
            elections[i] = join(i)
    finally:
        for e in elections:
            e.resign()
        close_all(made)
    return handoffs, events


# ---------------------------------------------------------------- kazoo's Election

def kazoo(hosts: str, n: int, rounds: int) -> list[float]:
    made = clients(hosts, n)
    path, started, stop = f"/kazoo-{n}", queue.Queue(), threading.Event()
    step_down = [threading.Event() for _ in range(n)]
    live: dict[int, object] = {}

    def lead(i: int) -> None:
        started.put((time.monotonic(), i))
        step_down[i].wait()
        step_down[i].clear()

    def contend(i: int) -> None:
        with contextlib.suppress(KazooException):  # the clients close under us at the end
            while not stop.is_set():
                live[i] = made[i].Election(path, f"k{i}")
                live[i].run(lead, i)

    threads = [threading.Thread(target=contend, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    wait_until(lambda: len(made[0].retry(made[0].get_children, path)) == n if made[0].exists(path) else False,
               20, "every kazoo contender to join")
    handoffs = []
    try:
        _, current = started.get(timeout=10)
        for _ in range(rounds):
            begun = time.monotonic()
            step_down[current].set()
            acted, current = started.get(timeout=10)
            handoffs.append(acted - begun)
            wait_until(lambda: len(made[0].get_children(path)) == n, 10, "the old leader to rejoin")
    finally:
        stop.set()
        for event in step_down:
            event.set()
        stop_kazoo_elections(list(live.values()), threads, made)
    return handoffs


# ---------------------------------------------------------------- the herd: everyone watches all children

class HerdCandidate:
    """The original exercise's approach: every candidate watches the parent's children."""

    def __init__(self, client: KazooClient, path: str, acted: queue.Queue):
        self.client, self.path, self.acted = client, path, acted
        self.events, self.leading, self.stopped = 0, False, False
        self.node = client.create(f"{path}/n-", ephemeral=True, sequence=True, makepath=True).rsplit("/", 1)[1]
        self._check()

    def _watch(self, event: object) -> None:
        if not self.stopped:
            self.events += 1
            self._check()

    def _check(self) -> None:
        children = sorted(self.client.get_children(self.path, watch=self._watch), key=lambda c: int(c[2:]))
        if children and children[0] == self.node and not self.leading:
            self.leading = True
            self.acted.put(time.monotonic())

    def resign(self) -> None:
        self.stopped = True
        self.client.delete(f"{self.path}/{self.node}")


def herd(hosts: str, n: int, rounds: int) -> tuple[list[float], list[int]]:
    made, acted, path = clients(hosts, n), queue.Queue(), f"/herd-{n}"
    candidates = [HerdCandidate(c, path, acted) for c in made]
    handoffs, events = [], []
    try:
        acted.get(timeout=10)
        for _ in range(rounds):
            i = next(i for i, c in enumerate(candidates) if c.leading and not c.stopped)
            before = sum(c.events for c in candidates)
            started = time.monotonic()
            candidates[i].resign()
            handoffs.append(acted.get(timeout=10) - started)
            for client in made:
                settle(client)
            events.append(sum(c.events for c in candidates) - before)
            candidates[i] = HerdCandidate(made[i], path, acted)
            for client in made:
                settle(client)
    finally:
        close_all(made)
    return handoffs, events


# ---------------------------------------------------------------- report

def run() -> str:
    rows, event_rows, notes = [], [], []
    with zookeeper() as zk:
        for n in SIZES:
            ours_ms, ours_events = ours(zk.hosts, n, ROUNDS)
            kazoo_ms = kazoo(zk.hosts, n, ROUNDS)
            herd_ms, herd_events = herd(zk.hosts, n, HERD_ROUNDS)
            met = pct(ours_ms, 50) <= pct(kazoo_ms, 50) and pct(ours_ms, 95) <= pct(kazoo_ms, 95)
            rows.append([n, ROUNDS, summary_ms(ours_ms), summary_ms(kazoo_ms), summary_ms(herd_ms),
                         f"{pct(ours_ms, 50) / pct(kazoo_ms, 50):.2f} / {pct(ours_ms, 95) / pct(kazoo_ms, 95):.2f}",
                         verdict(met)])
            event_rows.append([n, f"{sum(ours_events) / len(ours_events):.2f}", max(ours_events),
                               f"{sum(herd_events) / len(herd_events):.2f}", max(herd_events),
                               verdict(max(ours_events) == 1)])
        notes.append(machine(zk))
    return "\n\n".join([
        "## 1. Election hand-off",
        "Leader steps down -> next candidate acts. Milliseconds, p50 / p95 / max; ratio = ours / kazoo "
        "(lower is better). Target: ours no higher than kazoo's `Election` at p50 and p95.",
        f"{ROUNDS} hand-offs each for ours and kazoo's, {HERD_ROUNDS} for the all-children watch.",
        table(["N", "hand-offs", "ours", "kazoo Election", "all-children watch", "ours/kazoo p50 / p95", "target"],
              rows),
        "Watch events delivered per departure (counted after every client has drained its events). "
        "Target: exactly 1 for ours.",
        table(["N", "ours mean", "ours max", "all-children mean", "all-children max", "target"], event_rows),
        f"_Measured on {notes[0]}._",
    ])


if __name__ == "__main__":
    print(run())
