"""The partition proxy moves a real kazoo client through SUSPENDED and, past the timeout, LOST."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from kazoo.client import KazooClient, KazooState

from tests.conftest import SESSION_TIMEOUT
from zklab.faults import StateLog, expire_session, wait_until
from zklab.proxy import PartitionProxy


def _session_gone(admin: KazooClient, path: str) -> bool:
    """ZooKeeper has expired the session that owned the ephemeral node at `path`."""
    return admin.exists(path) is None


@pytest.mark.parametrize("fault", ["cut", "blackhole"])
def test_fault_suspends_then_loses_the_session(fault: str, make_client: Callable[..., KazooClient],
                                               make_proxy: Callable[..., PartitionProxy], chroot: str) -> None:
    """cut and blackhole both move the client to SUSPENDED; held past the session timeout, to LOST."""
    proxy = make_proxy()
    client = make_client(hosts=proxy.address + chroot)
    admin = make_client()
    client.create("/mine", ephemeral=True)
    log = StateLog(client)

    getattr(proxy, fault)()
    log.wait_for(KazooState.SUSPENDED, timeout=SESSION_TIMEOUT * 2)
    wait_until(lambda: _session_gone(admin, "/mine"), timeout=SESSION_TIMEOUT * 3,
               what="ZooKeeper to expire the partitioned session")
    assert KazooState.LOST not in log.states  # kazoo cannot know yet: it has not reached the server
    proxy.heal()
    log.wait_for(KazooState.LOST, timeout=SESSION_TIMEOUT * 3)
    wait_until(lambda: client.connected, timeout=10, what="a new session")
    assert client.exists("/mine") is None


def test_short_blackhole_resumes_the_same_session(make_client: Callable[..., KazooClient],
                                                  make_proxy: Callable[..., PartitionProxy], chroot: str) -> None:
    """A blackhole shorter than the session timeout: SUSPENDED, then RECONNECTED, ephemeral kept."""
    proxy = make_proxy()
    client = make_client(hosts=proxy.address + chroot, timeout=4.0)
    client.create("/mine", ephemeral=True)
    session = client.client_id[0]
    log = StateLog(client)
    proxy.blackhole()
    log.wait_for(KazooState.SUSPENDED, timeout=8)
    proxy.heal()
    log.wait_for(KazooState.CONNECTED, timeout=8)
    assert KazooState.LOST not in log.states
    assert client.client_id[0] == session and client.exists("/mine") is not None


def test_blackhole_to_client_lets_requests_through(make_client: Callable[..., KazooClient],
                                                   make_proxy: Callable[..., PartitionProxy], chroot: str) -> None:
    """One-way blackhole: the server applies a request whose reply the client never gets."""
    proxy = make_proxy()
    client = make_client(hosts=proxy.address + chroot)
    admin = make_client()
    proxy.blackhole("to_client")
    pending = client.create_async("/applied")
    wait_until(lambda: admin.exists("/applied"), timeout=5, what="the request to reach the server")
    assert not pending.ready()


def test_expire_session_is_real(make_client: Callable[..., KazooClient],
                                make_proxy: Callable[..., PartitionProxy], chroot: str) -> None:
    """expire_session makes the server drop the session and its ephemerals; the client sees LOST."""
    proxy = make_proxy()
    client = make_client(hosts=proxy.address + chroot, timeout=10.0)
    admin = make_client()
    client.create("/mine", ephemeral=True)
    old_session = client.client_id[0]
    expire_session(client, proxy)
    assert admin.exists("/mine") is None
    wait_until(lambda: client.connected, timeout=10, what="a new session")
    assert client.client_id[0] != old_session


def test_pipelined_requests_are_not_held_back(make_client: Callable[..., KazooClient],
                                              make_proxy: Callable[..., PartitionProxy], chroot: str) -> None:
    """A sync and a read sent back to back come through the proxy without Nagle's 40 ms wait for an ACK."""
    client = make_client(hosts=make_proxy().address + chroot)
    client.create("/here")
    took = []
    for _ in range(20):
        started = time.monotonic()
        client.sync_async("/here")
        client.exists_async("/here").get(timeout=5)
        took.append(time.monotonic() - started)
    assert sorted(took)[len(took) // 2] < 0.02, f"median {sorted(took)[len(took) // 2] * 1000:.0f} ms"
