"""`./run.sh tree`: the znodes drawn from watches, with marks for what changed, against a real ZooKeeper."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kazoo.client import KazooClient

import zklab.tree as tree_module
from zklab.faults import wait_until
from zklab.launcher import ZooKeeperCluster, free_ports
from zklab.run import RECONNECT_RETRY

ROOT = Path(__file__).resolve().parent.parent


class Tree:
    """`python -m zklab.tree` as a child with stdout a pipe; its lines are collected as they come."""

    def __init__(self, *args: str, module: str = "zklab.tree"):
        self.proc = subprocess.Popen([sys.executable, "-m", module, *args], cwd=ROOT, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env={**os.environ, "ZK_HOSTS": ""})
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, predicate: Callable[[str], bool], what: str, timeout: float = 10) -> str:
        return wait_until(lambda: next((line for line in list(self.lines) if predicate(line)), None),
                          timeout=timeout, what=what)

    def stop(self, signum: int = signal.SIGINT) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        code = self.proc.wait(timeout=10)
        self._reader.join(5)
        return code, self.proc.stderr.read()


@pytest.fixture
def tree(zk_hosts: str) -> Iterator[Callable[..., Tree]]:
    """Start tree views on this test's namespace; each is stopped after the test."""
    started: list[Tree] = []

    def start(*args: str, module: str = "zklab.tree") -> Tree:
        view = Tree(*(["tree"] if module == "zklab.run" else []), "--zk", zk_hosts, *args, module=module)
        started.append(view)
        return view

    yield start
    for view in started:
        if view.proc.poll() is None:
            view.proc.kill()
            view.proc.wait()


def test_once_on_a_missing_path_says_so_and_promises_no_wait(tree: Callable[..., Tree]) -> None:
    """--once on a path that does not exist says so and exits; it does not claim to wait for it."""
    view = tree("--once", "/nowhere")
    assert view.proc.wait(timeout=15) == 0, view.proc.stderr.read()
    view._reader.join(5)
    assert any("/nowhere" in line and "does not exist" in line for line in view.lines)
    assert not any("waiting" in line for line in view.lines)


def test_once_shows_kind_owner_sequence_and_data(tree: Callable[..., Tree],
                                                 make_client: Callable[..., KazooClient]) -> None:
    """--once prints each znode's kind, its owner session if ephemeral, its sequence number and its data."""
    client = make_client()
    client.create("/lab/queue/job-", b"hello", sequence=True, ephemeral=True, makepath=True)
    client.create("/lab/config", b"\x00\x01binary")
    view = tree("--once")
    assert view.proc.wait(timeout=15) == 0, view.proc.stderr.read()
    view._reader.join(5)
    row = next(line for line in view.lines if "job-0000000000" in line)
    assert "ephemeral sequential" in row and f"0x{client.client_id[0]:x}" in row and "hello" in row
    assert row.split()[row.split().index("sequential") + 1] == "0"
    config = next(line for line in view.lines if "config" in line)
    assert "persistent" in config and "·" in config  # bytes that do not print are shown as dots
    assert view.stop()[1] == ""


def test_watches_redraw_with_marks_and_ctrl_c_exits_cleanly(tree: Callable[..., Tree],
                                                             make_client: Callable[..., KazooClient]) -> None:
    """Creating, changing and deleting znodes each redraw the tree with +, * and -; Ctrl-C exits 0, no traceback."""
    client = make_client()
    client.ensure_path("/lab")
    view = tree()
    view.wait_for(lambda line: line.rstrip().endswith("/lab") or " /lab " in line, "the first drawing")
    client.create("/lab/members/m1", b'{"weight": 1}', ephemeral=True, makepath=True)
    view.wait_for(lambda line: line.startswith("+") and "m1" in line, "m1 marked new")
    client.set("/lab/members/m1", b'{"weight": 2}')
    view.wait_for(lambda line: line.startswith("*") and "m1" in line and '"weight": 2' in line, "m1 marked changed")
    client.delete("/lab/members/m1")
    view.wait_for(lambda line: line.startswith("-") and "m1" in line, "m1 marked gone")
    code, err = view.stop()
    assert code == 0 and "Traceback" not in err, err


@pytest.mark.parametrize("module", ["zklab.tree", "zklab.run"])
def test_sigterm_ends_the_view_as_ctrl_c_does(tree: Callable[..., Tree], make_client: Callable[..., KazooClient],
                                              module: str) -> None:
    """SIGTERM (`kill`, a supervisor) to a watching view, alone or through the runner: exit 0, no traceback,
    and its session closed on the way out (ZooKeeper holds no session for it afterwards)."""
    client = make_client()
    client.ensure_path("/lab")
    view = tree(module=module)
    view.wait_for(lambda line: " /lab" in line or line.rstrip().endswith("/lab"), "the first drawing")
    before = sessions(client)
    code, err = view.stop(signal.SIGTERM)
    assert code == 0 and err == "", err
    wait_until(lambda: sessions(client) == before - 1, timeout=5, what="the view's session closed")


def sessions(client: KazooClient) -> int:
    """How many sessions the server `client` talks to holds (its `cons` four-letter word, one line each)."""
    return sum(1 for line in client.command(b"cons").splitlines() if "sid=" in line)


def test_a_reader_that_leaves_ends_the_view_though_nothing_changes(zk_hosts: str,
                                                                   make_client: Callable[..., KazooClient]) -> None:
    """`./run.sh tree | head`: once head has its lines and leaves, the idle view exits 0 within a few seconds."""
    make_client().ensure_path("/lab")
    proc = subprocess.Popen([sys.executable, "-m", "zklab.tree", "--zk", zk_hosts], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert "/lab" in proc.stdout.readline()  # the first drawing's header
        proc.stdout.close()  # head has its lines; nothing under /lab changes from now on
        assert proc.wait(timeout=5) == 0
        assert "Traceback" not in proc.stderr.read()
    finally:
        proc.kill()
        proc.wait()


def test_says_disconnected_and_redraws_on_reconnect(own_server: ZooKeeperCluster) -> None:
    """When ZooKeeper goes away the view says so, and it draws the tree again once the server is back."""
    admin = KazooClient(hosts=own_server.hosts, connection_retry=RECONNECT_RETRY)
    admin.start(timeout=10)
    admin.ensure_path("/lab/kept")
    admin.stop()
    admin.close()
    view = Tree("--zk", own_server.hosts)
    try:
        view.wait_for(lambda line: "kept" in line, "the first drawing")
        own_server.stop_server(1)
        view.wait_for(lambda line: "DISCONNECTED" in line, "the view to say it is disconnected")
        drawn = len(view.lines)
        own_server.start_server(1)
        wait_until(lambda: any("kept" in line for line in view.lines[drawn:]), timeout=15,
                   what="a new drawing after the reconnect")
    finally:
        code, err = view.stop()
    assert code == 0 and "Traceback" not in err, err


def test_bad_arguments_and_no_zookeeper_are_one_line() -> None:
    """A path that is not absolute exits 2; an unreachable ZooKeeper exits 1 within the connect timeout."""
    bad = subprocess.run([sys.executable, "-m", "zklab.tree", "lab"], cwd=ROOT, capture_output=True, text=True,
                         timeout=30)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr  # no usage block above
    began = time.monotonic()
    gone = subprocess.run([sys.executable, "-m", "zklab.tree", "--zk", f"127.0.0.1:{free_ports(1)[0]}"], cwd=ROOT,
                          capture_output=True, text=True, timeout=30)
    assert gone.returncode == 1 and time.monotonic() - began < 8
    assert len(gone.stderr.strip().splitlines()) == 1 and "./run.sh zk start" in gone.stderr


def test_a_big_tree_is_cut_breadth_first_with_counts(monkeypatch: pytest.MonkeyPatch,
                                                       make_client: Callable[..., KazooClient]) -> None:
    """Past the cap, the levels nearest the root are shown whole or up to the cap, and the header counts
    what was left out at each level (it showed the root alone: '1 znodes (cut at 2000)')."""
    client = make_client()
    client.ensure_path("/big")
    replies = [client.create_async(f"/big/c{i:03}") for i in range(120)]
    replies += [client.create_async(f"/big/c{i:03}/g") for i in range(10)]
    for reply in replies:
        reply.get(timeout=10)
    monkeypatch.setattr(tree_module, "MAX_NODES", 50)
    nodes, cut = tree_module.read_tree(client, "/big", None)
    assert len(nodes) == 50 and cut == {1: 71, 2: 10}, cut
    assert "/big/c048" in nodes and "/big/c049" not in nodes  # the first 49 children, in their order
    line = tree_module.header("/big", "zk", len(nodes), cut, connected=True, exists=True)
    assert "not shown: 71 at depth 1, 10+ at depth 2" in line, line


def test_hostile_names_are_escaped_and_columns_hold(tree: Callable[..., Tree],
                                                    make_client: Callable[..., KazooClient]) -> None:
    """A right-to-left override, a zero-width character, a combining mark or wide characters in a name are
    shown escaped, so the kind column starts at the same place on every line."""
    client = make_client()
    for name in ("plain", "\u202eevil", "zero\u200bwidth", "\u4e2d\u6587", "e\u0301"):
        client.create(f"/lab/{name}", makepath=True)
    view = tree("--once")
    assert view.proc.wait(timeout=15) == 0, view.proc.stderr.read()
    view._reader.join(5)
    rows = [line for line in view.lines if "persistent" in line]
    assert len(rows) == 6, view.lines
    assert len({row.index("persistent") for row in rows}) == 1, "\n".join(rows)
    assert any("\\u202eevil" in row for row in rows) and any("\\u4e2d\\u6587" in row for row in rows)
    assert not any(ch in "".join(rows) for ch in ("\u202e", "\u200b", "\u4e2d", "\u0301"))


def test_zookeepers_own_znodes_have_no_age(zk_server: ZooKeeperCluster) -> None:
    """/zookeeper was never created by anyone (ctime 0): its age is '-', not 498922h."""
    out = subprocess.run([sys.executable, "-m", "zklab.tree", "--once", "--zk", zk_server.hosts, "/zookeeper"],
                         cwd=ROOT, capture_output=True, text=True, timeout=30)
    row = next(line for line in out.stdout.splitlines() if line.split()[:1] == ["/zookeeper"])
    assert row.split()[2] == "-" and not re.search(r"\d+h\d\dm", row), row
