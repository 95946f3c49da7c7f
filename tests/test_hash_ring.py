"""The ring's guarantees, without ZooKeeper: agreement, minimal movement, balance, clear errors."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from collections.abc import Callable

import pytest

from challenge_consistent_hashing import HashRing, ideal_fraction, point
from tests.cli import ROOT

KEYS = [f"key:{i}" for i in range(100_000)]
TEN = [f"node-{i}" for i in range(10)]


def owners(ring: HashRing, keys: list[str] = KEYS) -> list[str]:
    return [ring.owner(k) for k in keys]


def _owners_in_a_fresh_process(hashseed: str) -> str:
    code = ("from challenge_consistent_hashing import HashRing\n"
            "r = HashRing(160, [f'node-{i}' for i in range(10)])\n"
            "print(','.join(r.owner(f'key:{i}') for i in range(10_000)))")
    env = {"PYTHONHASHSEED": hashseed, "PATH": ""}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          check=True, timeout=60).stdout


def test_same_members_same_owners_in_every_process() -> None:
    """Two processes with different PYTHONHASHSEED agree on all 10,000 owners (and with this one)."""
    first, second = _owners_in_a_fresh_process("1"), _owners_in_a_fresh_process("2")
    assert first == second
    assert first.strip().split(",") == owners(HashRing(160, TEN), KEYS[:10_000])


def test_points_are_at_least_64_bit() -> None:
    """Points use a wide hash: 10,000 slots would collide after ~120 members."""
    assert max(point(f"n#{i}") for i in range(1000)) >= 2**64


def test_order_of_joins_changes_no_owner() -> None:
    """Members added in any order give the same ring, owners and fingerprint."""
    forward = HashRing(160, TEN)
    backward = HashRing(160, list(reversed(TEN)))
    shuffled = HashRing(160)
    for name in sorted(TEN, key=lambda n: point(n)):
        shuffled.add(name)
    assert owners(forward) == owners(backward) == owners(shuffled)
    assert forward.fingerprint == backward.fingerprint == shuffled.fingerprint


def test_equal_points_are_broken_by_name() -> None:
    """A tie between two members' points resolves the same way whichever joined first."""
    a, b = HashRing(1), HashRing(1)
    a._weights, b._weights = {"x": 1, "y": 1}, {"x": 1, "y": 1}
    a._insert([(100, "y")])
    a._insert([(100, "x")])
    b._insert([(100, "x")])
    b._insert([(100, "y")])
    assert a._owners == b._owners == ["x", "y"]


def test_ties_everywhere_still_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a 4-bit hash (ties everywhere), bulk and one-by-one rings in any order still agree."""
    import challenge_consistent_hashing as chash
    real = chash.point
    monkeypatch.setattr(chash, "point", lambda label: real(label) % 16)
    names = [f"n{i}" for i in range(6)]
    bulk = HashRing(5, names)
    one_by_one = HashRing(5)
    for name in reversed(names):
        one_by_one.add(name)
    assert (bulk._points, bulk._owners) == (one_by_one._points, one_by_one._owners)
    one_by_one.remove("n3")
    assert (HashRing(5, [n for n in names if n != "n3"])._owners) == one_by_one._owners


def moves(change: Callable[[HashRing], None]) -> list[tuple[str, str]]:
    """(old owner, new owner) of every key that `change` to a 10-member ring moved."""
    ring = HashRing(160, TEN)
    before = owners(ring)
    change(ring)
    return [(b, a) for b, a in zip(before, owners(ring), strict=True) if b != a]


def test_join_moves_keys_only_to_the_new_member_and_about_one_nth() -> None:
    """At N=10: a join moves keys only to the joiner, within 1.25x of the ideal 1/11."""
    moved = moves(lambda ring: ring.add("node-new"))
    assert {new for _, new in moved} == {"node-new"}
    assert len(moved) / len(KEYS) <= 1.25 * (1 / 11)


def test_leave_moves_keys_only_from_the_leaving_member() -> None:
    """At N=10: a leave moves all of the leaver's keys and no other, within 1.25x of the ideal 1/10."""
    moved = moves(lambda ring: ring.remove("node-3"))
    assert {old for old, _ in moved} == {"node-3"}
    assert len(moved) == owners(HashRing(160, TEN)).count("node-3")
    assert len(moved) / len(KEYS) <= 1.25 * (1 / 10)


def test_load_is_balanced_at_ten_members() -> None:
    """max/mean load <= 1.15 at N=10 with 160 vnodes."""
    counts = Counter(owners(HashRing(160, TEN)))
    assert max(counts.values()) / (len(KEYS) / 10) <= 1.15


def test_weight_two_member_gets_twice_the_share() -> None:
    """A weight-2 member owns 2x a weight-1 member's mean share, within 15%."""
    ring = HashRing(160, {**{n: 1 for n in TEN[:9]}, "heavy": 2})
    counts = Counter(owners(ring))
    mean_light = sum(counts[n] for n in TEN[:9]) / 9
    assert counts["heavy"] / mean_light == pytest.approx(2, rel=0.15)


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
