"""`./run.sh zk`: a shared ZooKeeper in the background, faults by hand, and two demos in one election."""

from __future__ import annotations

import ctypes
import json
import os
import pty
import re
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kazoo.client import KazooClient

from zklab import zk
from zklab.faults import wait_until
from zklab.launcher import free_ports, server_mode
from zklab.run import RECONNECT_RETRY

ROOT = Path(__file__).resolve().parent.parent
CANDIDATES = "/lab/leader-election/candidates"
DEMO_SECONDS = 10   # long enough for a lost session (4 s) to show after a kill 2-3 s in
DEMO_SESSION = 4.0  # the session timeout that must survive a ZooKeeper leader's death (issue 10)
Cli = Callable[..., subprocess.CompletedProcess]


def _three_free_ports() -> int:
    """A base port with the next two free as well (an ensemble takes base, base+1, base+2)."""
    while True:
        base = free_ports(1)[0]
        if base + 2 < 65536 and all(zk._port_problem(base + i) is None for i in range(3)):
            return base


def _subreaper(on: bool) -> None:
    # Servers outlive the `zk start` that spawned them; marked as a subreaper, this test process
    # inherits them when it exits and can collect them once they die (some sandboxes' init never does).
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(36, int(on))  # PR_SET_CHILD_SUBREAPER


def _our_jvms(state: Path) -> list[int]:
    """Live (not zombie) processes whose command line names a config file under `state`."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if str(state) in (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                if (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                    pids.append(int(proc.name))
                else:
                    zk._reap(int(proc.name))
        except OSError:
            continue
    return pids


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Cli, dict[str, str]]]:
    """`./run.sh zk ...` with its own state folder and ports (never 2181); everything stopped afterwards."""
    state = tmp_path / "zklab"
    env = {**os.environ, "ZKLAB_STATE": str(state), "ZKLAB_PORT": str(_three_free_ports())}
    env.pop("ZK_HOSTS", None)
    for key in ("ZKLAB_STATE", "ZKLAB_PORT"):
        monkeypatch.setenv(key, env[key])
    _subreaper(True)

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "zklab.run", "zk", *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=60)

    try:
        yield cli, env
    finally:
        cli("stop")
        _subreaper(False)
    assert _our_jvms(state) == [], "a server outlived `zk stop`"


def _status(cli: Cli) -> dict[int, str]:
    """{server number: what status says of it}."""
    out = cli("status").stdout
    return {int(m[1]): m[2].strip() for m in re.finditer(r"^(\d+)\s+\d+\s+(.*)$", out, re.MULTILINE)}


def _start_in_a_terminal_then_close_it(env: dict[str, str]) -> None:
    """`./run.sh zk start` typed into a terminal whose shell stays; then the terminal closes (SIGHUP)."""
    pid, terminal = pty.fork()
    if pid == 0:  # the child: a session leader with the pty as its controlling terminal, like a login shell
        os.chdir(ROOT)
        os.execve("/bin/bash", ["bash", "-c", "bash run.sh zk start && echo READY && exec sleep 60"], env)
    seen = b""
    try:
        deadline = time.monotonic() + 60
        while b"READY" not in seen and time.monotonic() < deadline:
            if select.select([terminal], [], [], 1)[0]:
                seen += os.read(terminal, 4096)
        assert b"READY" in seen, seen.decode(errors="replace")
    finally:
        os.close(terminal)  # the terminal closes: its session gets SIGHUP
        os.waitpid(pid, 0)


def test_start_outlives_its_terminal_and_stop_leaves_no_jvm(lab: tuple[Cli, dict[str, str]]) -> None:
    """`zk start` from a terminal returns once the server serves, the server outlives the terminal closing,
    status names its mode, and stop leaves no JVM."""
    cli, env = lab
    _start_in_a_terminal_then_close_it(env)
    port = int(env["ZKLAB_PORT"])
    assert server_mode(port) == "standalone"
    assert _status(cli)[1].endswith("standalone")
    again = cli("start")
    assert again.returncode == 1 and "already running" in again.stderr
    stopped = cli("stop")
    assert stopped.returncode == 0 and "stopped 1 server" in stopped.stdout
    assert server_mode(port) is None
    assert _our_jvms(Path(env["ZKLAB_STATE"])) == []
    assert "not running" in cli("status").stdout


def test_kill_pause_resume_restart_show_in_status(lab: tuple[Cli, dict[str, str]]) -> None:
    """kill -9, SIGSTOP, SIGCONT and restart of single members change what status reports, and the ensemble heals."""
    cli, _ = lab
    assert cli("start", "--servers", "3").returncode == 0
    modes = _status(cli)
    assert sorted(m.split()[-1] for m in modes.values()) == ["follower", "follower", "leader"]
    leader = next(sid for sid, m in modes.items() if m.endswith("leader"))
    other = next(sid for sid in modes if sid != leader)
    assert cli("kill", str(leader)).returncode == 0
    assert _status(cli)[leader].startswith("- ") and "down" in _status(cli)[leader]
    wait_until(lambda: "leader" in " ".join(_status(cli).values()), timeout=20, what="a new ZooKeeper leader")
    assert cli("pause", str(other)).returncode == 0
    assert "paused" in _status(cli)[other]
    said = cli("status").stdout  # 1 of 3 runs: the one left may still call itself leader, and status says why not
    assert "no majority runs (2 of 3 must)" in said, said
    assert cli("resume", str(other)).returncode == 0
    assert "no majority" not in cli("status").stdout
    assert cli("restart", str(leader)).returncode == 0
    wait_until(lambda: all(m.split()[-1] in ("leader", "follower") for m in _status(cli).values()), timeout=20,
               what="all three members serving again")
    bad = cli("kill", "7")
    assert bad.returncode == 1 and len(bad.stderr.strip().splitlines()) == 1 and "no server 7" in bad.stderr


def test_restarting_a_dead_ensemble_one_by_one_does_not_wait_in_vain(lab: tuple[Cli, dict[str, str]]) -> None:
    """With every server killed, restarting the first says at once that it waits for a majority; the second
    restart makes one, and both serve."""
    cli, _ = lab
    assert cli("start", "--servers", "3").returncode == 0
    for sid in (1, 2, 3):
        assert cli("kill", str(sid)).returncode == 0
    started = time.monotonic()
    first = cli("restart", "1")
    assert first.returncode == 0 and "not serving yet" in first.stdout and "majority" in first.stdout, first
    assert time.monotonic() - started < 10  # not zk's 30 s wait for a server that cannot serve alone
    second = cli("restart", "2")
    assert second.returncode == 0 and second.stdout.rstrip().endswith(("leader", "follower")), second
    wait_until(lambda: [m.split()[-1] for sid, m in sorted(_status(cli).items()) if sid < 3] in
               (["leader", "follower"], ["follower", "leader"]), timeout=20, what="servers 1 and 2 serving")


def test_a_taken_port_is_one_clear_line(lab: tuple[Cli, dict[str, str]]) -> None:
    """`zk start` on a port another program holds fails at once with one line naming the port."""
    cli, env = lab
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", int(env["ZKLAB_PORT"])))
        squatter.listen()
        result = cli("start")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"zk: port {env['ZKLAB_PORT']} is taken by another program; "
                                                  "free it, or pick other ports with ZKLAB_PORT=3181"]


def test_stop_signals_only_its_own_jvms(lab: tuple[Cli, dict[str, str]], tmp_path: Path) -> None:
    """A recorded pid that is no longer our server (here: another program) is left alone by stop and kill."""
    cli, env = lab
    bystander = subprocess.Popen(["sleep", "30"])
    try:
        Path(env["ZKLAB_STATE"]).mkdir(parents=True)
        zk._save_state({"servers": [{"sid": 1, "port": 1, "pid": bystander.pid, "config": str(tmp_path / "zoo.cfg"),
                                     "log": str(tmp_path / "log"), "cmd": ["false"]}]})
        assert "down" in _status(cli)[1]
        assert cli("kill", "1").returncode == 1
        assert cli("stop").returncode == 0
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_a_damaged_state_file_is_ignored_not_obeyed(lab: tuple[Cli, dict[str, str]]) -> None:
    """Garbage or wrongly typed records in .zklab/state.json read as "not running": no traceback, no signal."""
    cli, env = lab
    Path(env["ZKLAB_STATE"]).mkdir(parents=True)
    record = {"sid": 1, "port": 2181, "config": "/nowhere/zoo.cfg", "log": "/nowhere/log", "cmd": ["false"]}
    huge_pids = [json.dumps({"servers": [{**record, "pid": pid}]}) for pid in (2**31, 2**70, -1)]
    for text in ("{not json", '{"servers": [{"sid": "1", "pid": "1", "port": 2181}]}', '{"servers": [7]}', *huge_pids):
        (Path(env["ZKLAB_STATE"]) / "state.json").write_text(text)
        for command in (["status"], ["stop"], ["kill", "1"]):
            result = cli(*command)
            assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) <= 1, result.stderr
        assert "not running" in cli("status").stdout


def test_lost_state_file_the_servers_are_found_by_their_command_line(lab: tuple[Cli, dict[str, str]]) -> None:
    """`rm .zklab/state.json` while servers run: status still shows them, start refuses a second copy,
    and stop stops them (no JVM is ever left that the lab cannot stop)."""
    cli, env = lab
    assert cli("start").returncode == 0
    (Path(env["ZKLAB_STATE"]) / "state.json").unlink()
    status = cli("status").stdout
    assert "standalone" in status and "was lost" in status, status
    again = cli("start")
    assert again.returncode == 1 and "already running" in again.stderr, again.stderr
    kill = cli("kill", "2")
    assert kill.returncode == 1 and kill.stderr.strip() == "zk: no server 2: the lab's ZooKeeper has only server 1"
    stopped = cli("stop")
    assert stopped.returncode == 0 and "stopped 1 server" in stopped.stdout, stopped
    assert _our_jvms(Path(env["ZKLAB_STATE"])) == []


def test_an_ensemble_without_a_majority_is_refused_not_replaced(lab: tuple[Cli, dict[str, str]]) -> None:
    """Two of three servers killed: smoke says the lab's servers are recorded but not serving, names the
    restarts that fix it, exits 1, and starts no private ZooKeeper in their place."""
    cli, env = lab
    assert cli("start", "--servers", "3").returncode == 0
    assert cli("kill", "1").returncode == 0 and cli("kill", "2").returncode == 0
    smoke = subprocess.run([sys.executable, "-m", "zklab.run", "smoke"], cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=60)
    assert smoke.returncode == 1 and "private" not in smoke.stdout, smoke
    line, = smoke.stderr.strip().splitlines()
    assert "not serving" in line and "zk restart 1" in line and "zk restart 2" in line and "majority" in line, line


def test_a_state_folder_in_the_way_is_one_line(lab: tuple[Cli, dict[str, str]]) -> None:
    """.zklab as a file, or .zklab/lock as a folder: one line naming the folder and exit 1, not a traceback."""
    cli, env = lab
    state = Path(env["ZKLAB_STATE"])
    state.write_text("not a folder")
    for command in (["start"], ["stop"], ["status"]):
        result = cli(*command)
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) <= 1, result.stderr
    assert cli("start").returncode == 1 and str(state) in cli("stop").stderr
    state.unlink()
    (state / "lock").mkdir(parents=True)
    result = cli("stop")
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1 and "lock" in result.stderr
    (state / "lock").rmdir()


def _run_ids(client: KazooClient) -> set[str]:
    # Candidate nodes are <guid>__<worker>-<run id>__<sequence>; the run id tells the copies apart.
    return {name.split("__")[1].rsplit("-", 1)[1] for name in client.get_children(CANDIDATES) if name.count("__") == 2}


def _terms(events: Path) -> list[tuple[str, float, float]]:
    """(worker, start, end) of every term of leadership in one run's --events log (end: its unlead, else exit)."""
    records = [json.loads(line) for line in events.read_text().splitlines() if line.strip()]
    end_of_run = max(r["t"] for r in records)
    started: dict[str, float] = {}
    terms = []
    for record in records:
        if record["event"] == "lead":
            started[record["worker"]] = record["t"]
        elif record["event"] == "unlead" and record["worker"] in started:
            terms.append((record["worker"], started.pop(record["worker"]), record["t"]))
    return terms + [(worker, t, end_of_run) for worker, t in started.items()]


def test_two_runs_join_one_election_and_survive_killing_the_zookeeper_leader(lab: tuple[Cli, dict[str, str]],
                                                                             tmp_path: Path) -> None:
    """Two `run.sh leader` copies meet in one election on `zk start --servers 3`; kill -9 of the ZooKeeper leader
    loses no demo session, leaders never overlap across the copies, and both exit 0 with no traceback."""
    cli, env = lab
    assert cli("start", "--servers", "3").returncode == 0
    hosts = zk.hosts_of(zk.load_state())
    events = [tmp_path / f"run{i}.jsonl" for i in range(2)]
    began = time.monotonic()
    runs = [subprocess.Popen([sys.executable, "-m", "zklab.run", "leader", "--duration", str(DEMO_SECONDS),
                              "--session-timeout", str(DEMO_SESSION), "--workers", "2", "--interval", "60",
                              "--events", str(log)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True) for log in events]
    observer = KazooClient(hosts=hosts, timeout=4, connection_retry=RECONNECT_RETRY)
    departures: list[tuple[float, set[str]]] = []
    try:
        observer.start(timeout=10)
        wait_until(lambda: observer.exists(CANDIDATES) and len(_run_ids(observer)) == 2, timeout=15,
                   what="both runs' candidates in one election")
        seen = [set(observer.get_children(CANDIDATES))]

        @observer.ChildrenWatch(CANDIDATES)
        def _watch(children: list[str]) -> None:
            if gone := seen[-1] - set(children):
                departures.append((time.monotonic(), gone))
            seen.append(set(children))

        ledger = "/lab/leader-election/ledger"
        at_kill = wait_until(lambda: observer.exists(ledger), timeout=10, what="the first ledger write").version
        leader = next(sid for sid, m in _status(cli).items() if m.endswith("leader"))
        assert cli("kill", str(leader)).returncode == 0
        outputs = [run.communicate(timeout=30)[0] for run in runs]
        writes_after_kill = observer.retry(observer.get, ledger)[1].version - at_kill
    finally:
        for run in runs:
            if run.poll() is None:
                run.send_signal(signal.SIGINT)
                run.wait(timeout=20)
        observer.stop()
        observer.close()
    for run, out in zip(runs, outputs, strict=True):
        assert run.returncode == 0, out
        assert "Traceback" not in out and "error" not in out.lower(), out
    # The demo's own chaos strikes each run's leader once (crash, partition or resign): those may leave.
    # Any other candidate that leaves before its run shuts down lost its session to the kill.
    struck = set(re.findall(r"(w\d+-\w+)\s+(?:CRASHES|PARTITIONED|resigns)", "".join(outputs)))
    left_early = {node.split("__")[1] for t, gone in departures if t < began + DEMO_SECONDS for node in gone}
    lost = sorted((left_early | set(re.findall(r"(w\d+-\w+)\s+session was LOST", "".join(outputs)))) - struck)
    assert lost == [], f"sessions lost when the ZooKeeper leader was killed: {lost}\n" + "\n".join(outputs)
    assert writes_after_kill > 0, "no ledger write after the ZooKeeper leader died\n" + "\n".join(outputs)
    terms = sorted(term for log in events for term in _terms(log))
    overlaps = [(a, b) for i, a in enumerate(terms) for b in terms[i + 1:]
                if a[0] != b[0] and a[1] < b[2] and b[1] < a[2]]
    assert overlaps == [], f"two leaders at once across the two runs: {overlaps}"
