"""Fixtures: real ZooKeeper servers, clean namespaces, clients that are always closed, partitions."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Iterator

import pytest
from kazoo.client import KazooClient

import challenge_consistent_hashing
import challenge_leader_election
from zklab.check import SHARED_ZK
from zklab.check_lab import RECONNECT_BACKOFF, Lab
from zklab.launcher import SUITE_TAG, ZooKeeperCluster, wait_for_tagged_jvms
from zklab.proxy import PartitionProxy

# Session timeouts short enough to expire in a test, long enough for a loaded 2-core machine.
SESSION_TIMEOUT = 2.0

logging.getLogger("kazoo").setLevel(logging.ERROR)


# The modules that run the checker again and again, or the chaos soak: under pytest-xdist they share one
# worker and run first, one after another, so two of them never compete for the 2 cores at once.
HEAVY = ("test_soak", "test_exercises", "test_exercise_proofs", "test_check_answers", "test_check")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each module runs whole on one xdist worker (its module-scoped fixtures run once), the heavy ones
    together on one worker, first (the longest unit must not start last)."""
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1]
        item.add_marker(pytest.mark.xdist_group("heavy" if module in HEAVY else module))
    items.sort(key=lambda item: item.module.__name__.rsplit(".", 1)[-1] not in HEAVY)


@pytest.fixture(scope="session", autouse=True)
def no_jvm_outlives_the_session() -> Iterator[None]:
    """Every JVM this session starts (here, or in a child: runner, zk start, checker) inherits a tag in
    its environment; the session ends only once all of them have exited, and fails naming any that did not."""
    tag = os.environ.get(SUITE_TAG) or f"pytest-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    if worker := os.environ.get("PYTEST_XDIST_WORKER"):  # a worker waits for its own JVMs, not its sibling's
        tag = f"{tag}/{worker}"
    os.environ[SUITE_TAG] = tag
    yield
    left = wait_for_tagged_jvms(tag, timeout=30)
    assert not left, f"ZooKeeper JVM(s) started by the tests still run 30 s after the last test: pids {left}"


@pytest.fixture(scope="session")
def zk_server() -> Iterator[ZooKeeperCluster]:
    """One standalone server shared by the whole test session."""
    with ZooKeeperCluster(servers=1) as cluster:
        yield cluster


@pytest.fixture(scope="session", autouse=True)
def checker_shares_the_server(no_jvm_outlives_the_session: None, zk_server: ZooKeeperCluster) -> Iterator[None]:
    """Every `python -m zklab.check` the tests start uses the session's server (each check in a chroot of its
    own) instead of starting a JVM per run; tests that need the checker's own ZooKeeper drop the variable.
    (It asks for the JVM check first, so that check is set up before the server and torn down after it.)"""
    os.environ[SHARED_ZK] = zk_server.hosts
    yield
    os.environ.pop(SHARED_ZK, None)


@pytest.fixture
def own_server() -> Iterator[ZooKeeperCluster]:
    """A standalone server of the test's own, for tests that restart it."""
    with ZooKeeperCluster(servers=1) as cluster:
        yield cluster


@pytest.fixture
def ensemble() -> Iterator[ZooKeeperCluster]:
    """A fresh 3-server ensemble; tests may stop, kill -9 and restart its members."""
    with ZooKeeperCluster(servers=3) as cluster:
        yield cluster


@pytest.fixture
def chroot(zk_server: ZooKeeperCluster) -> str:
    """A fresh namespace for this test, so tests sharing one server never see each other."""
    path = f"/labtest-{uuid.uuid4().hex[:12]}"
    admin = KazooClient(hosts=zk_server.hosts)
    admin.start(timeout=10)
    admin.ensure_path(path)
    admin.stop()
    admin.close()
    return path


@pytest.fixture
def zk_hosts(zk_server: ZooKeeperCluster, chroot: str) -> str:
    """The shared server's connection string, chrooted to this test's namespace."""
    return zk_server.hosts + chroot


@pytest.fixture
def make_client(zk_hosts: str) -> Iterator[Callable[..., KazooClient]]:
    """Started KazooClients (chrooted unless `hosts` is given), stopped and closed after the test."""
    clients: list[KazooClient] = []

    def make(hosts: str | None = None, timeout: float = SESSION_TIMEOUT, **kwargs: object) -> KazooClient:
        kwargs.setdefault("connection_retry", dict(RECONNECT_BACKOFF))  # back within 0.5 s of a heal
        client = KazooClient(hosts=hosts or zk_hosts, timeout=timeout, **kwargs)
        clients.append(client)
        client.start(timeout=10)
        return client

    yield make
    for client in clients:
        client.stop()
        client.close()


@pytest.fixture
def make_proxy(zk_server: ZooKeeperCluster) -> Iterator[Callable[..., PartitionProxy]]:
    """Partition proxies in front of the shared server (or `target`), closed after the test."""
    proxies: list[PartitionProxy] = []

    def make(target: str | None = None) -> PartitionProxy:
        proxy = PartitionProxy(target or zk_server.servers[0].address)
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        proxy.close()


@pytest.fixture
def leader_lab(zk_server: ZooKeeperCluster) -> Iterator[Lab]:
    """The checker's lab for the election script, on the shared server: tests run the checker's guarantees."""
    lab = Lab(challenge_leader_election, zk_server.servers[0].address)
    yield lab
    lab.close()


@pytest.fixture
def hashing_lab(zk_server: ZooKeeperCluster) -> Iterator[Lab]:
    """The checker's lab for the hashing script, on the shared server."""
    lab = Lab(challenge_consistent_hashing, zk_server.servers[0].address)
    yield lab
    lab.close()


@pytest.fixture
def ring_lab() -> Iterator[Lab]:
    """The checker's lab for the hash ring alone: no ZooKeeper."""
    lab = Lab(challenge_consistent_hashing)
    yield lab
    lab.close()


@pytest.fixture
def partitionable_ensemble() -> Iterator[ZooKeeperCluster]:
    """A fresh 3-server ensemble whose server-to-server links run through proxies: `isolate(sid)`
    partitions one member from its peers while its clients stay connected to it."""
    with ZooKeeperCluster(servers=3, peer_proxies=True) as cluster:
        yield cluster
