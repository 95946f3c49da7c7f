"""What every benchmark shares: percentiles, tables, targets, and a ZooKeeper of its own."""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import resource
import statistics
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

from kazoo.client import KazooClient
from kazoo.recipe.election import Election

from challenge_leader_election import LeaderElection
from zklab.launcher import ZooKeeperCluster, four_letter_word

logging.getLogger("kazoo").setLevel(logging.CRITICAL)


def pct(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), nearest-rank: an observed value, never an interpolation."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def summary_ms(values: Sequence[float]) -> str:
    """p50 / p95 / max of durations given in seconds, shown in milliseconds."""
    return f"{pct(values, 50) * 1e3:.2f} / {pct(values, 95) * 1e3:.2f} / {max(values) * 1e3:.2f}"


def verdict(met: bool) -> str:
    return "met" if met else "**MISSED**"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def peak_rss_mb() -> float:
    """This process's peak resident memory (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def mean(values: Sequence[float]) -> float:
    return statistics.fmean(values)


@contextmanager
def zookeeper() -> Iterator[ZooKeeperCluster]:
    """A standalone server of the benchmark's own, from the local launcher."""
    with ZooKeeperCluster(servers=1) as cluster:
        yield cluster


def clients(hosts: str, count: int, timeout: float = 10.0) -> list[KazooClient]:
    made = []
    for _ in range(count):
        client = KazooClient(hosts=hosts, timeout=timeout)
        client.start(timeout=30)
        made.append(client)
    return made


def close_all(made: Sequence[KazooClient]) -> None:
    for client in made:
        client.stop()
        client.close()


def stop_kazoo_elections(elections: Iterable[Election], threads: Iterable[threading.Thread],
                         made: Sequence[KazooClient]) -> None:
    """Cancel kazoo Elections still waiting, let their threads finish, then close the clients."""
    for election in elections:
        election.cancel()
    for thread in threads:
        thread.join(10)
    close_all(made)


def timed_handoff(elections: Sequence[LeaderElection], elected: threading.Event) -> tuple[int, float]:
    """Resign the acting leader; return its index and the seconds until the next leader acted.

    `elected` is an Event the elections set from on_elected. The end is the new leader's own record
    of when it started acting, not when this thread noticed.
    """
    i = next(i for i, e in enumerate(elections) if e.is_leader)
    elected.clear()
    started = time.monotonic()
    elections[i].resign()
    if not elected.wait(10):
        raise AssertionError("no new leader within 10 s")
    new = next(e for e in elections if e.is_leader)
    return i, new.history[-1][0] - started


def machine(cluster: ZooKeeperCluster) -> str:
    """One line naming what the numbers were measured on."""
    cpu = "unknown CPU"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as info:
        cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), cpu)
    version = next((line.split(":", 1)[1].split(",")[0].strip()
                    for line in four_letter_word(cluster.servers[0].client_port).splitlines()
                    if line.startswith("Zookeeper version")), "?")
    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores ({cpu}), "
            f"Python {platform.python_version()}, ZooKeeper {version}")
