"""Benchmark 6: 200 election workers in one process (200 threads of ours, 200 sessions)."""

from __future__ import annotations

import threading
import time

from bench.common import clients, close_all, machine, pct, peak_rss_mb, summary_ms, table, timed_handoff, zookeeper
from challenge_leader_election import LeaderElection
from zklab.faults import wait_until

WORKERS, HANDOFFS = 200, 20
PATH = "/scale"


def run() -> str:
    baseline = peak_rss_mb()
    with zookeeper() as zk:
        started = time.monotonic()
        made = clients(zk.hosts, WORKERS)
        connected = time.monotonic() - started
        elected = threading.Event()
        elections = [LeaderElection(c, PATH, f"w{i}", on_elected=lambda _: elected.set()) for i, c in enumerate(made)]
        try:
            started = time.monotonic()
            for e in elections:
                e.start()
            start_calls = time.monotonic() - started
            elected.wait(30)
            first_leader = min(e.history[0][0] for e in elections if e.history) - started
            wait_until(lambda: len(made[0].get_children(PATH)) == WORKERS, 60, "every worker to join")
            all_joined = time.monotonic() - started
            threads = threading.active_count()
            handoffs = [timed_handoff(elections, elected)[1] for _ in range(HANDOFFS)]
            peak = peak_rss_mb()
        finally:
            for e in elections:
                e.resign()
            close_all(made)
        where = machine(zk)
    return "\n\n".join([
        "## 6. Scale: 200 workers in one process",
        table(["what", "measured"], [
            [f"connect {WORKERS} sessions", f"{connected:.2f} s"],
            [f"{WORKERS} start() calls (each starts a thread)", f"{start_calls * 1e3:.0f} ms"],
            ["first start() -> first leader acts", f"{first_leader * 1e3:.1f} ms"],
            [f"start {WORKERS} candidates -> all {WORKERS} in the queue", f"{all_joined:.2f} s"],
            [f"hand-off at N={WORKERS}, p50 / p95 / max ({HANDOFFS} hand-offs)", f"{summary_ms(handoffs)} ms"],
            ["threads in the process", threads],
            ["peak RSS", f"{peak:.0f} MB (the interpreter with kazoo loaded: {baseline:.0f} MB)"],
        ]),
        f"Hand-off p50 at N={WORKERS}: {pct(handoffs, 50) * 1e3:.2f} ms. No target was set for this benchmark; "
        "it shows the recipe's cost per candidate.",
        f"_Measured on {where}._",
    ])


if __name__ == "__main__":
    print(run())
