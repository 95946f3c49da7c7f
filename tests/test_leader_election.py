"""The election recipe against a real ZooKeeper: one leader, no herd, no stale leader, under faults."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import KazooException

from challenge_leader_election import LeaderElection, NotLeaderError, election_order
from zklab import check_leader
from zklab.check_lab import Lab, holds, most_at_once
from zklab.faults import expire_session, restart_behind, wait_until
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


# ---------------------------------------------------------------- the checker's guarantees
# Each is defined once, in zklab.check_leader; `./run.sh check leader` runs the same scenarios.

def test_exactly_one_leader_and_it_is_the_lowest_sequence(leader_lab: Lab) -> None:
    """Among 5 candidates exactly one leads, the first in line; all see one queue; only the leader may write."""
    holds(check_leader.ONE_LEADER, leader_lab)


def test_sequence_numbers_compare_as_numbers() -> None:
    """Sequence '0000000010' comes after '0000000009', whatever the GUIDs and names sort as."""
    nodes = ["ffff__late__0000000010", "0000__early__0000000009", "junk", "aaaa__mid__0000000100"]
    assert [c.name for c in election_order(nodes)] == ["early", "late", "mid"]


def test_resign_hands_leadership_down_the_queue(leader_lab: Lab) -> None:
    """Each resign hands leadership to the next in line, across sequence 9 to 10; closed is final."""
    holds(check_leader.IN_ORDER, leader_lab)


def test_departure_notifies_only_the_successor(leader_lab: Lab) -> None:
    """A departure wakes exactly one candidate, counted on the wire; a middle departure elects nobody."""
    holds(check_leader.HERD, leader_lab)


@pytest.mark.parametrize("fault", ["cut", "blackhole"])
def test_partitioned_leader_steps_down_before_a_new_one_is_elected(fault: str, leader_lab: Lab) -> None:
    """Partitioned past its session timeout, the old leader stops before anyone else leads, ZooKeeper
    rejects its late write, and it rejoins at the back."""
    holds(check_leader.PARTITION, leader_lab, fault=fault)


def test_connection_loss_during_create_leaves_one_node(leader_lab: Lab) -> None:
    """The reply to `create` is lost: the candidate finds its node by GUID, no orphan, no duplicate."""
    holds(check_leader.LOST_CREATE, leader_lab)


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


# ---------------------------------------------------------------- ZooKeeper's own failures

def test_standalone_restart_within_session_timeout_keeps_one_leader(
        own_server: ZooKeeperCluster, make_client: MakeClient, make_proxy: Callable[..., PartitionProxy]) -> None:
    """ZooKeeper restarts within the session timeout: sessions survive, the same single leader leads."""
    gate = make_proxy(own_server.servers[0].address)
    clients = [make_client(hosts=gate.address, timeout=8.0) for _ in range(3)]
    heard: list[tuple[str, str]] = []
    elections = [LeaderElection(client, PATH, f"c{i}", on_change=lambda e, event, _: heard.append((e.name, event)))
                 for i, client in enumerate(clients)]
    for election in elections:
        election.start()
    the_leader(elections).resign()          # so the leader is one a departure woke
    leader = the_leader(elections)
    epoch, sessions, before = leader.epoch, [c.client_id[0] for c in clients], len(heard)
    restart_behind(gate, own_server, 1)
    wait_until(lambda: all(c.connected for c in clients), 15, "every client to reconnect")
    assert the_leader(elections) is leader
    assert leader.epoch == epoch and (leader.name, "woken") not in heard[before:]  # resumed its term: no hand-off
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
