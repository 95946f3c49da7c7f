"""Faults and waits for the tests and benchmarks: real ones, against a real ZooKeeper."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

from kazoo.client import KazooClient, KazooState
from kazoo.protocol.states import Callback

from zklab.launcher import ZooKeeperCluster
from zklab.proxy import PartitionProxy

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float = 10.0, what: str = "condition",
               interval: float = 0.005, failure: Callable[[], Exception] | None = None) -> T:
    """Poll `predicate` until it returns something truthy; at the deadline raise `failure()`, or an
    AssertionError naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise failure() if failure else AssertionError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(interval)


def settle(client: KazooClient, timeout: float = 10.0) -> None:
    """Wait until every watch event ZooKeeper has sent this client so far has been handled.

    ZooKeeper delivers a client's watch events before the reply to any later request, and kazoo runs
    watch callbacks in order on one thread: a round trip, then a marker callback, drains them.
    """
    client.sync("/")
    done = threading.Event()
    client.handler.dispatch_callback(Callback("watch", done.set, ()))
    if not done.wait(timeout):
        raise AssertionError("kazoo's callback thread is stuck")


class StateLog:
    """Every connection state a client passes through, with the time it arrived."""

    def __init__(self, client: KazooClient):
        self.events: list[tuple[float, str]] = []
        self._changed = threading.Condition()
        client.add_listener(self._listener)

    def _listener(self, state: str) -> None:
        with self._changed:
            self.events.append((time.monotonic(), state))
            self._changed.notify_all()

    @property
    def states(self) -> list[str]:
        return [state for _, state in self.events]

    def wait_for(self, state: str, timeout: float = 10.0) -> float:
        """Wait until `state` has been seen; return when it arrived."""
        with self._changed:
            ok = self._changed.wait_for(lambda: state in self.states, timeout)
        if not ok:
            raise AssertionError(f"client never reached {state} in {timeout:.1f}s (saw {self.states})")
        return next(t for t, s in self.events if s == state)


def expire_session(client: KazooClient, proxy: PartitionProxy, timeout: float = 10.0) -> None:
    """Make ZooKeeper expire `client`'s session now, for real, then let the client find out.

    The client must talk to ZooKeeper through `proxy`. We cut the link so it cannot win its session
    back, and a twin connection presenting the same session id and password closes the session: the
    server deletes its ephemeral nodes and fires their watches, exactly as after a timeout. On heal
    the client reconnects, hears SESSION_EXPIRED and moves to LOST.
    """
    session_id, password = client.client_id
    log = StateLog(client)
    proxy.cut()
    twin = KazooClient(hosts=f"{proxy.target[0]}:{proxy.target[1]}", client_id=(session_id, password))
    twin.start(timeout=timeout)
    twin.stop()
    twin.close()
    proxy.heal()
    log.wait_for(KazooState.LOST, timeout)


def restart_behind(proxy: PartitionProxy, cluster: ZooKeeperCluster, sid: int) -> None:
    """Restart server `sid` while `proxy` refuses its clients, and let them back once it serves.

    Why not let clients straight at a starting server: ZooKeeper opens its client port before it has
    loaded its sessions, and a connection accepted in that window can go unanswered. Kazoo waits
    session_timeout / len(hosts) for the handshake's reply, so such a client loses a session that the
    restart itself would have kept. A health-checked load balancer holds clients off the same way.
    """
    proxy.cut()
    cluster.restart_server(sid)
    proxy.heal()
