"""The znodes, live: `./run.sh tree [PATH]` draws a subtree (default /lab) and redraws it on every change.

Each line is one znode: its kind (persistent or ephemeral, and sequential when its name ends in
ZooKeeper's 10-digit counter), the session that owns it if it is ephemeral, its sequence number, its
age and the start of its data. Marks say what changed since the previous drawing: `+` new, `-` gone,
`*` data changed.

How it stays live without polling: every read leaves a watch (a data watch on each znode, a children
watch on each parent). ZooKeeper fires a watch once, on the next change; the callback only sets an
event, and the main thread reads the tree again, which sets the watches again. Reads have deadlines,
the tree read is capped, and a lost connection shows as "disconnected" until kazoo reconnects.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import select
import shutil
import signal
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from datetime import datetime

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import KazooException, NoNodeError
from kazoo.handlers.threading import KazooTimeoutError

from zklab.run import RECONNECT_RETRY, existing_zookeeper

CONNECT_TIMEOUT = 5.0    # an unreachable ZooKeeper is reported within this
REQUEST_TIMEOUT = 5.0    # every read has a deadline; a read that misses it waits for the next change
CLOSE_TIMEOUT = 3.0      # closing the session at exit: never wait longer than this
MAX_NODES = 2000         # a bigger tree is cut here: the view is for the lab's few dozen znodes
REDRAW_GAP = 0.2         # changes that arrive closer together than this are drawn together
AGE_REFRESH = 1.0        # on a terminal, ages are redrawn once a second (nothing is read for it); in a
                         # pipe, that often we look whether its reader left (`| head` has its lines)
NAME_WIDTH = 50          # tree branches plus the znode's name
MIN_NAME_WIDTH = 24      # narrower than this, a name says nothing
OTHER_COLUMNS = 66       # mark, kind, seq, owner and age, with their spaces: names get what is left
DATA_WIDTH = 30          # characters of data shown
SEQUENCE = re.compile(r"(\d{10})$")  # ZooKeeper appends a 10-digit counter to a sequential znode's name
MARK_COLOURS = {"+": "\x1b[32m", "-": "\x1b[31m", "*": "\x1b[33m"}


# ---------------------------------------------------------------- one znode, and reading the tree

@dataclass(frozen=True)
class Node:
    path: str
    owner: int        # the session of an ephemeral znode; 0 for a persistent one
    created_ms: int   # ZooKeeper's clock when it was created
    mzxid: int        # the transaction that last wrote its data: changes whenever the data does
    data: bytes

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[1] or "/"

    @property
    def sequence(self) -> int | None:
        match = SEQUENCE.search(self.name)
        return int(match.group(1)) if match else None

    @property
    def kind(self) -> str:
        kind = "ephemeral" if self.owner else "persistent"
        return kind if self.sequence is None else f"{kind} sequential"


def _child(parent: str, name: str) -> str:
    return f"{parent.rstrip('/')}/{name}"


def read_tree(client: KazooClient, root: str, watch: object) -> tuple[dict[str, Node], bool]:
    """Every znode under `root` (at most MAX_NODES), each read leaving a watch. (nodes, was it cut?)"""
    nodes: dict[str, Node] = {}
    # An exists watch on the root: if it does not exist yet, its creation wakes us.
    if client.exists_async(root, watch=watch).get(timeout=REQUEST_TIMEOUT) is None:
        return nodes, False
    level = [root]
    while level:
        # One round trip per level: all requests go out, then all answers are collected.
        asked = [(path, client.get_async(path, watch=watch), client.get_children_async(path, watch=watch))
                 for path in level]
        level = []
        for path, data_reply, children_reply in asked:
            try:
                data, stat = data_reply.get(timeout=REQUEST_TIMEOUT)
                children = children_reply.get(timeout=REQUEST_TIMEOUT)
            except NoNodeError:
                continue  # deleted while we read: its parent's watch has fired, a new read follows
            nodes[path] = Node(path, stat.ephemeralOwner, stat.ctime, stat.mzxid, data[:DATA_WIDTH * 4])
            level += [_child(path, name) for name in children]
        room = MAX_NODES - len(nodes)
        if len(level) > room:
            return nodes, True
    return nodes, False


def changes(before: dict[str, Node] | None, after: dict[str, Node]) -> dict[str, str]:
    """`+` new, `-` gone, `*` data changed: what happened between two readings."""
    if before is None:
        return {}
    marks = {path: "+" for path in after if path not in before}
    marks.update({path: "-" for path in before if path not in after})
    marks.update({path: "*" for path, node in after.items() if path in before and before[path].mzxid != node.mzxid})
    return marks


# ---------------------------------------------------------------- drawing

def _sibling_order(node: Node) -> tuple:
    # Sequential siblings in ZooKeeper's order (their counter), which is the order of a queue.
    return (1, node.sequence, node.name) if node.sequence is not None else (0, 0, node.name)


def _short(text: str, width: int) -> str:
    if len(text) <= width:
        return text
    keep = width - 1
    return text[:keep // 2] + "…" + text[-(keep - keep // 2):]  # keeps the sequence suffix in view


def _data(raw: bytes) -> str:
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        return f"<{len(raw)} bytes, not text>"
    text = "".join(ch if ch.isprintable() else "·" for ch in text)
    return text if len(text) <= DATA_WIDTH else text[:DATA_WIDTH - 1] + "…"


def _age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds // 60:.0f}m{seconds % 60:02.0f}s"
    return f"{seconds // 3600:.0f}h{seconds % 3600 // 60:02.0f}m"


def render(nodes: dict[str, Node], marks: dict[str, str], root: str, now: float,
           width: int = NAME_WIDTH) -> list[str]:
    """The tree as text lines, gone znodes included (with their `-`) so a reader sees where they were."""
    children: dict[str, list[Node]] = {}
    for node in nodes.values():
        if node.path != root:
            children.setdefault(node.path.rsplit("/", 1)[0] or "/", []).append(node)
    lines = [f"{'':2}{'znode':<{width}} {'kind':<21} {'seq':>6}  {'owner session':<18} {'age':>6}  data"]
    stack: list[tuple[Node, str, str]] = [(nodes[root], "", "")] if root in nodes else []
    while stack:
        node, branch, indent = stack.pop()
        owner = f"0x{node.owner:x}" if node.owner else "-"
        sequence = "-" if node.sequence is None else str(node.sequence)
        name = _short(branch + (node.path if node.path == root else node.name), width)
        lines.append(f"{marks.get(node.path, ' '):2}{name:<{width}} {node.kind:<21} {sequence:>6}  "
                     f"{owner:<18} {_age(now - node.created_ms / 1000):>6}  {_data(node.data)}".rstrip())
        kids = sorted(children.get(node.path, []), key=_sibling_order)
        for i, kid in reversed(list(enumerate(kids))):
            last = i == len(kids) - 1
            stack.append((kid, indent + ("└── " if last else "├── "), indent + ("    " if last else "│   ")))
    return lines


def header(root: str, hosts: str, count: int, cut: bool, connected: bool, exists: bool,
           watching: bool = True) -> str:
    clock = datetime.now().strftime("%H:%M:%S")
    if not connected:
        return f"{clock}  {root} on {hosts}: DISCONNECTED from ZooKeeper; showing the last tree, redraws on reconnect"
    if not exists:
        waiting = "; waiting for it" if watching else ""
        return f"{clock}  {root} on {hosts} does not exist yet (start a demo: ./run.sh leader){waiting}"
    more = f" (cut at {MAX_NODES})" if cut else ""
    return f"{clock}  {root} on {hosts}: {count} znodes{more}   (+ new  - gone  * data changed)"


# ---------------------------------------------------------------- the live view

class TreeView:
    """Reads the tree whenever a watch or the connection wakes it, and draws it to stdout."""

    def __init__(self, client: KazooClient, root: str, hosts: str, terminal: bool, watching: bool = True):
        self.client, self.root, self.hosts, self.terminal = client, root, hosts, terminal
        self.watching = watching  # False for --once: one drawing, no promise to wait
        self.wake = threading.Event()
        self.connected = True
        self.nodes: dict[str, Node] | None = None
        self.shown: dict[str, Node] = {}
        self.marks: dict[str, str] = {}
        self.cut = False
        client.add_listener(self._on_connection)

    # Callbacks run on kazoo's thread: they only note what happened and wake the main thread.
    def _on_watch(self, event: object) -> None:
        self.wake.set()

    def _on_connection(self, state: str) -> None:
        self.connected = state == KazooState.CONNECTED
        self.wake.set()

    def refresh(self) -> None:
        """Read the tree again (setting the watches again) and work out the marks."""
        self.wake.clear()  # a change during the read wakes us again: nothing is missed
        try:
            nodes, self.cut = read_tree(self.client, self.root, self._on_watch)
        except (KazooException, KazooTimeoutError):
            self.connected = self.client.state == KazooState.CONNECTED
            if self.connected:
                self.wake.set()  # a read that missed its deadline: try again after REDRAW_GAP
            return
        self.marks = changes(self.nodes, nodes)
        self.shown = {**nodes, **{p: self.nodes[p] for p, m in self.marks.items() if m == "-"}}
        self.nodes = nodes

    def draw(self) -> None:
        exists = self.root in self.shown
        lines = [header(self.root, self.hosts, len(self.nodes or {}), self.cut, self.connected, exists,
                        self.watching)]
        size = shutil.get_terminal_size()
        # On a narrow terminal the names give way first, so that kind, owner and age stay in view.
        width = max(MIN_NAME_WIDTH, min(NAME_WIDTH, size.columns - OTHER_COLUMNS)) if self.terminal else NAME_WIDTH
        if exists:
            lines += render(self.shown, self.marks, self.root, time.time(), width)
        if self.terminal:
            shown = [line[:size.columns] for line in lines[:max(size.lines - 1, 2)]]
            if len(lines) > len(shown):
                shown[-1] = f"... {len(lines) - len(shown) + 1} more lines (make the window taller)"
            text = "\n".join(self._colour(line) for line in shown)
            sys.stdout.write("\x1b[H\x1b[2J" + text + "\n")  # home, clear, draw: plain ANSI, no curses
        else:
            sys.stdout.write("\n".join(lines) + "\n\n")  # append-only for a pipe or a file
        sys.stdout.flush()

    @staticmethod
    def _colour(line: str) -> str:
        colour = MARK_COLOURS.get(line[:1])
        return f"{colour}{line}\x1b[0m" if colour else line

    def run(self) -> None:
        """Redraw on every change until Ctrl-C; on a terminal also once a second, for the ages."""
        last = 0.0
        while True:
            if not self.wake.wait(AGE_REFRESH):
                if self.terminal:
                    self.draw()
                elif reader_gone(sys.stdout.fileno()):
                    raise BrokenPipeError  # else we would notice only at the next change, maybe never
                continue
            # Changes come in bursts (a candidate joins: a create, then the ledger's write): wait out
            # the rest of REDRAW_GAP so that one drawing covers the burst.
            time.sleep(max(0.0, REDRAW_GAP - (time.monotonic() - last)))
            if self.connected:
                self.refresh()
            else:
                self.wake.clear()
            last = time.monotonic()
            self.draw()


def reader_gone(fd: int) -> bool:
    """True when `fd` is a pipe whose reader has closed it: poll() reports POLLERR without our asking."""
    poller = select.poll()
    poller.register(fd, 0)  # no events asked for: only the errors and hang-ups that are always reported
    return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))


# ---------------------------------------------------------------- command line

def _znode_path(text: str) -> str:
    if not text.startswith("/") or (text != "/" and (text.endswith("/") or "//" in text)):
        raise argparse.ArgumentTypeError(f"must be an absolute znode path like /lab, not {text!r}")
    return text


def _zk_hosts(text: str) -> str:
    """host:port[,host:port...][/chroot], a host may be [IPv6]; the port defaults to 2181."""
    hosts, slash, chroot = text.partition("/")
    if slash:
        _znode_path("/" + chroot)
    for host in hosts.split(","):
        name, port = (host[1:].partition("]")[0], host.partition("]")[2][1:]) if host.startswith("[") \
            else host.partition(":")[::2]
        if not name or (port and not (port.isdigit() and 1 <= int(port) <= 65535)):
            raise argparse.ArgumentTypeError(f"want host:port[,host:port...][/chroot] with ports 1-65535, "
                                             f"not {text!r}")
    return text


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="run.sh tree", description="The znodes under PATH, redrawn on every "
                                     "change: kind, owner session, sequence number, age, data.")
    parser.add_argument("path", nargs="?", default="/lab", type=_znode_path, help="subtree to show (default /lab)")
    parser.add_argument("--zk", type=_zk_hosts, default=None, help="host:port[,...][/chroot] (default: ZK_HOSTS, "
                        "the lab's shared server, or 127.0.0.1:2181)")
    parser.add_argument("--once", action="store_true", help="print the tree once and exit")
    return parser


def _connect(hosts: str) -> KazooClient | None:
    client = KazooClient(hosts=hosts, connection_retry=RECONNECT_RETRY)
    try:
        client.start(timeout=CONNECT_TIMEOUT)
    except KazooTimeoutError:
        client.close()
        return None
    return client


def _close(client: KazooClient) -> None:
    """Close the session, but never wait on a ZooKeeper that is gone longer than CLOSE_TIMEOUT."""
    closer = threading.Thread(target=lambda: (client.stop(), client.close()), daemon=True)
    closer.start()
    closer.join(CLOSE_TIMEOUT)


def _quiet_kazoo() -> None:
    # The view says "disconnected" itself; kazoo's own warnings would scribble over the drawing.
    logging.getLogger("kazoo").addHandler(logging.NullHandler())
    logging.getLogger("kazoo").propagate = False
    warnings.filterwarnings("ignore", category=UserWarning, module="kazoo")


def _stop_on_sigterm(*_: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _quiet_kazoo()
    hosts = args.zk
    if hosts is None:
        hosts = existing_zookeeper()
    if hosts is None:
        print("error: no ZooKeeper found (ZK_HOSTS, the lab's shared server, 127.0.0.1:2181); start one with "
              "`./run.sh zk start`, or give --zk", file=sys.stderr)
        return 1
    client = _connect(hosts)
    if client is None:
        print(f"error: cannot reach ZooKeeper at {hosts} within {CONNECT_TIMEOUT:.0f}s; start one with "
              "`./run.sh zk start`", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    view = TreeView(client, args.path, hosts, terminal=sys.stdout.isatty() and not args.once,
                    watching=not args.once)
    try:
        view.refresh()
        view.draw()
        if not args.once:
            view.run()
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:  # `./run.sh tree | head`: the reader left, and that is fine
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    finally:
        _close(client)
    return 0


if __name__ == "__main__":
    sys.exit(main())
