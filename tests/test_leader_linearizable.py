"""A leader's reads go through the ZooKeeper leader: a follower cut off from its quorum cannot keep it leading."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from kazoo.client import KazooClient

from challenge_leader_election import LeaderElection
from zklab.check_lab import most_at_once, started_leading, stopped_leading
from zklab.faults import wait_until
from zklab.launcher import ZooKeeperCluster

PATH = "/election"
MakeClient = Callable[..., KazooClient]
# Shorter than the time an isolated follower keeps serving reads (syncLimit x tickTime = 2.5 s on the
# lab's servers), so ZooKeeper expires the leader's session while that follower still answers it.
SESSION_TIMEOUT = 1.5
# The lab's servers: syncLimit 10 ticks of 250 ms. A follower that hears nothing from the ZooKeeper
# leader for this long gives up, drops its clients and stops serving.
FOLLOWER_GIVES_UP = 10 * 0.25
SAMPLE_EVERY = 0.002


def test_leader_on_an_isolated_follower_stops_before_a_new_one_leads(
        partitionable_ensemble: ZooKeeperCluster, make_client: MakeClient) -> None:
    """The leader's only server is cut off from its peers: its reads keep no lease alive, so it stops
    before ZooKeeper expires its session and the next candidate leads (never two at once); healed, it rejoins."""
    cluster = partitionable_ensemble
    follower = next(s for s in cluster.servers if s.mode() == "follower")
    others = [s for s in cluster.servers if s is not follower]
    old = LeaderElection(make_client(hosts=follower.address, timeout=SESSION_TIMEOUT), PATH, "c0")
    old.start()
    wait_until(lambda: old.is_leader, 10, "c0 to lead")
    rest = [LeaderElection(make_client(hosts=s.address, timeout=SESSION_TIMEOUT), PATH, f"c{i + 1}")
            for i, s in enumerate(others)]
    for election in rest:
        election.start()
        wait_until(lambda e=election: e.name in e.participants(), 10, f"{election.name} to join")
    elections = [old, *rest]

    overlaps: list[tuple[float, list[str]]] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(SAMPLE_EVERY):
            acting = [e.name for e in elections if e.is_leader]
            if len(acting) > 1:
                overlaps.append((time.monotonic(), acting))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        isolated_at = time.monotonic()
        cluster.isolate(follower.sid, how="blackhole")
        # The next candidate leads once ZooKeeper expires c0's session: one session timeout after the
        # follower last passed on c0's heartbeats, rounded up to a tick.
        new = wait_until(lambda: next((e for e in rest if e.is_leader), None), SESSION_TIMEOUT * 2 + 2,
                         "the next candidate to lead")
        # Sample on while the follower could still answer c0 from its stale copy: until it gives up,
        # stops serving and has dropped c0 (who cannot lead again without a connection).
        wait_until(lambda: follower.mode() is None and not old.client.connected,
                   FOLLOWER_GIVES_UP + SESSION_TIMEOUT, "the isolated follower to stop serving c0", interval=0.05)
    finally:
        stop.set()
        sampler.join(5)
    timeline = (f"isolated at 0; c0 stopped at {stopped_leading(old) - isolated_at:+.3f}s, "
                f"{new.name} led at {started_leading(new) - isolated_at:+.3f}s; {old.history[-2:]}")
    assert not overlaps, f"two leaders at once for {overlaps[-1][0] - overlaps[0][0]:.3f}s: {timeline}"
    assert most_at_once([e.history for e in elections]) == 1, timeline
    assert stopped_leading(old) < started_leading(new), timeline
    cluster.heal_peers()
    wait_until(lambda: follower.mode() == "follower", 10, "the healed server to follow again")
    wait_until(lambda: new.participants()[-1:] == [old.name], 10, "c0 to rejoin at the back")
