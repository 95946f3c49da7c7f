"""The election recipe against a real ZooKeeper: one leader, no herd, no stale leader, under faults."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import KazooException

from challenge_leader_election import (
    LeaderElection,
    NotLeaderError,
    election_order,
    fenced_write,
    most_at_once,
)
from zklab.faults import expire_session, restart_behind, settle, wait_until
from zklab.launcher import ZooKeeperCluster
from zklab.proxy import PartitionProxy

PATH, LEDGER = "/election", "/ledger"
MakeClient = Callable[..., KazooClient]


def start_candidates(make_client: MakeClient, count: int, hosts: str | None = None,
                     timeout: float = 2.0) -> list[LeaderElection]:
    """`count` candidates, each with its own session, joined one after another (so in name order)."""
    elections = []
    for i in range(count):
        election = LeaderElection(make_client(hosts=hosts, timeout=timeout), PATH, f"c{i}")
        election.start()
        wait_until(lambda e=election: e.name in e.participants(), 10, f"{election.name} to join")
        elections.append(election)
    return elections


def the_leader(elections: list[LeaderElection], timeout: float = 10.0) -> LeaderElection:
    """Wait until exactly one candidate acts as leader, and return it."""
    def single() -> LeaderElection | None:
        leaders = [e for e in elections if e.is_leader]
        return leaders[0] if len(leaders) == 1 else None
    try:
        return wait_until(single, timeout, "exactly one acting leader")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {elections}") from None


def elected_at(election: LeaderElection) -> float:
    return next(t for t, leading, _ in reversed(election.history) if leading)


def revoked_at(election: LeaderElection) -> float:
    return next(t for t, leading, _ in reversed(election.history) if not leading)


def watchers_by_path(client: KazooClient) -> dict[str, int]:
    """From the server's own `wchp`: how many sessions watch each path."""
    counts: dict[str, int] = {}
    path = None
    for line in client.command(b"wchp").splitlines():
        if line.startswith("/"):
            path = line.strip()
            counts[path] = 0
        elif line.strip().startswith("0x") and path:
            counts[path] += 1
    return counts


# ---------------------------------------------------------------- who leads

def test_exactly_one_leader_and_it_is_the_lowest_sequence(make_client: MakeClient, chroot: str) -> None:
    """Among 5 candidates exactly one leads, the lowest sequence; leader() and participants() agree."""
    elections = start_candidates(make_client, 5)
    leader = the_leader(elections)
    queue = election_order(make_client().get_children(PATH))
    assert leader.epoch == queue[0].seq and leader.name == queue[0].name
    assert [e.participants() for e in elections] == [[c.name for c in queue]] * 5
    assert {e.leader() for e in elections} == {leader.name}
    assert most_at_once([e.history for e in elections]) == 1


def test_sequence_numbers_compare_as_numbers() -> None:
    """Sequence '0000000010' comes after '0000000009', whatever the GUIDs and names sort as."""
    nodes = ["ffff__late__0000000010", "0000__early__0000000009", "junk", "aaaa__mid__0000000100"]
    assert [c.name for c in election_order(nodes)] == ["early", "late", "mid"]


def test_departure_notifies_only_the_successor(make_client: MakeClient, chroot: str) -> None:
    """Each candidate watches only its predecessor: a departure wakes exactly one candidate."""
    elections = start_candidates(make_client, 6)
    leader = the_leader(elections)
    watched = watchers_by_path(make_client(hosts=None))
    ours = {p: n for p, n in watched.items() if p.startswith(chroot + PATH)}
    assert chroot + PATH not in ours, "someone watches the parent's children: a herd"
    assert sorted(ours.values()) == [1] * 5  # five followers, one watcher each, on five different nodes

    middle = elections[3]
    middle.resign()                      # a follower leaves: only its successor (c4) hears of it
    leader.resign()                      # the leader leaves: only c1 hears of it
    rest = [e for e in elections if e not in (middle, leader)]
    new = the_leader(rest)
    for e in rest:
        settle(e.client)
    assert new.name == "c1"
    assert {e.name: e.notifications for e in rest} == {"c1": 1, "c2": 0, "c4": 1, "c5": 0}


# ---------------------------------------------------------------- hand-overs

def test_resign_hands_leadership_over(make_client: MakeClient, chroot: str) -> None:
    """resign() deletes the leader's node and the next candidate leads, with a higher epoch."""
    elections = start_candidates(make_client, 3)
    old = the_leader(elections)
    old.resign()
    new = the_leader(elections)
    assert new.name == "c1" and not old.is_leader and new.epoch > old.epoch
    assert old.name not in new.participants()
    with pytest.raises(RuntimeError):
        old.start()  # closed is final


def test_session_expiry_elects_a_new_leader_and_the_old_rejoins(make_client: MakeClient, chroot: str,
                                                                make_proxy: Callable[..., PartitionProxy]) -> None:
    """The leader's session expires: the next candidate leads, and the old one rejoins at the back."""
    proxy = make_proxy()
    [old] = start_candidates(make_client, 1, hosts=proxy.address + chroot, timeout=10.0)
    others = [LeaderElection(make_client(), PATH, f"d{i}") for i in range(2)]
    for e in others:
        e.start()
        wait_until(lambda e=e: e.name in e.participants(), 10, "the others to join")
    assert the_leader([old, *others]) is old
    expire_session(old.client, proxy)
    new = the_leader([old, *others])
    assert new.name == "d0" and new.epoch > old.epoch
    wait_until(lambda: new.participants()[-1:] == [old.name], 10, "the old leader to rejoin at the back")
    assert not old.is_leader


@pytest.mark.parametrize("fault", ["cut", "blackhole"])
def test_partitioned_leader_steps_down_before_a_new_one_is_elected(
        fault: str, make_client: MakeClient, chroot: str, make_proxy: Callable[..., PartitionProxy]) -> None:
    """Partitioned past its session timeout, the old leader revokes itself before anyone else leads,
    and its late write with the old epoch is rejected by ZooKeeper."""
    proxy = make_proxy()
    old = LeaderElection(make_client(hosts=proxy.address + chroot), PATH, "old")
    old.start()
    wait_until(lambda: old.is_leader, 10, "the first candidate to lead")
    rest = start_candidates(make_client, 2)
    token = old.token
    fenced_write(old.client, token, LEDGER, "before the partition")

    getattr(proxy, fault)()
    new = the_leader(rest, timeout=15)
    assert not old.is_leader
    assert revoked_at(old) < elected_at(new), "two leaders acted at the same time"
    assert most_at_once([e.history for e in [old, *rest]]) == 1
    fenced_write(new.client, new.token, LEDGER, "from the new leader")

    proxy.heal()
    wait_until(lambda: old.client.connected, 15, "the old leader to reconnect")
    with pytest.raises(NotLeaderError, match="gone"):
        fenced_write(old.client, token, LEDGER, "a stale leader's late write")
    with pytest.raises(NotLeaderError):
        old.fenced_set(LEDGER, "through the recipe")
    assert b"from the new leader" in new.client.get(LEDGER)[0]


def test_connection_loss_during_create_leaves_one_node(make_client: MakeClient, chroot: str,
                                                      make_proxy: Callable[..., PartitionProxy]) -> None:
    """The reply to `create` is lost: the candidate finds its node by GUID, no orphan, no duplicate."""
    proxy = make_proxy()
    admin = make_client()
    election = LeaderElection(make_client(hosts=proxy.address + chroot, timeout=10.0), PATH, "lonely")
    admin.ensure_path(PATH)
    proxy.blackhole("to_client")          # requests reach ZooKeeper, replies never come back
    election.start()
    wait_until(lambda: admin.get_children(PATH), 10, "the create to reach ZooKeeper")
    proxy.cut()                           # the pending create fails with ConnectionLoss
    proxy.heal()
    wait_until(lambda: election.is_leader, 15, "the candidate to lead with its one node")
    assert len(admin.get_children(PATH)) == 1
    election.resign()
    assert admin.get_children(PATH) == []


def test_only_the_leader_may_write(make_client: MakeClient, chroot: str) -> None:
    """fenced_set raises NotLeaderError on a follower and succeeds on the leader."""
    elections = start_candidates(make_client, 2)
    leader = the_leader(elections)
    follower = next(e for e in elections if e is not leader)
    leader.fenced_set(LEDGER, "ok")
    with pytest.raises(NotLeaderError):
        follower.fenced_set(LEDGER, "nope")


# ---------------------------------------------------------------- ZooKeeper's own failures

def test_standalone_restart_within_session_timeout_keeps_one_leader(
        own_server: ZooKeeperCluster, make_client: MakeClient, make_proxy: Callable[..., PartitionProxy]) -> None:
    """ZooKeeper restarts within the session timeout: sessions survive, the same single leader leads."""
    gate = make_proxy(own_server.servers[0].address)
    clients = [make_client(hosts=gate.address, timeout=8.0) for _ in range(3)]
    elections = [LeaderElection(client, PATH, f"c{i}") for i, client in enumerate(clients)]
    for election in elections:
        election.start()
    the_leader(elections).resign()          # so the leader is one a departure woke
    leader = the_leader(elections)
    epoch, sessions = leader.epoch, [c.client_id[0] for c in clients]
    restart_behind(gate, own_server, 1)
    wait_until(lambda: all(c.connected for c in clients), 15, "every client to reconnect")
    assert the_leader(elections) is leader
    assert leader.epoch == epoch and leader.last_handoff_ms is None  # resumed its term: no hand-off
    assert [c.client_id[0] for c in clients] == sessions
    assert most_at_once([e.history for e in elections]) == 1


def test_ensemble_leader_kill_9_keeps_the_election_correct(ensemble: ZooKeeperCluster,
                                                          make_client: MakeClient) -> None:
    """kill -9 of ZooKeeper's leader: still one leader at a time, and ledger epochs never go backwards."""
    clients = [make_client(hosts=ensemble.hosts, timeout=6.0) for _ in range(3)]
    elections = [LeaderElection(client, PATH, f"c{i}") for i, client in enumerate(clients)]
    writes, stop = [], threading.Event()

    def keep_writing() -> None:
        while not stop.wait(0.02):
            for e in elections:
                if e.is_leader:
                    with contextlib.suppress(NotLeaderError, KazooException):
                        writes.append((e.fenced_set(LEDGER, "tick"), e.epoch))

    writer = threading.Thread(target=keep_writing, daemon=True)
    try:
        for election in elections:
            election.start()
        the_leader(elections)
        writer.start()
        wait_until(lambda: len(writes) >= 5, 10, "writes before the kill")
        ensemble.kill_server(ensemble.leader().sid)
        before = len(writes)
        wait_until(lambda: len(writes) >= before + 20, 30, "writes to resume after the kill")
        the_leader(elections)
        epochs = [epoch for _, epoch in sorted(writes)]   # in the order ZooKeeper applied them
        assert epochs == sorted(epochs)
        assert most_at_once([e.history for e in elections]) == 1
    finally:
        stop.set()  # before the fixture closes the clients under the writer
        writer.join(10)
