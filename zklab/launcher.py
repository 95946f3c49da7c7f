"""Start real ZooKeeper servers on loopback: one standalone server or a 3-server ensemble.

The lab's tests, benchmarks and `run.sh` need a ZooKeeper without Docker. This launcher runs the
real server (QuorumPeerMain) as child JVMs, on free ports, from a temporary folder, and never leaves
a JVM behind. It can also stop, kill -9 and restart one member, which is how the fault tests work.
With `peer_proxies=True` every server-to-server link runs through a PartitionProxy, so a test can
cut one member off from its peers while its clients stay connected to it (`isolate`, `heal_peers`).

    python -m zklab.launcher --servers 3      # prints the connection string, Ctrl-C stops
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import ctypes
import fcntl
import functools
import glob
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from zklab import interrupts
from zklab.plumbing import one_line_error
from zklab.proxy import PartitionProxy

# A short tick lets sessions time out in a second or two: ZooKeeper accepts session timeouts
# between 2 and 20 ticks unless told otherwise, and we widen the upper bound below.
TICK_MS = 250
MAX_SESSION_TIMEOUT_MS = 60_000
# How often the foreground launcher looks at its servers: a kill -9 from another terminal is said this soon.
WATCH_EVERY = 0.5

# Small, fast-starting JVMs: three of them must fit beside the tests on a 2-core machine.
JVM_FLAGS = ["-Xms32m", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
             "-Djava.net.preferIPv4Stack=true", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn"]

MAIN_CLASS = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
HOMEBREW_PREFIXES = ["/opt/homebrew/opt/zookeeper/libexec", "/usr/local/opt/zookeeper/libexec"]
DEBIAN_JAR = "/usr/share/java/zookeeper.jar"
# The janitor: a small process that outlives us only to remove our temporary folder once our JVMs are
# gone, when we could not (kill -9, os._exit, a SIGTERM nobody handled). It waits for its stdin to
# close: that happens when stop() closes it, or when the kernel closes our end because we died.
JANITOR = """
import os, shutil, sys, time
folder = sys.argv[1]
sys.stdin.buffer.read()
def jvms_left():
    try:
        names = os.listdir("/proc")
    except OSError:
        return False
    for name in names:
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                if folder.encode() in f.read():
                    return True
        except OSError:
            pass
    return False
deadline = time.monotonic() + 30
while jvms_left() and time.monotonic() < deadline:
    time.sleep(0.1)
shutil.rmtree(folder, ignore_errors=True)
"""
INSTALL_HINT = ("install it with `apt-get install -y zookeeper` (Debian/Ubuntu), `brew install zookeeper` "
                "(macOS) or set ZOOKEEPER_HOME; or start one with `docker compose up -d`")


class ZooKeeperMissing(RuntimeError):
    """Java or ZooKeeper is not installed; the message is one line that says how to fix it."""


# ---------------------------------------------------------------- finding Java and ZooKeeper

def find_java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    candidate = os.path.join(java_home, "bin", "java") if java_home else shutil.which("java")
    if not candidate or not os.access(candidate, os.X_OK):
        raise ZooKeeperMissing("no Java runtime found: install one with `apt-get install -y "
                               "default-jre-headless` (or `apt-get install -y zookeeper`, which pulls "
                               "it in), or start ZooKeeper with `docker compose up -d`")
    return candidate


def find_classpath() -> str:
    """The ZooKeeper jars: from ZOOKEEPER_HOME (Apache tarball), Debian's package or Homebrew's."""
    home = os.environ.get("ZOOKEEPER_HOME")
    if home:  # an explicit choice is never silently replaced by another install
        return _tarball_classpath(home) or _missing(f"ZOOKEEPER_HOME={home} holds no zookeeper jar")
    for prefix in HOMEBREW_PREFIXES:
        if classpath := _tarball_classpath(prefix):
            return classpath
    if os.path.exists(DEBIAN_JAR):
        # Debian's jar names its dependencies in its manifest; slf4j-simple gives readable logs.
        simple = "/usr/share/java/slf4j-simple.jar"
        return os.pathsep.join([DEBIAN_JAR] + ([simple] if os.path.exists(simple) else []))
    return _missing("ZooKeeper not found")


def _tarball_classpath(home: str) -> str | None:
    jars = glob.glob(os.path.join(home, "lib", "*.jar")) + glob.glob(os.path.join(home, "zookeeper-*.jar"))
    return os.pathsep.join(sorted(jars)) if any("zookeeper" in os.path.basename(j) for j in jars) else None


def _missing(what: str) -> str:
    raise ZooKeeperMissing(f"{what}: {INSTALL_HINT}")


# ---------------------------------------------------------------- talking to a server

def four_letter_word(port: int, word: str = "srvr", timeout: float = 1.0, host: str = "127.0.0.1") -> str:
    """Send a four-letter admin command and return the reply ('' if nothing answers)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(word.encode())
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
            return b"".join(chunks).decode(errors="replace")
    except OSError:
        return ""


def server_mode(port: int, timeout: float = 1.0) -> str | None:
    """'standalone', 'leader' or 'follower' when the server is serving requests, else None."""
    for line in four_letter_word(port, "srvr", timeout).splitlines():
        if line.startswith("Mode:"):
            return line.split(":", 1)[1].strip()
    return None


# Below Linux's ephemeral range (32768-60999 by default): a port the kernel hands out for "any free port"
# is also one it hands to the next outgoing connection as its local port, so between our choosing it and
# the JVM binding it, any client (kazoo's, a relay's) could take it, and the server dies with "Address in
# use" (seen on a busy machine). Ports from this range are only ever taken by someone who asks for them.
PORT_RANGE = (20000, 32000)


# The ports handed out lately, by any of the lab's processes on this machine (the tests' two workers, each check,
# each script's ensemble): a port is free until the JVM binds it, a second or so later, and two processes that
# chose the same one then lost a server to "Address already in use" (seen on a busy CI run). Kept for HANDED_FOR s.
# In /tmp itself, not $TMPDIR: the processes that share the ports do not share a TMPDIR (a test gives each check one).
PORT_BOOK = Path("/tmp") / f"zklab-ports-{os.getuid()}.json"
HANDED_FOR = 120.0


def free_ports(count: int) -> list[int]:
    """Ports free now, outside the ephemeral range, and handed to no other of our processes lately; the sockets
    stay open until all are chosen, so no repeats."""
    socks: list[socket.socket] = []
    with _port_book() as handed:
        try:
            while len(socks) < count:
                s = socket.socket()
                try:
                    if (port := random.randint(*PORT_RANGE)) in handed:
                        raise OSError("handed out lately")
                    s.bind(("127.0.0.1", port))
                except OSError:
                    s.close()
                    continue
                socks.append(s)
            chosen = [s.getsockname()[1] for s in socks]
        finally:
            for s in socks:
                s.close()
        handed.update(dict.fromkeys(chosen, time.time()))
    return chosen


@contextlib.contextmanager
def _port_book() -> Iterator[dict[int, float]]:
    """The ports handed out in the last HANDED_FOR s ({port: when}), under an exclusive lock, written back after.
    A book we cannot open or read is no book: the choice is then as good as random."""
    try:
        book = open(PORT_BOOK, "a+")  # noqa: SIM115 - a book that will not open is no book, not an error
    except OSError:
        yield {}
        return
    with book:
        fcntl.flock(book, fcntl.LOCK_EX)
        book.seek(0)
        try:
            handed = {int(k): float(v) for k, v in json.loads(book.read() or "{}").items()}
        except (ValueError, AttributeError, TypeError):
            handed = {}
        handed = {port: at for port, at in handed.items() if time.time() - at < HANDED_FOR}
        yield handed
        book.seek(0)
        book.truncate()
        book.write(json.dumps(handed))


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to SIGKILL us if the launcher dies, even by kill -9.

    Linux sends it when the *thread* that started the JVM ends, so start servers from a thread that
    lives as long as they should (the main thread, as the tests and the runner do).
    """
    if sys.platform.startswith("linux"):
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _default_signals() -> None:
    """In the child, before exec: SIGTERM and SIGINT as the JVM expects them. A signal our process ignores at
    that moment (check ignores both while it cleans up) would stay ignored across exec, and stopping the
    server would wait out its timeout before SIGKILL."""
    if sys.platform.startswith("linux"):
        for signum in (signal.SIGTERM, signal.SIGINT):
            ctypes.CDLL(None).signal(int(signum), ctypes.c_void_p(0))   # SIG_DFL


def spawn(cmd: list[str], log_path: Path, detached: bool) -> subprocess.Popen:
    """Start a server JVM, its output appended to `log_path`.

    Either way it gets a session of its own, which keeps the terminal's Ctrl-C and hang-up away from
    it, and default signals. A `detached` server outlives us (`./run.sh zk start`); any other dies with
    the thread that started it.
    """
    def child() -> None:
        _default_signals()
        if not detached:
            _die_with_parent()
    with open(log_path, "ab") as log:
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, preexec_fn=child)


def _janitor(folder: Path) -> subprocess.Popen:
    """Start the process that removes `folder` after we are gone (see JANITOR). In a session of its own,
    so the terminal's Ctrl-C or a group kill that ends us does not end it first."""
    return subprocess.Popen([sys.executable, "-c", JANITOR, str(folder)], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


# ---------------------------------------------------------------- one server

@dataclass
class Server:
    sid: int
    client_port: int
    peer_port: int
    election_port: int
    data_dir: Path
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def mode(self) -> str | None:
        return server_mode(self.client_port) if self.running else None


# ---------------------------------------------------------------- a cluster of servers

_live_clusters: weakref.WeakSet[ZooKeeperCluster] = weakref.WeakSet()


class ZooKeeperCluster:
    """`servers` real ZooKeeper servers (1 = standalone, 3 = ensemble) on loopback."""

    def __init__(self, servers: int = 1, tick_ms: int = TICK_MS, workdir: str | None = None,
                 client_ports: list[int] | None = None, peer_proxies: bool = False):
        """`client_ports` fixes the ports clients use (one per server), as `./run.sh zk` does; else free ones.

        `peer_proxies` routes every server-to-server connection (quorum and election) through a
        PartitionProxy of its own, so `isolate()` can partition one member from its peers.
        """
        if servers < 1:
            raise ValueError("a cluster needs at least one server")
        if client_ports is not None and len(client_ports) != servers:
            raise ValueError("give one client port per server")
        self.java, self.classpath, self.tick_ms = find_java(), find_classpath(), tick_ms
        self._owns_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="zklab-"))
        try:
            self._janitor = _janitor(self.workdir) if self._owns_workdir else None
        except BaseException:  # Ctrl-C before the janitor could take charge of the folder: remove it now
            if self._owns_workdir:
                shutil.rmtree(self.workdir, ignore_errors=True)
            raise
        fixed = client_ports or []
        ports = [p for p in free_ports(3 * servers + len(fixed)) if p not in fixed][:3 * servers]
        if client_ports is not None:
            ports[0::3] = client_ports
        self.servers = [Server(i + 1, *ports[3 * i:3 * i + 3], self.workdir / f"zk{i + 1}")
                        for i in range(servers)]
        # (from sid, to sid) -> the proxies `from` uses to reach `to`'s quorum and election ports.
        self.peer_links: dict[tuple[int, int], tuple[PartitionProxy, PartitionProxy]] = {}
        if peer_proxies and servers > 1:
            self.peer_links = {(a.sid, b.sid): (PartitionProxy(("127.0.0.1", b.peer_port)),
                                                PartitionProxy(("127.0.0.1", b.election_port)))
                               for a in self.servers for b in self.servers if a is not b}
        for server in self.servers:
            self._write_config(server)

    @property
    def hosts(self) -> str:
        """The connection string a KazooClient takes."""
        return ",".join(s.address for s in self.servers)

    def _write_config(self, server: Server) -> None:
        server.data_dir.mkdir(parents=True, exist_ok=True)
        lines = [
            f"tickTime={self.tick_ms}",
            "initLimit=20",
            "syncLimit=10",
            f"dataDir={server.data_dir}",
            f"clientPort={server.client_port}",
            "clientPortAddress=127.0.0.1",
            f"maxSessionTimeout={MAX_SESSION_TIMEOUT_MS}",
            "admin.enableServer=false",       # its Jetty would want port 8080
            "4lw.commands.whitelist=*",       # srvr, mntr, wchc, cons: the lab reads them
            "maxClientCnxns=0",               # benchmarks open hundreds of sessions from 127.0.0.1
            "forceSync=no",                   # a lab server: the page cache survives kill -9
        ]
        if len(self.servers) > 1:
            lines += [f"server.{s.sid}=127.0.0.1:{self._peer_ports(server, s)}" for s in self.servers]
            (server.data_dir / "myid").write_text(f"{server.sid}\n")
        (server.data_dir / "zoo.cfg").write_text("\n".join(lines) + "\n")

    def _peer_ports(self, server: Server, peer: Server) -> str:
        """'quorum:election' ports where `server` finds `peer`: the real ones, or its proxies to them.

        A server listens on the ports of its own `server.N=` line and connects to the others at the
        ports its config gives, so only its own line must hold its real ports.
        """
        link = self.peer_links.get((server.sid, peer.sid))
        return f"{peer.peer_port}:{peer.election_port}" if link is None else f"{link[0].port}:{link[1].port}"

    # -- partitions between servers (peer_proxies=True)

    def isolate(self, sid: int, how: str = "blackhole") -> None:
        """Partition server `sid` from every peer, both ways; its clients stay connected to it.

        "blackhole" holds every byte (as dropped packets do: the peers notice only by timeouts),
        "cut" resets every connection (as a host that is down). Both directions matter: the quorum
        link is opened by the follower, and an election link by either side.

        What it does not cover: ZooKeeper keeps one election link per pair, held by the larger sid.
        When a smaller sid opens it, the larger drops it and calls back at the port the smaller one
        announces, its real one, so that link bypasses the proxies (seen with `ss -tnp`). The
        isolated server can still exchange votes, but it can neither follow nor lead a quorum: every
        quorum link goes through a proxy.
        """
        if how not in ("blackhole", "cut"):
            raise ValueError(f"how must be 'blackhole' or 'cut', not {how!r}")
        links = [link for pair, link in self.peer_links.items() if sid in pair]
        if not links:
            raise RuntimeError("isolate() needs ZooKeeperCluster(..., peer_proxies=True) and 2+ servers")
        for proxy in (p for link in links for p in link):
            proxy.blackhole() if how == "blackhole" else proxy.cut()

    def heal_peers(self) -> None:
        """Undo every isolate(): new server-to-server connections flow again."""
        for proxy in (p for link in self.peer_links.values() for p in link):
            proxy.heal()

    # -- lifecycle of the whole cluster

    def start(self, timeout: float = 30.0) -> ZooKeeperCluster:
        _live_clusters.add(self)
        try:
            for server in self.servers:
                self._spawn(server)
            self.wait_ready(timeout)
        except BaseException:  # a server that failed to start, or Ctrl-C: no JVM and no folder is left
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop every server and remove the temporary folder. Safe to call twice."""
        for server in self.servers:
            self.stop_server(server.sid)
        for proxy in (p for link in self.peer_links.values() for p in link):
            proxy.close()
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        if self._janitor is not None:  # nothing left for it to do: let it go, and collect it
            janitor, self._janitor = self._janitor, None
            janitor.stdin.close()
            try:
                janitor.wait(10)
            except subprocess.TimeoutExpired:
                janitor.kill()
                janitor.wait()
        _live_clusters.discard(self)

    def __enter__(self) -> ZooKeeperCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_ready(self, timeout: float = 30.0) -> dict[int, str]:
        """Wait until every running server answers `srvr` with a mode; return {sid: mode}."""
        deadline = time.monotonic() + timeout
        while True:
            interrupts.raise_noted()  # a Ctrl-C or SIGTERM that Python swallowed while we forked a server
            modes = {s.sid: s.mode() for s in self.servers if s.running}
            dead = [s for s in self.servers if s.process is not None and s.process.poll() is not None]
            if dead:
                raise RuntimeError(f"ZooKeeper server {dead[0].sid} exited: {self._log_tail(dead[0])}")
            if modes and all(modes.values()):
                return modes  # type: ignore[return-value]
            if time.monotonic() > deadline:
                raise TimeoutError(f"ZooKeeper did not start serving within {timeout:.0f}s: {modes}")
            time.sleep(0.05)

    # -- one member at a time, for the fault tests

    def server(self, sid: int) -> Server:
        return self.servers[sid - 1]

    def leader(self) -> Server:
        """The ensemble's current ZooKeeper leader (or the standalone server)."""
        for server in self.servers:
            if server.mode() in ("leader", "standalone"):
                return server
        raise RuntimeError("no server reports itself leader")

    def stop_server(self, sid: int, timeout: float = 10.0) -> None:
        """A clean shutdown (SIGTERM), waited for."""
        self._signal(self.server(sid), signal.SIGTERM, timeout)

    def kill_server(self, sid: int) -> None:
        """kill -9: no goodbye to peers or clients, exactly like a crashed machine."""
        self._signal(self.server(sid), signal.SIGKILL, 10.0)

    def start_server(self, sid: int, timeout: float = 30.0) -> None:
        """Start a stopped member again on the same ports and data, and wait until it serves."""
        server = self.server(sid)
        if not server.running:
            self._spawn(server)
        self.wait_ready(timeout)

    def restart_server(self, sid: int, timeout: float = 30.0) -> None:
        self.stop_server(sid)
        self.start_server(sid, timeout)

    # -- processes

    def command(self, server: Server) -> list[str]:
        """The command line that runs `server`: its config file's path names it among all JVMs."""
        return [self.java, *JVM_FLAGS, "-cp", self.classpath, MAIN_CLASS, str(server.data_dir / "zoo.cfg")]

    def _spawn(self, server: Server) -> None:
        server.process = spawn(self.command(server), server.data_dir / "server.log", detached=False)

    @staticmethod
    def _signal(server: Server, sig: int, timeout: float) -> None:
        proc = server.process
        if proc is None or proc.poll() is not None:
            return
        if sig != signal.SIGKILL:
            proc.send_signal(signal.SIGCONT)  # a paused JVM (SIGSTOP) cannot act on SIGTERM until it runs again
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    @staticmethod
    def _log_tail(server: Server, lines: int = 5) -> str:
        try:
            text = (server.data_dir / "server.log").read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(text[-lines:]) or "(empty log)"


# ---------------------------------------------------------------- JVMs a test run left behind

# Set by .ci/run (or tests/conftest.py) for one test run; every JVM the run starts inherits it in its
# environment, so a last check can wait for exactly those, never for another run's or the learner's.
SUITE_TAG = "ZKLAB_SUITE_TAG"


def process_stat(pid: int | str) -> tuple[str, int, int] | None:
    """(state letter, parent, process group) of process `pid` from /proc/PID/stat ("Z": a zombie, "T":
    stopped); None if it is gone, unreadable, or this system has no /proc."""
    try:
        state, parent, group = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[:3]
        return state, int(parent), int(group)
    except (OSError, IndexError, ValueError):
        return None


def live_processes() -> dict[int, tuple[str, int, int]]:
    """Every process that is not a zombie, with its process_stat, from one pass over /proc (none where there
    is no /proc)."""
    proc, found = Path("/proc"), {}
    for entry in proc.iterdir() if proc.is_dir() else []:
        if entry.name.isdigit() and (stat := process_stat(entry.name)) is not None and stat[0] != "Z":
            found[int(entry.name)] = stat
    return found


def live_jvms() -> dict[int, bytes]:
    """Every live ZooKeeper JVM (not a zombie), with its command line."""
    found = {}
    for pid in live_processes():
        with contextlib.suppress(OSError):  # gone while we looked, or not ours to read
            if MAIN_CLASS.encode() in (command := Path(f"/proc/{pid}/cmdline").read_bytes()):
                found[pid] = command
    return found


def jvms_in(folder: Path) -> list[int]:
    """Live ZooKeeper JVMs whose command line names a file under `folder` (their zoo.cfg): what still writes
    there, so that removing the folder now would leave part of it."""
    inside = str(folder).encode()
    return [pid for pid, command in live_jvms().items() if inside in command]


def tagged_jvms(tag: str) -> list[int]:
    """Live ZooKeeper JVMs whose environment holds SUITE_TAG=tag, or tag/PART: a parallel test run gives each
    worker a tag of its own under the run's, so the run's check sees them all."""
    marker, found = f"{SUITE_TAG}={tag}".encode(), []
    for pid in live_jvms():
        with contextlib.suppress(OSError):  # gone while we looked, or not ours to read
            tags = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            if any(t == marker or t.startswith(marker + b"/") for t in tags):
                found.append(pid)
    return found


def wait_for_tagged_jvms(tag: str, timeout: float = 30.0) -> list[int]:
    """Wait until the run's JVMs have exited (a SIGKILLed JVM takes a moment); return those still alive."""
    deadline = time.monotonic() + timeout
    while (left := tagged_jvms(tag)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


@atexit.register
def _stop_all() -> None:
    """Whatever happens to the tests, no JVM outlives the Python process that started it."""
    for cluster in list(_live_clusters):
        cluster.stop()


# ---------------------------------------------------------------- command line

def servers_arg(text: str) -> int | str:
    """--servers: 1 or 3 in ASCII digits, as a number; anything else as given, for argparse's choices to refuse
    in one line (int() would take "٣" or " 3")."""
    return {"1": 1, "3": 3}.get(text, text)


def tick_ms(text: str) -> int:
    """--tick-ms: whole milliseconds in ASCII digits, 10 to 10,000 (ZooKeeper refuses 0, and a Java int overflows)."""
    if not (text.isascii() and text.isdigit() and 10 <= int(text) <= 10_000):
        raise argparse.ArgumentTypeError(f"must be whole milliseconds from 10 to 10000, not {text!r}")
    return int(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m zklab.launcher", allow_abbrev=False,
                                     description="Run real ZooKeeper servers on loopback until Ctrl-C.")
    parser.error = functools.partial(one_line_error, parser)  # the lab's rule, as `python -m` imports no tool
    parser.add_argument("--servers", type=servers_arg, choices=[1, 3], default=1, help="1 = standalone, 3 = ensemble")
    parser.add_argument("--tick-ms", type=tick_ms, default=TICK_MS, help="ZooKeeper tickTime (default %(default)s)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        cluster = ZooKeeperCluster(args.servers, args.tick_ms).start()
    except (ZooKeeperMissing, RuntimeError, TimeoutError) as exc:
        print(f"launcher: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # while the servers start: what started is stopped at exit (atexit)
        return 130
    try:
        for server in cluster.servers:
            print(f"server {server.sid}: {server.address:<18} {server.mode()}")
        print(f"ZK_HOSTS={cluster.hosts}", flush=True)
        print("serving until Ctrl-C", flush=True)
        return watch_servers(cluster)
    except KeyboardInterrupt:
        return 0
    finally:
        cluster.stop()


def watch_servers(cluster: ZooKeeperCluster) -> int:
    """Say each server that ends (kill -9 from another terminal, a crash) the moment we see it, and whether a
    majority still serves; once none is left there is nothing to serve: exit 1."""
    alive = {server.sid for server in cluster.servers}
    while alive:
        time.sleep(WATCH_EVERY)
        for server in cluster.servers:
            if server.sid in alive and not server.running:
                alive.discard(server.sid)
                code = server.process.returncode if server.process else None
                how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
                left = "a majority still serves" if len(alive) > len(cluster.servers) // 2 else "no majority serves"
                print(f"server {server.sid} ended ({how}): {len(alive)} of {len(cluster.servers)} left, {left}",
                      flush=True)
    print("no server left: stopping", file=sys.stderr, flush=True)
    return 1


if __name__ == "__main__":
    sys.exit(main())
