"""The election recipe against hostile input and a ZooKeeper that goes away: names, fencing, bounded resign."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from kazoo.client import KazooClient

from challenge_leader_election import (
    Candidate,
    LeaderElection,
    NotLeaderError,
    election_order,
    fenced_write,
    parse_candidate,
)
from zklab.faults import wait_until
from zklab.proxy import PartitionProxy

PATH, LEDGER = "/election", "/ledger"
MakeClient = Callable[..., KazooClient]


def leading(make_client: MakeClient, name: str = "solo", **kwargs: object) -> LeaderElection:
    election = LeaderElection(make_client(**kwargs), PATH, name)
    election.start()
    wait_until(lambda: election.is_leader, 10, f"{name} to lead")
    return election


# ---------------------------------------------------------------- names

@pytest.mark.parametrize("name", ["a_", "_a", "a__b", "a___", "w1-ab12", "x.y", "_"])
def test_every_valid_name_round_trips_through_the_node_name(name: str) -> None:
    """Whatever name validation lets through, parse_candidate reads back from '<guid>__<name>__<seq>'."""
    LeaderElection(KazooClient(), PATH, name)  # accepted
    node = f"{'f' * 32}__{name}__0000000042"
    assert parse_candidate(node) == Candidate(node, name, 42)


@pytest.mark.parametrize("name", ["", "a/b", "a b", "é", "x" * 65, "a\n", "a\x00"])
def test_names_that_cannot_round_trip_are_refused_with_the_rule(name: str) -> None:
    """A name outside 1-64 of A-Z a-z 0-9 . _ - is refused, and the error says what is allowed."""
    with pytest.raises(ValueError, match=r"1 to 64 characters from A-Z a-z 0-9 \. _ -"):
        LeaderElection(KazooClient(), PATH, name)


def test_foreign_nodes_never_parse_as_candidates() -> None:
    """Nodes not in our shape (no GUID, no sequence, non-ASCII digits) are left out of the queue."""
    assert election_order(["junk", "__a__0000000001", "g__a__", "g____1", "g__a__12\u00b2", "g__a__0000000003"]) \
        == [parse_candidate("g__a__0000000003")]


def test_name_ending_in_underscore_makes_one_node_and_leaves_none(make_client: MakeClient, chroot: str) -> None:
    """A candidate named 'a_' leads with exactly one node (no flood), and resign() leaves zero nodes."""
    observer = make_client()
    election = LeaderElection(make_client(), PATH, "a_")
    election.start()
    wait_until(lambda: election.is_leader, 5, "'a_' to lead (a name that does not parse never does)")
    assert [c.name for c in election_order(observer.get_children(PATH))] == ["a_"]
    assert observer.exists(PATH).cversion == 1, "more than one create: the candidate re-created its node"
    assert election.resign() is True
    assert observer.get_children(PATH) == []


# ---------------------------------------------------------------- fencing tells the truth

def test_ledger_changed_under_the_write_is_reported_as_such(make_client: MakeClient, chroot: str) -> None:
    """When another writer changes the ledger between our read and our commit, the error says
    'ledger changed', never that our election node is gone."""
    election = leading(make_client)
    rival, stop = make_client(), threading.Event()
    rival.ensure_path(LEDGER)

    def hammer() -> None:
        while not stop.is_set():
            rival.set(LEDGER, b"rival")

    errors: list[str] = []

    def race() -> bool:
        try:
            election.fenced_set(LEDGER, "mine")
        except NotLeaderError as exc:
            errors.append(str(exc))
        return bool(errors)

    thread = threading.Thread(target=hammer, daemon=True)
    thread.start()
    try:
        wait_until(race, 10, "a write that loses the race with the rival")
    finally:
        stop.set()
        thread.join(5)
    assert "ledger changed" in errors[0] and "gone" not in errors[0], errors[0]


def test_deleted_election_node_is_reported_as_gone(make_client: MakeClient, chroot: str) -> None:
    """A write with the token of a node that no longer exists blames the election node."""
    election = leading(make_client)
    token = election.token
    election.resign()
    with pytest.raises(NotLeaderError, match=r"election node \.\.\.solo__\d{10} is gone"):
        fenced_write(make_client(), token, LEDGER, "late")


def test_fenced_set_takes_bytes_as_kazoo_does(make_client: MakeClient, chroot: str) -> None:
    """fenced_set accepts bytes (kazoo's convention for znode values) as well as str."""
    election = leading(make_client)
    election.fenced_set(LEDGER, b"from bytes")
    assert b'"value": "from bytes"' in election.client.get(LEDGER)[0]
    election.fenced_set(LEDGER, "from str")
    assert b'"value": "from str"' in election.client.get(LEDGER)[0]


@pytest.mark.parametrize("value", [5, None, ["x"], bytearray(b"x")])
def test_fenced_set_refuses_other_types_clearly(value: object, make_client: MakeClient, chroot: str) -> None:
    """Anything but str or bytes is a TypeError that names both accepted types; nothing is written."""
    election = leading(make_client)
    with pytest.raises(TypeError, match="str or bytes"):
        election.fenced_set(LEDGER, value)
    assert election.client.exists(LEDGER) is None


# ---------------------------------------------------------------- a ZooKeeper that is gone

def test_resign_is_bounded_when_zookeeper_is_gone(make_client: MakeClient, chroot: str,
                                                 make_proxy: Callable[..., PartitionProxy]) -> None:
    """With ZooKeeper unreachable, resign() returns within the session timeout, says the node was left,
    and session expiry removes it."""
    proxy = make_proxy()
    election = leading(make_client, hosts=proxy.address + chroot, timeout=2.0)
    observer = make_client()
    proxy.cut()
    started, result = time.monotonic(), []
    thread = threading.Thread(target=lambda: result.append(election.resign()), daemon=True)
    thread.start()
    thread.join(2.0 + 1.0)
    assert result == [False], f"resign() still blocked after {time.monotonic() - started:.1f}s"
    assert not election.is_leader
    wait_until(lambda: observer.get_children(PATH) == [], 2.0 * 2 + 2, "session expiry to remove the node")
