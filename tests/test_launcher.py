"""The local ZooKeeper launcher: real servers start, serve, fail over and leave nothing behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kazoo.client import KazooClient

from zklab import launcher
from zklab.faults import wait_until
from zklab.launcher import ZooKeeperCluster, four_letter_word, free_ports
from zklab.run import RECONNECT_RETRY

ROOT = Path(__file__).resolve().parent.parent


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it has no JVM behind it any more.
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split()[2] == "Z")


def test_standalone_serves_and_stops_without_leftovers() -> None:
    """A standalone server answers srvr and a kazoo client, and stop() leaves no process or folder."""
    with ZooKeeperCluster(servers=1) as cluster:
        pid = cluster.servers[0].process.pid
        assert cluster.servers[0].mode() == "standalone"
        client = KazooClient(hosts=cluster.hosts, connection_retry=RECONNECT_RETRY)
        client.start(timeout=10)
        client.create("/hello", b"world")
        assert client.get("/hello")[0] == b"world"
        client.stop()
        client.close()
        workdir = cluster.workdir
    assert not _alive(pid)
    assert not workdir.exists()


def test_ensemble_has_one_leader_and_stops_without_leftovers(ensemble: ZooKeeperCluster) -> None:
    """Three servers elect exactly one ZooKeeper leader; stopping the cluster kills all three JVMs."""
    modes = sorted(s.mode() for s in ensemble.servers)
    assert modes == ["follower", "follower", "leader"]
    pids = [s.process.pid for s in ensemble.servers]
    ensemble.stop()
    assert not any(_alive(pid) for pid in pids)


def test_ensemble_survives_leader_kill_9(ensemble: ZooKeeperCluster) -> None:
    """With its leader killed by SIGKILL, the ensemble elects a new one and keeps serving writes."""
    client = KazooClient(hosts=ensemble.hosts, timeout=4, connection_retry=RECONNECT_RETRY)
    client.start(timeout=10)
    try:
        client.create("/before", b"1")
        old = ensemble.leader()
        ensemble.kill_server(old.sid)
        new = wait_until(lambda: next((s for s in ensemble.servers if s.mode() == "leader"), None),
                         timeout=20, what="a new ZooKeeper leader")
        assert new.sid != old.sid
        client.retry(client.create, "/after", b"2")
        assert client.get("/before")[0] == b"1"
        ensemble.start_server(old.sid)
        assert ensemble.server(old.sid).mode() == "follower"
    finally:
        client.stop()
        client.close()


def test_restart_keeps_data_and_port(own_server: ZooKeeperCluster) -> None:
    """A restarted member comes back on the same port with the same data."""
    server = own_server.servers[0]
    client = KazooClient(hosts=own_server.hosts, connection_retry=RECONNECT_RETRY)
    client.start(timeout=10)
    client.create("/persistent", b"kept")
    client.stop()
    client.close()
    own_server.restart_server(server.sid)
    assert "Mode: standalone" in four_letter_word(server.client_port)
    client = KazooClient(hosts=own_server.hosts, connection_retry=RECONNECT_RETRY)
    client.start(timeout=10)
    assert client.get("/persistent")[0] == b"kept"
    client.stop()
    client.close()


def _run_launcher(env_overrides: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **env_overrides}
    return subprocess.run([sys.executable, "-m", "zklab.launcher", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=30)


def test_missing_zookeeper_is_one_line_error(tmp_path: Path) -> None:
    """ZOOKEEPER_HOME without jars: exit 1 with one line that names the install command."""
    result = _run_launcher({"ZOOKEEPER_HOME": str(tmp_path)})
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "apt-get install -y zookeeper" in lines[0] and "Traceback" not in result.stderr


def test_missing_java_is_one_line_error(tmp_path: Path) -> None:
    """JAVA_HOME pointing nowhere: exit 1 with one line that says how to get Java."""
    result = _run_launcher({"JAVA_HOME": str(tmp_path)})
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Java" in lines[0], result.stderr


def test_command_line_prints_hosts_and_ctrl_c_stops_everything() -> None:
    """`python -m zklab.launcher --servers 3` serves until SIGINT, then exits 0 with no JVM left."""
    proc = subprocess.Popen([sys.executable, "-m", "zklab.launcher", "--servers", "3"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        while not (lines and lines[-1].startswith("serving")):
            line = proc.stdout.readline()
            assert line, f"launcher ended early: {proc.stderr.read()}"
            lines.append(line.strip())
        hosts = next(line for line in lines if line.startswith("ZK_HOSTS=")).split("=", 1)[1]
        ports = [int(h.rsplit(":", 1)[1]) for h in hosts.split(",")]
        assert len(ports) == 3 and all("Mode:" in four_letter_word(p) for p in ports)
        children = _java_children(proc.pid)
        assert len(children) == 3
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
        assert not any(_alive(pid) for pid in children)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_server_killed_from_outside_is_said_and_the_last_one_ends_the_launcher() -> None:
    """kill -9 of a server the foreground launcher started is said in one line (it went on claiming to serve);
    with none left, it stops and exits 1."""
    proc = subprocess.Popen([sys.executable, "-m", "zklab.launcher", "--servers", "3"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while not proc.stdout.readline().startswith("serving"):
            assert proc.poll() is None, proc.stderr.read()
        children = _java_children(proc.pid)
        os.kill(children[0], signal.SIGKILL)
        said = proc.stdout.readline().strip()
        assert said.endswith("(killed by signal 9): 2 of 3 left, a majority still serves"), said
        for pid in children[1:]:
            os.kill(pid, signal.SIGKILL)
        assert proc.wait(timeout=20) == 1
        assert "no majority serves" in proc.stdout.read() and "no server left" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_killed_launcher_takes_its_jvms_along() -> None:
    """Even kill -9 of the launcher leaves no JVM behind (Linux parent-death signal)."""
    proc = subprocess.Popen([sys.executable, "-m", "zklab.launcher"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while not proc.stdout.readline().startswith("serving"):
            assert proc.poll() is None, proc.stderr.read()
        children = _java_children(proc.pid)
        assert len(children) == 1
        proc.kill()
        proc.wait(timeout=10)
        wait_until(lambda: not any(_alive(pid) for pid in children), timeout=10, what="the JVM to die")
    finally:
        if proc.poll() is None:
            proc.kill()


def _java_children(pid: int) -> list[int]:
    """The JVMs among `pid`'s children (its janitor, a Python, is one of them too)."""
    out = subprocess.run(["pgrep", "-P", str(pid), "java"], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def test_a_server_that_fails_to_start_leaves_no_folder(tmp_path: Path) -> None:
    """A server that cannot start (its port is taken) raises one clear error, and its folder is removed."""
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        cluster = ZooKeeperCluster(servers=1, client_ports=[squatter.getsockname()[1]])
        with pytest.raises((RuntimeError, TimeoutError)):
            cluster.start(timeout=20)
    assert not cluster.workdir.exists() and not cluster.servers[0].running


def test_a_process_that_ends_by_os_exit_leaves_no_folder(tmp_path: Path) -> None:
    """A Python that starts a server and leaves by os._exit (no atexit, no finally) leaves no /tmp/zklab-*:
    its JVM dies with it, and the janitor removes the folder."""
    code = ("import os, sys; from zklab.launcher import ZooKeeperCluster; "
            "c = ZooKeeperCluster(1).start(); print(c.workdir, flush=True); os._exit(3)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env={**os.environ, "TMPDIR": str(tmp_path)})
    assert out.returncode == 3, out.stderr
    assert Path(out.stdout.strip()).parent == tmp_path
    wait_until(lambda: not any(tmp_path.iterdir()), 15, "the janitor to remove the server's folder")


def test_a_server_started_while_sigterm_is_ignored_still_stops_on_sigterm() -> None:
    """check ignores SIGTERM while it cleans up; a JVM started then inherited the ignore, and every stop of it
    waited 10 s for SIGKILL (`check > /dev/full` took 11 s). A server starts with SIGTERM at its default."""
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        cluster = ZooKeeperCluster(servers=1).start()
    finally:
        signal.signal(signal.SIGTERM, previous)
    try:
        status = Path(f"/proc/{cluster.servers[0].process.pid}/status").read_text()
        ignored = int(next(line for line in status.splitlines() if line.startswith("SigIgn:")).split()[1], 16)
        assert not ignored & (1 << (signal.SIGTERM - 1)), status
    finally:
        cluster.stop()


def test_a_paused_server_stops_at_once() -> None:
    """A server paused with SIGSTOP cannot act on SIGTERM: stop wakes it first (it waited 10 s for SIGKILL)."""
    cluster = ZooKeeperCluster(servers=1).start()
    os.kill(cluster.servers[0].process.pid, signal.SIGSTOP)
    started = time.monotonic()
    cluster.stop()
    assert time.monotonic() - started < 5, f"stopping a paused server took {time.monotonic() - started:.1f} s"


@pytest.mark.parametrize("argument", [["--servers", "\u0663"], ["--servers", "2"], ["--tick-ms", "0"],
                                      ["--tick-ms", "-5"], ["--serv", "1"]])
def test_a_bad_argument_is_one_line_and_starts_nothing(argument: list[str]) -> None:
    """An Arabic-Indic 3 started three servers, --tick-ms 0 printed a Java stack trace, --serv was --servers,
    and every error came under argparse's usage block: now one line, exit 2, before any JVM."""
    result = subprocess.run([sys.executable, "-m", "zklab.launcher", *argument], cwd=ROOT, capture_output=True,
                            text=True, timeout=30)
    said = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(said) == 1 and said[0].endswith("--help says more"), result.stderr


def test_a_port_handed_out_lately_is_not_handed_out_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two of the lab's processes that chose the same free port lost a server to 'Address already in use' (a CI
    run). The choice goes through a book of the ports handed out lately: here the random draw gives the first
    caller's port again, and the second caller gets another one."""
    monkeypatch.setattr(launcher, "PORT_BOOK", tmp_path / "ports.json")
    first = free_ports(2)
    draws = iter([first[0], first[1], *range(launcher.PORT_RANGE[0], launcher.PORT_RANGE[1])])
    monkeypatch.setattr(launcher.random, "randint", lambda *_: next(draws))
    (second,) = free_ports(1)
    assert second not in first
