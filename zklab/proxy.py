"""A loopback TCP proxy that can partition one client from ZooKeeper.

Put it between one KazooClient and a server and you control the network between them:

- `cut()`: every connection is reset and new ones are reset at once, as when a host is down or a
  firewall rejects. The client notices immediately (SUSPENDED).
- `blackhole()`: connections stay open but nothing gets through, either way, as when packets are
  silently dropped. The client only notices when a heartbeat goes unanswered, which is the harder
  case. TCP would retransmit what was sent, so bytes held during the blackhole flow again on `heal()`.
  `blackhole("to_client")` drops only the server's replies: a request arrives, its answer never does.
- `heal()`: new connections are relayed again.

Held past the session timeout, either fault makes ZooKeeper expire the session; the client learns
that (LOST) only when the link heals and it reconnects.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field

DIRECTIONS = ("both", "to_server", "to_client")
CHUNK = 65536


def no_delay(sock: socket.socket) -> socket.socket:
    """Turn Nagle's algorithm off on a relay's socket, as kazoo and ZooKeeper do on theirs.

    Kazoo pipelines requests (a sync, then a read) as separate small writes. A relay that forwards them
    with Nagle on holds the second until the first is acknowledged, and the far side delays that ACK
    by up to 40 ms: every pipelined request would pay it, and the relay would distort what it relays.
    """
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


@dataclass
class _Link:
    """One proxied connection: the client's socket and ours to the server."""
    client: socket.socket
    server: socket.socket
    closed: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        """Close both sides with RST (SO_LINGER 0), not a polite FIN."""
        with self.lock:
            if self.closed:
                return
            self.closed = True
        for sock in (self.client, self.server):
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()


class PartitionProxy:
    """Relay 127.0.0.1:<port> to `target` until told to cut, blackhole or heal."""

    def __init__(self, target: tuple[str, int] | str):
        if isinstance(target, str):
            host, port = target.rsplit(":", 1)
            target = (host, int(port))
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._links: list[_Link] = []
        self._lock = threading.Lock()
        self._state = "healed"
        self._held = {"to_server": threading.Event(), "to_client": threading.Event()}
        self._heal_events()
        self._closed = False
        threading.Thread(target=self._accept_loop, name=f"proxy-{self.port}", daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def state(self) -> str:
        return self._state

    # ------------------------------------------------------------ faults

    def cut(self) -> None:
        """Reset every connection now and every new one until heal()."""
        with self._lock:
            self._state = "cut"
            links, self._links = self._links, []
        for link in links:
            link.reset()
        self._heal_events()  # pumps held by a blackhole wake, see their link is closed, and quit

    def blackhole(self, direction: str = "both") -> None:
        """Keep connections open but deliver nothing in `direction` until heal()."""
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, not {direction!r}")
        self._state = f"blackhole:{direction}"
        for name, gate in self._held.items():
            if direction in ("both", name):
                gate.clear()

    def heal(self) -> None:
        self._state = "healed"
        self._heal_events()

    def close(self) -> None:
        self._closed = True
        self.cut()
        self._listener.close()

    def __enter__(self) -> PartitionProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ relaying

    def _heal_events(self) -> None:
        for gate in self._held.values():
            gate.set()

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._state == "cut":
                _Link(client, socket.socket()).reset()
                continue
            self._open_link(no_delay(client))

    def _open_link(self, client: socket.socket) -> None:
        try:
            server = no_delay(socket.create_connection(self.target, timeout=5))
            server.settimeout(None)
        except OSError:
            _Link(client, socket.socket()).reset()  # the server is down: the client sees a reset
            return
        link = _Link(client, server)
        with self._lock:
            if self._state == "cut":  # cut while we were connecting
                link.reset()
                return
            self._links.append(link)
        for src, dst, gate in ((client, server, "to_server"), (server, client, "to_client")):
            threading.Thread(target=self._pump, args=(link, src, dst, self._held[gate]), daemon=True).start()

    def _pump(self, link: _Link, src: socket.socket, dst: socket.socket, gate: threading.Event) -> None:
        """Copy bytes one way; while the gate is closed, hold them (the blackhole)."""
        try:
            while data := src.recv(CHUNK):
                gate.wait()
                if link.closed:
                    return
                dst.sendall(data)
        except OSError:
            pass
        link.reset()
