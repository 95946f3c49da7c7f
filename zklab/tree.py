"""The znodes, live: `./run.sh tree [PATH]` draws a subtree (default /lab) and redraws it on every change.

Each line is one znode: its kind (persistent or ephemeral, and sequential when its name ends in
ZooKeeper's 10-digit counter), the session that owns it if it is ephemeral, its sequence number, its
age and the start of its data. Marks say what changed since the previous drawing: `+` new, `-` gone,
`*` data changed.

How it stays live without polling: every read leaves a watch (a data watch on each znode, a children
watch on each parent). ZooKeeper fires a watch once, on the next change; the callback only sets an
event, and the main thread reads the tree again, which sets the watches again. Reads have deadlines,
and a lost connection shows as "disconnected" until kazoo reconnects.

The tree read is capped at MAX_NODES, breadth first: the levels nearest PATH are shown whole, and the
header counts what was left out at each deeper level. Names are hostile input: a control, right-to-left
or double-width character is shown escaped (\u202e), so the columns hold.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import select
import shutil
import sys
import threading
import time
import unicodedata
import warnings
from dataclasses import dataclass
from datetime import datetime

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import KazooException, NoAuthError, NoNodeError
from kazoo.handlers.threading import KazooTimeoutError

from zklab import interrupts, zk
from zklab.plumbing import ZK_FORM, chroot_hint, new_client, parse_zk, start_client, stop_client, zk_arg
from zklab.run import UsageError, existing_zookeeper, searched

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


def read_tree(client: KazooClient, root: str, watch: object) -> tuple[dict[str, Node], dict[int, int]]:
    """The znodes under `root`, breadth first up to MAX_NODES, each read leaving a watch.

    Returns (nodes, cut): cut maps a depth below `root` to how many znodes there were not shown
    (at the last level read, a lower bound: the children of unread znodes are unknown)."""
    nodes: dict[str, Node] = {}
    cut: dict[int, int] = {}
    # An exists watch on the root: if it does not exist yet, its creation wakes us.
    if client.exists_async(root, watch=watch).get(timeout=REQUEST_TIMEOUT) is None:
        return nodes, cut
    level, depth = [root], 0
    while level:
        room = MAX_NODES - len(nodes)
        if len(level) > room:
            cut[depth], level = len(level) - room, level[:room]
        below = _read_level(client, level, watch, nodes)
        if cut:
            if below:
                cut[depth + 1] = len(below)
            break
        level, depth = below, depth + 1
    return nodes, cut


def _read_level(client: KazooClient, level: list[str], watch: object, nodes: dict[str, Node]) -> list[str]:
    """Read one level into `nodes` in one round trip (all requests out, then all answers); its children."""
    asked = [(path, client.get_async(path, watch=watch), client.get_children_async(path, watch=watch))
             for path in level]
    below: list[str] = []
    for path, data_reply, children_reply in asked:
        try:
            data, stat = data_reply.get(timeout=REQUEST_TIMEOUT)
            children = children_reply.get(timeout=REQUEST_TIMEOUT)
        except NoNodeError:
            continue  # deleted while we read: its parent's watch has fired, a new read follows
        nodes[path] = Node(path, stat.ephemeralOwner, stat.ctime, stat.mzxid, data[:DATA_WIDTH * 4])
        below += [_child(path, name) for name in sorted(children, key=_name_order)]
    return below


def changes(before: dict[str, Node] | None, after: dict[str, Node]) -> dict[str, str]:
    """`+` new, `-` gone, `*` data changed: what happened between two readings."""
    if before is None:
        return {}
    marks = {path: "+" for path in after if path not in before}
    marks.update({path: "-" for path in before if path not in after})
    marks.update({path: "*" for path, node in after.items() if path in before and before[path].mzxid != node.mzxid})
    return marks


# ---------------------------------------------------------------- drawing

def _name_order(name: str) -> tuple:
    # Sequential siblings in ZooKeeper's order (their counter), which is the order of a queue.
    match = SEQUENCE.search(name)
    return (1, int(match.group(1)), name) if match else (0, 0, name)


def _sibling_order(node: Node) -> tuple:
    return _name_order(node.name)


def visible(text: str) -> str:
    """`text` with every character that would break a column escaped: controls and formats (a
    right-to-left override turns the rest of the line round), combining marks and double-width ones."""
    return "".join(ch if ch == " " or (ch.isprintable() and unicodedata.category(ch)[0] not in "MZ"
                                       and unicodedata.east_asian_width(ch) not in "WF")
                   else ch.encode("unicode_escape").decode() for ch in text)


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
        name = _short(branch + visible(node.path if node.path == root else node.name), width)
        # ZooKeeper's own znodes (/zookeeper) have no creation time: ctime 0 would read as 56 years.
        age = _age(now - node.created_ms / 1000) if node.created_ms > 0 else "-"
        lines.append(f"{marks.get(node.path, ' '):2}{name:<{width}} {node.kind:<21} {sequence:>6}  "
                     f"{owner:<18} {age:>6}  {_data(node.data)}".rstrip())
        kids = sorted(children.get(node.path, []), key=_sibling_order)
        for i, kid in reversed(list(enumerate(kids))):
            last = i == len(kids) - 1
            stack.append((kid, indent + ("└── " if last else "├── "), indent + ("    " if last else "│   ")))
    return lines


def header(root: str, hosts: str, count: int, cut: dict[int, int], connected: bool, exists: bool,
           watching: bool = True) -> str:
    clock = datetime.now().strftime("%H:%M:%S")
    if not connected:
        return f"{clock}  {root} on {hosts}: DISCONNECTED from ZooKeeper; showing the last tree, redraws on reconnect"
    if not exists:
        waiting = "; waiting for it" if watching else ""
        return f"{clock}  {root} on {hosts} does not exist yet (a demo creates /lab: ./run.sh leader){waiting}"
    left_out = ", ".join(f"{n}{'+' if depth == max(cut) else ''} at depth {depth}" for depth, n in sorted(cut.items()))
    more = f" (cut at {MAX_NODES}, breadth first; not shown: {left_out})" if cut else ""
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
        self.cut: dict[int, int] = {}
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
        except NoAuthError:
            raise  # a refusal, not a hiccup: reading again would be refused again
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
    parts = text.split("/")[1:]
    if not text.startswith("/") or (text != "/" and any(p in ("", ".", "..") for p in parts)) \
            or not text.isprintable():
        raise argparse.ArgumentTypeError(f"must be an absolute znode path like /lab (no empty, '.' or '..' "
                                         f"part, no trailing '/'), not {text!r}")
    return text


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="./run.sh tree", description="The znodes under PATH, redrawn on every "
                                     "change: kind, owner session, sequence number, age, data.", allow_abbrev=False)
    parser.add_argument("path", nargs="?", default="/lab", type=_znode_path, help="subtree to show (default /lab)")
    parser.add_argument("--zk", type=zk_arg, default=None, help=f"{ZK_FORM} (default: ZK_HOSTS, the lab's "
                        "shared server, or 127.0.0.1:2181)")
    parser.add_argument("--once", action="store_true", help="print the tree once and exit")
    return parser


def _connect(hosts: str) -> KazooClient:
    """A connected client, or ConnectionError within CONNECT_TIMEOUT (start() alone could take 15 s)."""
    client = new_client(hosts)
    if not start_client(client, CONNECT_TIMEOUT):
        stop_client(client, 0)
        raise ConnectionError(f"cannot reach ZooKeeper at {hosts} within {CONNECT_TIMEOUT:.0f}s; start one with "
                              "`./run.sh zk start`, or give --zk")
    chroot = parse_zk(hosts)[1]
    # Chrooted, "/" is the chroot itself. The demos refuse a missing chroot, so we do not wait for it.
    if chroot and client.exists_async("/").get(timeout=REQUEST_TIMEOUT) is None:
        stop_client(client, CLOSE_TIMEOUT)
        raise ConnectionError(f"the chroot {chroot} does not exist on {hosts}, and the demos refuse a missing "
                              f"chroot; create it with: {chroot_hint(hosts)}")
    return client


def _quiet_kazoo() -> None:
    # The view says "disconnected" itself; kazoo's own warnings would scribble over the drawing.
    logging.getLogger("kazoo").addHandler(logging.NullHandler())
    logging.getLogger("kazoo").propagate = False
    warnings.filterwarnings("ignore", category=UserWarning, module="kazoo")


def _hosts(given: str | None) -> str:
    """--zk, else where the runner would look (ZK_HOSTS, the shared servers, the default port)."""
    hosts = given or existing_zookeeper()
    if hosts is None:
        raise ConnectionError(f"no ZooKeeper found ({searched()}); start one with `./run.sh zk start`, "
                              "or give --zk")
    return hosts


def _show(view: TreeView, once: bool) -> None:
    try:
        view.refresh()
        view.draw()
        if not once:
            view.run()
    except BrokenPipeError:  # `./run.sh tree | head`: the reader left, and that is fine
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _quiet_kazoo()
    interrupts.install(sigterm=KeyboardInterrupt)  # SIGTERM as Ctrl-C: the session closes on the way out
    client = None
    try:
        hosts = _hosts(args.zk)
        client = _connect(hosts)
        view = TreeView(client, args.path, hosts, terminal=sys.stdout.isatty() and not args.once,
                        watching=not args.once)
        _show(view, args.once)
    except KeyboardInterrupt:
        pass
    except UsageError as exc:
        print(f"tree: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError as exc:  # a ConnectionError too, but the reader left (`| head`), not ZooKeeper
        return zk.output_lost(exc, "tree") or 0
    except (ConnectionError, zk.ZkError, NoAuthError, KazooTimeoutError) as exc:
        print(f"tree: {_why(exc, args.path)}", file=sys.stderr)
        return 1
    except OSError as exc:
        if (code := zk.output_lost(exc, "tree")) is None:
            raise
        return code
    finally:
        if client is not None:
            stop_client(client, CLOSE_TIMEOUT)
    return 0


def _why(exc: Exception, path: str) -> str:
    if isinstance(exc, NoAuthError):
        return f"ZooKeeper refused to let us read {path} or below (its ACL does not grant READ to anyone we are)"
    return str(exc) or f"ZooKeeper did not answer within {REQUEST_TIMEOUT:.0f}s ({type(exc).__name__})"


if __name__ == "__main__":
    sys.exit(main())
