"""Membership in a real ZooKeeper: routers converge on joins, leaves and crashes, and recover."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

import pytest
from kazoo.client import KazooClient

from challenge_consistent_hashing import NOT_EPHEMERAL, RingWatcher, members_path, register_node
from zklab import check_hashing
from zklab.check_lab import Lab, holds
from zklab.faults import wait_until
from zklab.launcher import ZooKeeperCluster
from zklab.proxy import PartitionProxy

ROOT = "/ring"
MakeClient = Callable[..., KazooClient]


def converge(routers: list[RingWatcher], members: set[str], timeout: float) -> float:
    """Wait until every router holds exactly `members`, with one fingerprint; return seconds taken."""
    started = time.monotonic()
    for router in routers:
        router.wait_for(lambda ring: set(ring.nodes) == members, timeout - (time.monotonic() - started))
    assert len({r.fingerprint for r in routers}) == 1
    return time.monotonic() - started


@pytest.fixture
def routers(make_client: MakeClient) -> Iterator[list[RingWatcher]]:
    watchers = [RingWatcher(make_client(), ROOT, vnodes=40) for _ in range(2)]
    yield watchers
    for watcher in watchers:
        watcher.close()


def test_register_creates_an_ephemeral_with_its_weight(make_client: MakeClient) -> None:
    """register_node makes <root>/members/<name>, ephemeral, holding JSON with the weight."""
    member = make_client()
    path = register_node(member, ROOT, "alpha", weight=2)
    data, stat = make_client().get(path)
    assert path == f"{members_path(ROOT)}/alpha"
    assert json.loads(data) == {"weight": 2} and stat.ephemeralOwner == member.client_id[0]
    with pytest.raises(ValueError):
        register_node(member, ROOT, "bad/name")


def test_routers_converge_on_join_leave_and_crash(hashing_lab: Lab) -> None:
    """Both routers reach the same fingerprint within 1 s of a join, a clean leave and a crash."""
    holds(check_hashing.ROUTERS, hashing_lab)


def test_members_registered_by_hand_are_ignored_unless_valid(make_client: MakeClient,
                                                             routers: list[RingWatcher]) -> None:
    """A member znode with foreign or invalid data stays off the ring (never weight 1); empty data is weight 1."""
    member = make_client()
    for name, data in [("plain", b"hello"), ("negative", b'{"weight": -3}'), ("listy", b"[1, 2]"), ("bare", b"")]:
        member.create(f"{members_path(ROOT)}/{name}", data, ephemeral=True, makepath=True)
    for router in routers:
        router.wait_for(lambda ring, r=router: set(r.ignored) == {"plain", "negative", "listy"}, 5)
    converge(routers, {"bare"}, 5)
    assert routers[0].ring.weights == {"bare": 1}


def test_members_with_foreign_data_or_not_ephemeral_stay_off_the_ring(hashing_lab: Lab) -> None:
    """Members written by hand with weights 1e9, 1e-9, "2", junk bytes, JSON nested 100,000 deep, a 10 kB
    record, or valid but persistent, stay off both routers' rings and are reported in ignored; the valid
    ephemeral one joins within 1 s, and so does one that joins after them all."""
    holds(check_hashing.FOREIGN, hashing_lab)


def test_a_persistent_member_is_ignored_once_with_the_reason(make_client: MakeClient) -> None:
    """A persistent member znode with valid data stays off the ring, reported once as not ephemeral."""
    heard: list[tuple[str, str]] = []
    router = RingWatcher(make_client(), ROOT, vnodes=40, on_ignored=lambda name, why: heard.append((name, why)))
    try:
        make_client().create(f"{members_path(ROOT)}/ghost", b'{"weight": 1}')
        router.wait_for(lambda ring: "ghost" in router.ignored, 5)
        register_node(make_client(), ROOT, "live")
        router.wait_for(lambda ring: set(ring.nodes) == {"live"}, 5)
        assert router.ignored == {"ghost": NOT_EPHEMERAL} and heard == [("ghost", NOT_EPHEMERAL)]
    finally:
        router.close()


def test_ring_rebuild_is_swapped_whole(hashing_lab: Lab) -> None:
    """Readers holding the old ring keep a consistent old ring; the watcher swaps in a new object."""
    holds(check_hashing.SWAP, hashing_lab)


def test_standalone_restart_recovers_without_ghosts(own_server: ZooKeeperCluster, make_client: MakeClient,
                                                     make_proxy: Callable[..., PartitionProxy]) -> None:
    """ZooKeeper restarts: live members stay; one that died meanwhile leaves no ghost on the ring."""
    gate = make_proxy(own_server.servers[0].address)

    def client(timeout: float = 8.0) -> KazooClient:
        return make_client(hosts=gate.address, timeout=timeout)

    for name in ("a", "b"):
        register_node(client(), ROOT, name)
    doomed = client(timeout=1.5)
    register_node(doomed, ROOT, "doomed")
    routers = [RingWatcher(client(), ROOT, vnodes=40) for _ in range(2)]
    converge(routers, {"a", "b", "doomed"}, 5)
    gate.cut()
    own_server.stop_server(1)
    doomed.stop()          # dies while ZooKeeper is down: no chance to say goodbye
    own_server.start_server(1)
    gate.heal()            # clients come back once it serves (see zklab.faults.restart_behind)
    converge(routers, {"a", "b"}, 15)   # its session expires after the restart; the ring follows
    register_node(client(), ROOT, "c")  # and the routers still follow changes
    converge(routers, {"a", "b", "c"}, 5)


def test_ensemble_member_killed_ring_recovers(ensemble: ZooKeeperCluster, make_client: MakeClient) -> None:
    """kill -9 of ZooKeeper's leader: routers keep up with a leave and a join, no ghost."""
    def client() -> KazooClient:
        return make_client(hosts=ensemble.hosts, timeout=6.0)

    members = {name: client() for name in ("a", "b", "c")}
    for name, member in members.items():
        register_node(member, ROOT, name)
    routers = [RingWatcher(client(), ROOT, vnodes=40) for _ in range(2)]
    converge(routers, {"a", "b", "c"}, 5)
    ensemble.kill_server(ensemble.leader().sid)
    wait_until(lambda: any(s.mode() == "leader" for s in ensemble.servers), 20, "a new ZooKeeper leader")
    members["c"].retry(members["c"].delete, f"{members_path(ROOT)}/c")
    late = client()
    late.retry(register_node, late, ROOT, "d")
    converge(routers, {"a", "b", "d"}, 15)


def test_a_weight_set_in_place_reaches_every_router(make_client: MakeClient, routers: list[RingWatcher]) -> None:
    """A member that sets a new weight on its own znode (no child added or removed) gets it on both routers'
    rings within a second: each member is read with a data watch."""
    member = make_client()
    path = register_node(member, ROOT, "grower")
    register_node(make_client(), ROOT, "steady")
    converge(routers, {"grower", "steady"}, 5)
    member.set(path, json.dumps({"weight": 3}).encode())
    for router in routers:
        router.wait_for(lambda ring: ring.weights.get("grower") == 3, 1.0)
    member.set(path, json.dumps({"weight": 0.5}).encode())  # and again: the watch was set anew by the re-read
    for router in routers:
        router.wait_for(lambda ring: ring.weights.get("grower") == 0.5, 1.0)


def test_an_invalid_weight_set_in_place_takes_the_member_off_with_one_warning(make_client: MakeClient) -> None:
    """A member whose data turns into junk leaves the ring with one warning, and joins again once it is fixed."""
    heard: list[tuple[str, str]] = []
    router = RingWatcher(make_client(), ROOT, vnodes=40, on_ignored=lambda name, why: heard.append((name, why)))
    try:
        member = make_client()
        path = register_node(member, ROOT, "flaky")
        register_node(make_client(), ROOT, "other")
        router.wait_for(lambda ring: set(ring.nodes) == {"flaky", "other"}, 5)
        member.set(path, b'{"weight": 1e9}')
        router.wait_for(lambda ring: "flaky" not in ring and "flaky" in router.ignored, 1.0)
        register_node(make_client(), ROOT, "third")  # another rebuild: no second warning for the same data
        router.wait_for(lambda ring: "third" in ring, 1.0)
        assert heard == [("flaky", "weight 1e9 is outside 0.01..100")]
        member.set(path, b'{"weight": 2}')
        router.wait_for(lambda ring: ring.weights.get("flaky") == 2 and "flaky" not in router.ignored, 1.0)
    finally:
        router.close()
