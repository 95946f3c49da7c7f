"""The hashing recipe against hostile input: weights out of range, foreign znode data, rings too big."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import pytest
from kazoo.client import KazooClient

import challenge_consistent_hashing as chash
from challenge_consistent_hashing import HashRing, RingWatcher, members_path, parse_weight, register_node

ROOT = "/ring"
MakeClient = Callable[..., KazooClient]
BAD_WEIGHTS = [float("inf"), float("nan"), -1, 0, 1e9, 1e-9, 100.5, "3", True, None]


def snapshot(ring: HashRing) -> tuple:
    return list(ring._points), list(ring._owners), ring.weights, ring.fingerprint


@pytest.mark.parametrize("weight", BAD_WEIGHTS)
def test_bad_weight_leaves_the_ring_exactly_as_it_was(weight: object) -> None:
    """add() with a weight outside 0.01..100 (or not a number) raises ValueError and changes nothing."""
    ring = HashRing(16, {"a": 1, "b": 2})
    before = snapshot(ring)
    for name in ("new", "b"):  # a joiner, and a member re-weighted
        with pytest.raises(ValueError, match="weight"):
            ring.add(name, weight)
        assert snapshot(ring) == before
    ring.remove("b")  # still whole: nothing half-added to trip over


def test_weights_at_the_bounds_are_accepted() -> None:
    """MIN_WEIGHT and MAX_WEIGHT themselves are valid, and the lightest member still gets a point."""
    ring = HashRing(160, {"light": chash.MIN_WEIGHT, "heavy": chash.MAX_WEIGHT})
    assert ring.point_count == 2 + 16_000


def test_ring_never_grows_past_max_points(monkeypatch: pytest.MonkeyPatch) -> None:
    """A ring is at most MAX_POINTS points: a build or add that would pass it raises and changes nothing."""
    monkeypatch.setattr(chash, "MAX_POINTS", 1000)
    with pytest.raises(ValueError, match="MAX_POINTS"):
        HashRing(100, {"a": 6, "b": 5})
    ring = HashRing(100, {"a": 6})
    before = snapshot(ring)
    with pytest.raises(ValueError, match="MAX_POINTS"):
        ring.add("b", 5)
    assert snapshot(ring) == before
    ring.add("b", 4)
    assert ring.point_count == 1000


def test_remove_takes_every_copy_of_an_equal_point(monkeypatch: pytest.MonkeyPatch) -> None:
    """A member holding one position twice (a weak hash) leaves no stray point behind on remove()."""
    real = chash.point
    monkeypatch.setattr(chash, "point", lambda label: real(label) % 4)
    ring = HashRing(8, ["a", "b"])
    assert len(set(ring._points)) < ring.point_count  # equal points, some of them one member's
    ring.remove("b")
    assert snapshot(ring)[:3] == snapshot(HashRing(8, ["a"]))[:3]
    ring.add("b")
    assert snapshot(ring) == snapshot(HashRing(8, ["a", "b"]))


@pytest.mark.parametrize("data, words", [
    (b'{"weight": 1e9}', "weight 1e9 is outside 0.01..100"),
    (b'{"weight": Infinity}', "weight inf is outside"),
    (b'{"weight": NaN}', "weight nan is outside"),
    (b'{"weight": -1}', "weight -1 is outside"),
    (b'{"weight": 1e-9}', "weight 1e-9 is outside"),
    (b'{"weight": 1e999}', "weight inf is outside"),
    (b'{"weight": "3"}', "is not a number"),
    (b'{"weight": true}', "is not a number"),
    (b'{"size": 3}', 'is not {"weight": number}'),
    (b"[1, 2]", 'is not {"weight": number}'),
    (b"\xff\xfe junk", "is not JSON"),
    (b"[" * 1000, "is not JSON"),
    (b" " * 5000, "5,000 bytes"),
])
def test_foreign_member_data_is_refused_with_a_reason(data: bytes, words: str) -> None:
    """parse_weight refuses anything but {"weight": number in range}, saying why in a few words."""
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace("{", r"\{")):
        parse_weight(data)


def test_our_data_and_empty_data_are_accepted() -> None:
    """{"weight": w} gives w; empty data (a znode made by hand in zkCli.sh) means weight 1."""
    assert parse_weight(b'{"weight": 2.5}') == 2.5 and parse_weight(b"") == 1


HOSTILE = {
    "huge": b'{"weight": 1e9}', "infinite": b'{"weight": Infinity}', "nan": b'{"weight": NaN}',
    "negative": b'{"weight": -1}', "tiny": b'{"weight": 1e-9}', "text": b'{"weight": "3"}',
    "boolean": b'{"weight": true}', "junk": b"\xff\xfe\x00junk", "big": b"x" * 500_000,
    "rtl\u202eevil": b'{"weight": "2"}',   # a right-to-left override in its name: the warning escapes it
}


@pytest.fixture
def watchers(make_client: MakeClient) -> Iterator[tuple[list[RingWatcher], list[tuple[str, str]]]]:
    heard: list[tuple[str, str]] = []
    routers = [RingWatcher(make_client(), ROOT, vnodes=40, on_ignored=lambda n, why: heard.append((n, why)))
               for _ in range(2)]
    yield routers, heard
    for router in routers:
        router.close()


def test_hostile_members_are_ignored_once_and_routers_stay_live(
        make_client: MakeClient, watchers: tuple[list[RingWatcher], list[tuple[str, str]]],
        caplog: pytest.LogCaptureFixture) -> None:
    """Hostile member znodes stay off the ring with one warning each; a later valid join converges within 1 s."""
    routers, heard = watchers
    caplog.set_level(logging.WARNING, logger="challenge_consistent_hashing")
    writer = make_client()
    register_node(writer, ROOT, "good")
    for name, data in HOSTILE.items():
        writer.create(f"{members_path(ROOT)}/{name}", data, ephemeral=True)
    for router in routers:
        router.wait_for(lambda ring, r=router: set(r.ignored) == set(HOSTILE), 5)
        assert router.ring.nodes == ["good"] and router.ring.point_count == 40  # nothing else cost memory
    assert "1e9 is outside 0.01..100" in routers[0].ignored["huge"]
    for name in ("later", "later2"):  # more rebuilds: no new warning for the same members
        register_node(make_client(), ROOT, name)
        for router in routers:
            router.wait_for(lambda ring, n=name: n in ring, 1.0)
    expected = HashRing(40, ["good", "later", "later2"]).fingerprint
    assert routers[0].ring.fingerprint == routers[1].ring.fingerprint == expected
    assert sorted(n for n, _ in heard) == sorted(list(HOSTILE) * 2)
    warned = [r.getMessage() for r in caplog.records if "is not on the ring" in r.getMessage()]
    assert len(warned) == 2 * len(HOSTILE) and all(message.isprintable() for message in warned), warned
    assert not [r for r in caplog.records if r.exc_info]  # no tracebacks


def test_a_refused_member_that_goes_away_is_forgotten(
        make_client: MakeClient, watchers: tuple[list[RingWatcher], list[tuple[str, str]]]) -> None:
    """When an ignored member's znode is deleted, it leaves `.ignored`; fixed and re-created, it joins."""
    routers, _ = watchers
    writer = make_client()
    path = f"{members_path(ROOT)}/m9"
    writer.create(path, b'{"weight": 1e9}', ephemeral=True)
    routers[0].wait_for(lambda ring: "m9" in routers[0].ignored, 5)
    writer.delete(path)
    writer.create(path, b'{"weight": 2}', ephemeral=True)
    ring = routers[0].wait_for(lambda ring: "m9" in ring, 5)
    assert ring.weights == {"m9": 2} and routers[0].ignored == {}


def test_a_full_ring_refuses_the_joiner_that_does_not_fit(
        make_client: MakeClient, watchers: tuple[list[RingWatcher], list[tuple[str, str]]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A member whose points would pass MAX_POINTS is ignored with that reason; the ring keeps the rest."""
    routers, heard = watchers
    monkeypatch.setattr(chash, "MAX_POINTS", 100)
    writer = make_client()
    register_node(writer, ROOT, "a", weight=2)
    routers[0].wait_for(lambda ring: "a" in ring, 5)
    register_node(writer, ROOT, "b", weight=1)
    routers[0].wait_for(lambda ring: "b" in routers[0].ignored, 5)
    assert routers[0].ring.nodes == ["a"] and "full" in routers[0].ignored["b"]
    register_node(writer, ROOT, "c", weight=0.1)  # small enough to fit; b is not warned about again
    for router in routers:  # each router, not only the first: a loaded run read the second one's news too early
        router.wait_for(lambda ring: "c" in ring, 5)
    assert [n for n, _ in heard].count("b") == 2  # once per router
