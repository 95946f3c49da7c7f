"""The ring's guarantees, without ZooKeeper: agreement, minimal movement, balance, clear errors."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from challenge_consistent_hashing import HashRing, ideal_fraction, place_points
from zklab import check_hashing
from zklab.check_lab import Lab, holds

KEYS = [f"key:{i}" for i in range(100_000)]
TEN = [f"node-{i}" for i in range(10)]


def owners(ring: HashRing, keys: list[str] = KEYS) -> list[str]:
    return [ring.owner(k) for k in keys]


# ---------------------------------------------------------------- the checker's guarantees
# Each is defined once, in zklab.check_hashing; `./run.sh check hashing` runs the same ones.

def test_same_members_same_owners_in_every_process(ring_lab: Lab) -> None:
    """Two processes with different PYTHONHASHSEED agree on all 100,000 owners."""
    holds(check_hashing.AGREE, ring_lab)


def test_load_is_balanced_at_ten_members(ring_lab: Lab) -> None:
    """max/mean load <= 1.3 at N=10 with the default vnodes."""
    holds(check_hashing.BALANCE, ring_lab)


def test_join_moves_keys_only_to_the_new_member_and_about_one_nth(ring_lab: Lab) -> None:
    """At N=10: a join moves keys only to the joiner, within 0.7-1.3x of the ideal 1/11."""
    holds(check_hashing.JOIN, ring_lab)


def test_leave_moves_keys_only_from_the_leaving_member(ring_lab: Lab) -> None:
    """At N=10: a leave moves only the leaver's keys, within 0.7-1.3x of the ideal 1/10."""
    holds(check_hashing.LEAVE, ring_lab)


def test_weight_two_member_gets_twice_the_share(ring_lab: Lab) -> None:
    """A weight-2 member owns 2x a weight-1 member's mean share, within 15%."""
    holds(check_hashing.WEIGHTS, ring_lab)


def test_points_are_wide_and_never_collide(ring_lab: Lab) -> None:
    """100,000 member points are distinct and use at least 64 bits: 10,000 slots would collide after ~120."""
    holds(check_hashing.POINTS, ring_lab)


def test_order_of_joins_changes_no_owner_even_with_ties(ring_lab: Lab) -> None:
    """Members added in any order, or removed, give the same owners, even with a 4-bit point() (ties)."""
    holds(check_hashing.ORDER, ring_lab)


# ---------------------------------------------------------------- the ring's API

def test_a_position_past_the_last_point_wraps_to_the_first() -> None:
    """owner_at(2**128 - 1), past every point, is the first point's owner: never an IndexError."""
    ring = HashRing(8, ["a", "b", "c"])
    first_owner = ring.owner_at(0)
    assert ring.owner_at(2**128 - 1) == first_owner
    points, owners = place_points(ring.weights, 8)
    assert ring.owner_at(points[-1]) == owners[-1] and ring.owner_at(points[-1] + 1) == owners[0]


@pytest.mark.parametrize("ask", [lambda ring: ring.owner("k"), lambda ring: ring.owner_at(0),
                                 lambda ring: ring.owner_at(2**128 - 1)])
def test_an_empty_ring_says_so(ask: Callable[[HashRing], object]) -> None:
    """A ring with no member raises LookupError that says it is empty, also after its last member left."""
    emptied = HashRing(8, ["a"])
    emptied.remove("a")
    for ring in (HashRing(8), emptied):
        with pytest.raises(LookupError, match="empty"):
            ask(ring)


def test_place_points_breaks_ties_by_name_whatever_the_order() -> None:
    """Equal points are ordered by member name, whatever the order of the weights given."""
    import challenge_consistent_hashing as chash
    real = chash.point
    chash.point = lambda label: real(label) % 4  # 4 positions: ties everywhere
    try:
        forward = place_points({"a": 1, "b": 1, "c": 1}, 4)
        backward = place_points({"c": 1, "b": 1, "a": 1}, 4)
    finally:
        chash.point = real
    assert forward == backward and forward[0] == sorted(forward[0])
    assert all(forward[1][i] <= forward[1][i + 1] for i in range(len(forward[0]) - 1)
               if forward[0][i] == forward[0][i + 1])



def test_owners_gives_distinct_members_starting_with_owner() -> None:
    """owners(key, 3) is 3 distinct members, the first being owner(key)."""
    ring = HashRing(160, TEN)
    for key in KEYS[:2000]:
        replicas = ring.owners(key, 3)
        assert len(set(replicas)) == 3 and replicas[0] == ring.owner(key)


def test_keys_may_be_str_or_bytes() -> None:
    """A str key and its UTF-8 bytes land on the same member."""
    ring = HashRing(160, TEN)
    assert all(ring.owner(k) == ring.owner(k.encode()) for k in KEYS[:1000])


def test_removing_what_was_added_restores_the_ring() -> None:
    """add then remove leaves the ring exactly as it was: no stray points."""
    ring = HashRing(160, TEN)
    before = (list(ring._points), list(ring._owners))
    ring.add("temp", 3)
    ring.remove("temp")
    assert (ring._points, ring._owners) == before


def test_collection_api() -> None:
    """nodes, len() and `in` describe the membership; a mapping gives weights."""
    ring = HashRing(8, {"a": 1, "b": 2.5})
    assert ring.nodes == ["a", "b"] and len(ring) == 2 and "b" in ring and "c" not in ring
    assert len(ring._points) == 8 + 20


def test_ideal_fraction_is_the_changed_share() -> None:
    """The ideal movement is the weight share of who joined or left."""
    assert ideal_fraction({"a": 1, "b": 1}, {"a": 1, "b": 1, "c": 2}) == pytest.approx(0.5)
    assert ideal_fraction({"a": 1, "b": 3}, {"b": 3}) == pytest.approx(0.25)


@pytest.mark.parametrize("call, error, words", [
    (lambda: HashRing(160).owner("k"), LookupError, "empty"),
    (lambda: HashRing(0), ValueError, "vnodes"),
    (lambda: HashRing(160).add("a", 0), ValueError, "weight"),
    (lambda: HashRing(160).add("a", -1), ValueError, "weight"),
    (lambda: HashRing(160, ["a"]).remove("b"), KeyError, "not on the ring"),
    (lambda: HashRing(160, ["a", "b"]).owners("k", 3), ValueError, "2 members"),
])
def test_errors_are_clear(call: Callable[[], object], error: type[Exception], words: str) -> None:
    """Misuse raises the documented exception with a message that says what went wrong."""
    with pytest.raises(error, match=words):
        call()
