"""The leader election's guarantees, measured against a real ZooKeeper through the script's public API.

Rules of these scenarios:
- only the public API: LeaderElection (start, resign, is_leader, participants, leader, epoch, token,
  node_path, fenced_set, client, name), fenced_write, NotLeaderError, parse_candidate, LEASE_FRACTION;
  nothing private and no source, so a learner may arrange the recipe freely;
- leaders are measured by sampling every candidate's is_leader, never from the recipe's own log;
- every race is staged, never left to luck: a tap holds or drops one request (or holds one notification)
  on the wire, proxies cut links, an admin client deletes nodes, a 3-server ensemble cuts one follower off
  from its peers;
- each failure's advice names the step function of the lesson that holds the rule; the scenarios run
  in the order of those steps. Short sessions (1-2 s) keep every bound within a few seconds; the
  one long one (6 s) lets a lease dwarf how soon kazoo says SUSPENDED on a reset connection.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import KazooException

from zklab.check_lab import (
    CREATES,
    MULTI,
    SESSION_TIMEOUT,
    WATCHED_READS,
    Broken,
    Check,
    Findings,
    Lab,
    LeaderSampler,
    Verdict,
    WireTap,
    reply_xid,
    request_header,
    wait_for,
)
from zklab.faults import settle

PATH, LEDGER = "/election", "/ledger"
# The partitioned leader's session: ZooKeeper expires it 1 s after it last heard from it.
SHORT_SESSION = 1.0
# How long the partition goes on after the next leader was elected: a stale leader shows in that time.
AFTER_ELECTION = 0.5
# How long a candidate gets to take over, or to notice something, once ZooKeeper has told it.
REACT = 2.0
# How long we watch for a candidate that should stay in line but might claim leadership anyway.
TEMPTATION = 0.5
# A pause on the wire this long means every candidate has handled what it heard (pings are rarer).
QUIET = 0.1
# What a loaded machine may add to a renewal's period before a leader that must stop has stopped.
SLIP = 0.3

ADVICE_TWO_LEADERS = ("Two leaders at once is what an election exists to prevent: both would act and write. "
                      "Look at how the queue is ordered and read: election_order, LeaderElection._check_position.")


# ---------------------------------------------------------------- helpers

def must_refuse(call: Callable[[], object], refusal: type[BaseException], key: str, figure: str, advice: str) -> None:
    """`call` must raise `refusal`; if it goes through, the guarantee `key` fails with `figure`."""
    try:
        call()
    except refusal:
        return
    raise Broken(key, figure, advice)


def candidate(lab: Lab, chroot: str, name: str, sampler: LeaderSampler | None = None,
              timeout: float = SESSION_TIMEOUT, via: str | None = None) -> object:
    """A started LeaderElection with a session of its own; it resigns when the lab closes."""
    election = lab.script.LeaderElection(lab.client(chroot, timeout, via), PATH, name)
    lab.on_close(election.resign)
    if sampler is not None:
        sampler.candidates.append(election)
    election.start()
    return election


def join_in_turn(lab: Lab, chroot: str, names: list[str], sampler: LeaderSampler, key: str,
                 vias: list[str] | None = None) -> list[object]:
    """Candidates that join one after another, each node created before the next starts."""
    admin = lab.client(chroot)
    admin.ensure_path(PATH)
    base = len(admin.get_children(PATH))
    elections = []
    for i, name in enumerate(names):
        elections.append(candidate(lab, chroot, name, sampler, via=vias[i] if vias else None))
        wait_for(lambda n=base + i + 1: len(admin.get_children(PATH)) >= n, REACT, key,
                 f"{name} did not create its election node within {REACT:.0f} s",
                 "start() must join the election: one EPHEMERAL_SEQUENTIAL node per candidate.")
    return elections


def sole_leader(elections: list[object], key: str, bound: float = REACT) -> object:
    """Wait until exactly one of `elections` acts as leader; fail `key` with what was seen."""
    def single() -> object | None:
        leading = [e for e in elections if e.is_leader]
        return leading[0] if len(leading) == 1 else None
    try:
        return wait_for(single, bound, key, "", "")
    except Broken:
        leading = [e.name for e in elections if e.is_leader]
        if len(leading) > 1:
            raise Broken(key, f"{len(leading)} candidates act as leader at once ({', '.join(leading)})",
                         ADVICE_TWO_LEADERS) from None
        raise Broken(key, f"no candidate led within {bound:.0f} s", "The first candidate in line must lead; "
                     "each other one must watch the node before its own and look again when it goes.") from None


def overlap_figure(sampler: LeaderSampler, elections: list[object]) -> tuple[int, str]:
    """The most leaders acting at once, as sampled from every candidate's is_leader (never its own log)."""
    sampler.settle()
    if sampler.error is not None:
        raise sampler.error
    most = sampler.most
    names = f" ({', '.join(sampler.overlap)}, {sampler.together:.2f} s in all)" if most > 1 else ""
    return most, f"most leaders acting at once: {most}{names}"


def drain(elections: list[object]) -> None:
    """Wait until each candidate's client has handled every notification ZooKeeper sent it so far."""
    for election in elections:
        settle(election.client, REACT)


# ---------------------------------------------------------------- one leader, the first in line

# A child of the election path that no candidate made (a lock, a note left by hand): no name, no GUID.
STRAY = "stray-0000000001"


def one_leader(lab: Lab, found: Findings) -> None:
    chroot, sampler = lab.namespace(), lab.sampler()
    names = [f"c{i}" for i in range(5)]
    lab.client(chroot).create(f"{PATH}/{STRAY}", b"not a candidate", makepath=True)  # the queue must skip it
    elections = join_in_turn(lab, chroot, names, sampler, "one-leader")
    leader = sole_leader(elections, "one-leader")
    if leader is not elections[0]:
        raise Broken("one-leader", f"{leader.name} leads, but c0 joined first and is first in line",
                     "The lowest sequence number leads. Look at how LeaderElection orders the queue.")
    odd = [f"{e.name} sees {queue}" for e in elections if (queue := e.participants()) != names]
    odd += [f"{e.name}'s leader() is {answer}" for e in elections if (answer := e.leader()) != "c0"]
    if odd:
        raise Broken("one-leader", f"candidates see different queues: {odd[0]}",
                     "Every candidate reads the same children from ZooKeeper and must order them the same "
                     "way. Look at election_order (participants() uses it).")
    must_refuse(lambda: elections[1].fenced_set(LEDGER, "from a follower"), lab.script.NotLeaderError,
                "one-leader", "a follower's fenced_set was accepted",
                "Only the leader may write: fenced_set must refuse unless is_leader holds.")
    most, figure = overlap_figure(sampler, elections)
    found.judge("one-leader", most == 1,
                f"1 of 5 candidates leads, the first in line; all see one queue (and skip a child no candidate "
                f"made); a follower's write is refused; {figure}", ADVICE_TWO_LEADERS)


# ---------------------------------------------------------------- leadership passes down the queue

FIRST_SEQUENCE = 7  # the queue starts at 7, so it crosses from 9 to 10: as text, "10" sorts before "9"


def in_order(lab: Lab, found: Findings) -> None:
    chroot, sampler = lab.namespace(), lab.sampler()
    admin = lab.client(chroot)
    for _ in range(FIRST_SEQUENCE):  # every create under the path advances its sequence counter
        admin.delete(admin.create(f"{PATH}/x", sequence=True, makepath=True))
    elections = join_in_turn(lab, chroot, [f"c{i}" for i in range(6)], sampler, "in-order")
    handoffs, epochs = hand_down(elections)
    must_refuse(elections[0].start, RuntimeError, "in-order", "a resigned candidate could start again",
                "resign() is final: a closed election must not rejoin.")
    if epochs != [FIRST_SEQUENCE + i for i in range(len(elections))]:
        raise Broken("in-order", f"the leaders' epochs were {epochs}, where their nodes' sequence numbers are "
                     f"{FIRST_SEQUENCE}..{FIRST_SEQUENCE + len(elections) - 1}",
                     "The epoch is the fencing token: the leader's own sequence number, which grows from one leader "
                     "to the next. Claim with the sequence of your node (first in line): look at "
                     "LeaderElection._check_position.")
    most, figure = overlap_figure(sampler, elections)
    found.judge("in-order", most == 1,
                f"5 hand-offs, each to the next in line (10 after 9), slowest {max(handoffs):.1f} ms; epochs "
                f"{epochs[0]} to {epochs[-1]}, each the leader's sequence number; {figure}", ADVICE_TWO_LEADERS)


def hand_down(elections: list[object]) -> tuple[list[float], list[object]]:
    """Resign each leader in turn: the next in line must lead each time. The hand-offs, in ms, and each
    leader's epoch as it led."""
    seq = {e.name: FIRST_SEQUENCE + i for i, e in enumerate(elections)}
    handoffs: list[float] = []
    epochs: list[object] = []
    previous, resigned_at = None, 0.0
    for k, expected in enumerate(elections):
        leader = sole_leader(elections[k:], "in-order")
        if leader is not expected:
            raise Broken("in-order", f"{leader.name} (sequence {seq[leader.name]}) leads, but "
                         f"{expected.name} (sequence {seq[expected.name]}) is ahead of it in line",
                         "Order the queue by the sequence number as a number: 10 comes after 9. "
                         "Look at election_order.")
        epochs.append(leader.epoch)
        if previous is not None:
            handoffs.append((time.monotonic() - resigned_at) * 1000)
            if previous.name in leader.participants():
                raise Broken("in-order", f"{previous.name} resigned but is still in the queue",
                             "resign() must delete the candidate's node.")
        if k == len(elections) - 1:
            break
        previous = leader
        leader.resign()
        resigned_at = time.monotonic()
    return handoffs, epochs


# ---------------------------------------------------------------- the herd, and the middle departure

def quiet(taps: list[object], key: str) -> None:
    """Wait until no frame has passed any tap for a while: every woken candidate has set its watch again."""
    wait_for(lambda: time.monotonic() - max(t.last_frame for t in taps) > QUIET, REACT, key,
             f"the candidates' connections never fell quiet for {QUIET * 1000:.0f} ms",
             "Candidates that wait in line should not talk to ZooKeeper all the time.")


def woken_by(departure: object, elections: list[object], taps: dict[str, object]) -> dict[str, int]:
    """Watch notifications each other candidate received because `departure` resigned."""
    quiet(list(taps.values()), "no-herd")
    others = [e for e in elections if e is not departure and e.name in taps]
    before = {e.name: len(taps[e.name].events) for e in others}
    departure.resign()
    drain(others)
    return {e.name: len(taps[e.name].events) - before[e.name] for e in others}


def herd(lab: Lab, found: Findings) -> None:
    chroot, sampler = lab.namespace(), lab.sampler()
    names = [f"c{i}" for i in range(6)]
    taps = {name: lab.tap() for name in names}
    elections = join_in_turn(lab, chroot, names, sampler, "no-herd", vias=[taps[n].address for n in names])
    alive = list(elections)
    sole_leader(alive, "no-herd")
    drain(alive)
    counts = []
    for departing in (elections[0], elections[3]):   # the leader, then one in the middle of the queue
        counts.append(woken_by(departing, alive, taps))
        alive.remove(departing)
        if departing is elections[0]:
            sole_leader(alive, "no-herd")
    judge_herd(found, counts)
    # c3 left while c1 leads: c4 was woken, and must read the queue again and stay in line.
    end = time.monotonic() + TEMPTATION
    while time.monotonic() < end and not elections[4].is_leader:
        time.sleep(0.005)
    most, figure = overlap_figure(sampler, elections)
    found.judge("middle", most == 1 and not elections[4].is_leader,
                f"c3 left the middle of the queue, c4 stayed behind c1: {figure}",
                "c4 took its predecessor's departure as its election while c1 still led. A vanished "
                "predecessor does not mean you lead: read the children again when the watch fires. Look "
                "at LeaderElection._check_position and the watch callback it sets "
                "(LeaderElection._predecessor_changed).")


def judge_herd(found: Findings, counts: list[dict[str, int]]) -> None:
    """Each departure must have woken exactly one candidate, with one notification."""
    woke = max(sum(1 for n in c.values() if n) for c in counts)
    events = max(sum(c.values()) for c in counts)
    if woke == 1 and events == 1:
        found.hold("no-herd", "a departure woke 1 candidate (watching all children would wake 5)")
    elif woke == 0:
        found.fail("no-herd", "a departure woke no candidate",
                   "The candidate behind the one that left must hear of it, or nobody takes over. "
                   "Look at where LeaderElection._check_position sets its watch.")
    else:
        found.fail("no-herd", f"a departure woke {woke} candidates with {events} notifications "
                   "where 1 should wake: a herd",
                   "Watching all children wakes every candidate on every change, and each then reads the "
                   "whole list again. Watch only the node just before yours: look at where "
                   "LeaderElection._check_position sets its watch.")


# ---------------------------------------------------------------- a lost reply to create

ADVICE_ORPHAN = "LeaderElection._find_own_node, called from LeaderElection._join."
ADVICE_TWIN = ("A node is yours only if your current session owns it: the GUID in its name says who made it, not "
               "whose session keeps it alive. A twin (a process forked after it chose its GUID) makes nodes with "
               "yours, and ZooKeeper deletes them when the twin's session ends, however you lead. Adopt a match "
               "only if its ephemeralOwner is your session id, and lead only from a node your session owns: "
               "LeaderElection._find_own_node, and the owner check in LeaderElection._check_position.")
# The twin's node: a sequence ZooKeeper's counter never reaches in a check, so it sorts behind any real node and a
# candidate that adopts it leads from it at once (nobody is before it), where one that does not leads from its own.
TWIN_SEQ = "9999999999"


def lose_create(lab: Lab, chroot: str, name: str, tap: WireTap) -> object:
    """A candidate whose reply to create is lost with its connection; it keeps its session (4 s outlives the
    reconnect through the tap), and so the node that create made. Returns once the reply was dropped."""
    election = lab.script.LeaderElection(lab.client(chroot, 4.0, tap.address), PATH, name)
    lab.on_close(election.resign)
    tap.lose_reply_to = CREATES   # the create reaches ZooKeeper; its reply is lost with the connection
    election.start()
    wait_for(tap.reply_lost.is_set, REACT, "lost-create", f"{name} did not create its node",
             "start() must create an election node.")
    return election


def plant_twin(admin: KazooClient, planted: list[str]) -> None:
    """On the tap's thread, while the candidate waits for the reply it will never get: delete the node it made
    and create its twin's, with the same GUID, ephemeral in the admin's session (another live session)."""
    try:
        (made,) = admin.get_children(PATH)
        admin.delete(f"{PATH}/{made}")
        twin = made.rstrip("0123456789") + TWIN_SEQ   # the GUID and name are public: the node's name shows them
        admin.create(f"{PATH}/{twin}", b"twin", ephemeral=True)
        planted.append(twin)
    except Exception as exc:  # noqa: BLE001 - said by the scenario, on our thread
        planted.append(f"! {type(exc).__name__} {exc}")


def leads_after_lost_create(election: object, admin: KazooClient) -> None:
    """The candidate must lead within REACT; if not, say how many nodes it left in line."""
    try:
        wait_for(lambda: election.is_leader, REACT, "lost-create", "", "")
    except Broken:
        nodes = len(admin.get_children(PATH))
        raise Broken("lost-create", f"after a lost reply to create: {nodes} nodes for one candidate, and it "
                     f"did not lead within {REACT:.0f} s",
                     "A blind retry of create makes a second node while the first lives on in the same "
                     "session: the candidate waits behind its own orphan. Look for your GUID in the "
                     f"children before creating again: {ADVICE_ORPHAN}") from None


def judge_twin(election: object, admin: KazooClient, twin: str) -> str:
    """The candidate leads from a node its own session owns, not from the twin's; returns the figure."""
    session = election.client.client_id[0]
    owners = {c: getattr(admin.exists(f"{PATH}/{c}"), "ephemeralOwner", None) for c in admin.get_children(PATH)}
    leads_from = (election.node_path or "").rsplit("/", 1)[-1]
    if owners.get(leads_from) != session:
        whose = "the twin's, another session's" if leads_from == twin else f"session {owners.get(leads_from) or 0:#x}"
        raise Broken("lost-create", f"after a lost reply to create, its node deleted and a twin's made with its GUID: "
                     f"it leads from {leads_from or 'no node'} ({whose}), while its own session {session:#x} owns "
                     f"{sum(o == session for o in owners.values())} node(s) in line", ADVICE_TWIN)
    return (f"a twin's node with its GUID, another session's, not adopted: it leads from its own "
            f"(sequence {leads_from[len(leads_from.rstrip('0123456789')):] or '?'}), not the twin's ({TWIN_SEQ})")


def lost_create(lab: Lab, found: Findings) -> None:
    chroot, twin_root = lab.namespace(), lab.namespace()
    admin, twin_admin = lab.client(chroot), lab.client(twin_root)
    admin.ensure_path(PATH)
    twin_admin.ensure_path(PATH)
    planted: list[str] = []
    twin_tap = lab.tap()
    twin_tap.on_reply_lost = lambda: plant_twin(twin_admin, planted)
    election = lose_create(lab, chroot, "lonely", lab.tap())
    forked = lose_create(lab, twin_root, "forked", twin_tap)
    vanished = path_gone_after_lost_create(lab)
    if not planted or planted[0].startswith("! "):
        raise Broken("lost-create", f"the checker could not plant the twin's node: {planted[0][2:] if planted else ''}",
                     "start() must create one election node, with the GUID as the first field of its name.")
    leads_after_lost_create(election, admin)
    nodes = len(admin.get_children(PATH))
    if nodes != 1:
        raise Broken("lost-create", f"after a lost reply to create: {nodes} nodes for one candidate",
                     f"An orphan node holds up everyone behind it until the session ends. Look for your GUID "
                     f"before creating again: {ADVICE_ORPHAN}")
    leads_after_lost_create(forked, twin_admin)
    twin = judge_twin(forked, twin_admin, planted[0])
    wait_for(lambda: vanished.is_leader, REACT, "lost-create", "after a lost reply to create, the election path "
             f"was deleted (rm -r) before the candidate looked for its node: it did not lead within {REACT:.0f} s",
             "Looking for your node after a lost reply finds no election path at all when someone deleted it: "
             "that means no node of yours (None), not an error; then create it again (makepath). Look at "
             "LeaderElection._find_own_node.")
    election.resign()
    wait_for(lambda: not admin.get_children(PATH), REACT, "lost-create",
             "resign() left a node behind", "resign() must delete the candidate's node.")
    found.hold("lost-create", f"1 node after a lost reply to create, found by its GUID; it leads; {twin}; with the "
               "path deleted meanwhile, it made it again and led")


def path_gone_after_lost_create(lab: Lab) -> object:
    """A candidate whose reply to create is lost while an admin deletes the whole election path, its new node
    with it (on the tap's thread, before the reply is dropped): when it looks for its node, there is no path."""
    root = lab.namespace()
    admin, tap = lab.client(root), lab.tap()
    admin.ensure_path(PATH)

    def wipe() -> None:  # on the tap's thread: what fails here shows as the candidate not leading
        with contextlib.suppress(Broken, KazooException):
            delete_path(admin)
    tap.on_reply_lost = wipe
    return lose_create(lab, root, "vanished", tap)


# ---------------------------------------------------------------- a leader whose connection drops

# The dropped leader's session: long, so that its lease (LEASE_FRACTION of it: 4 s) dwarfs how soon kazoo
# says SUSPENDED on a reset connection (milliseconds), and the session outlives the cut and the reconnect.
SUSPEND_SESSION = 6.0
# A leader must stop acting this soon after its connection is reset: generous for a loaded machine, and far
# below what is left of its lease then (at least 3 s, as it renews every quarter lease), which is all that
# stops a leader that ignores SUSPENDED. We wait no longer: the check's budget has no seconds to spare.
AT_ONCE = 1.0
# How long the link stays cut: past a leader's renewal period (a quarter lease, 1 s) with room, so a thread that
# only wakes on its timer has found the connection gone and gone back to sleep; well within the session.
CUT_FOR = 1.5

ADVICE_SUSPENDED = ("Kazoo says SUSPENDED as soon as the connection drops: from then on ZooKeeper may expire the "
                    "session and elect the next candidate at any moment, and you cannot know when. Stop acting "
                    "at once; the lease is only the margin for when SUSPENDED comes late. Look at "
                    "LeaderElection._on_connection_change (SUSPENDED).")
ADVICE_RECONNECTED = ("A connection back within the session timeout keeps the session, and so the node: kazoo says "
                      "CONNECTED, and nothing else makes a leader look again (no watch fires for the first in line). "
                      "Wake the election's thread on every state change: LeaderElection._on_connection_change.")

ADVICE_FORGOT = ("A dropped connection is not a lost session: until LOST, the node is ours and first in line. A "
                 "candidate that forgets it on SUSPENDED joins again behind its own node, which lives on with the "
                 "session, and waits for ever. Look at LeaderElection._on_connection_change: only LOST forgets it.")


def heard_suspended(client: KazooClient) -> list[float]:
    """When kazoo says SUSPENDED on `client` from now on (its own listener: not the recipe's word)."""
    heard: list[float] = []
    client.add_listener(lambda state: heard.append(time.monotonic()) if state == KazooState.SUSPENDED else None)
    return heard


def acted_after(sampler: LeaderSampler, leader: object, since: float, bound: float) -> float:
    """How long `leader` went on acting after `since`, as sampled; inf if it still acted `bound` s later."""
    def stopped() -> float | None:
        at = sampler.stopped(leader.name)
        return at if at is not None and at >= since and not leader.is_leader else None
    with contextlib.suppress(Broken):
        return wait_for(stopped, max(0.0, since + bound - time.monotonic()), "suspended", "", "") - since
    return float("inf")


def suspended(lab: Lab, found: Findings) -> None:
    chroot, sampler, proxy = lab.namespace(), lab.sampler(), lab.proxy()
    leader = candidate(lab, chroot, "c0", sampler, timeout=SUSPEND_SESSION, via=proxy.address)
    wait_for(lambda: leader.is_leader, REACT, "suspended", "the first candidate did not lead",
             "A lone candidate must lead.")
    follower = join_in_turn(lab, chroot, ["c1"], sampler, "suspended")[0]
    node, epoch = leader.node_path, leader.epoch
    lease = lab.script.LEASE_FRACTION * SUSPEND_SESSION
    late = stops_at_once(sampler, leader, proxy)
    healed_at = time.monotonic()
    wait_for(lambda: leader.client.connected, 2 * REACT, "suspended",
             f"c0 did not reconnect within {2 * REACT:.0f} s of the link healing", "")
    try:
        wait_for(lambda: leader.is_leader and (sampler.started("c0") or 0.0) >= healed_at, REACT, "suspended", "", "")
    except Broken:
        nodes = len(nodes_of(lab.client(chroot), lab.script).get("c0", []))
        raise Broken("suspended", f"c0 stopped {late * 1000:.0f} ms after its connection was reset, but did not "
                     f"lead again within {REACT:.0f} s of reconnecting, though its session and its node lived on"
                     + (f"; it holds {nodes} election nodes (its old one lives on with its session)" if nodes > 1
                        else ""), ADVICE_FORGOT if nodes > 1 else ADVICE_RECONNECTED) from None
    judge_suspended(found, sampler, [leader, follower], f"{late * 1000:.0f} ms after its connection was reset (its "
                    f"lease: {lease:.2f} s), and led again {sampler.started('c0') - healed_at:.2f} s after the link "
                    "healed", leader.node_path == node and leader.epoch == epoch)


def stops_at_once(sampler: LeaderSampler, leader: object, proxy: object) -> float:
    """Cut the leader's link for CUT_FOR, then heal it; how soon it stopped acting. Too late: fail at once."""
    heard = heard_suspended(leader.client)
    cut_at = time.monotonic()
    proxy.cut()  # a reset: kazoo hears of it at once, unlike a black hole
    late = acted_after(sampler, leader, cut_at, AT_ONCE)
    if late > AT_ONCE:
        proxy.heal()  # so that the lab's resigns reach ZooKeeper
        said = f"though kazoo said SUSPENDED {(heard[0] - cut_at) * 1000:.0f} ms after it" if heard else \
            "(kazoo did not say SUSPENDED either)"
        raise Broken("suspended", f"c0 still led {AT_ONCE:.1f} s after its connection was reset, {said}",
                     ADVICE_SUSPENDED)
    time.sleep(max(0.0, cut_at + CUT_FOR - time.monotonic()))  # the drop lasts a while, as real ones do
    proxy.heal()
    return late


def judge_suspended(found: Findings, sampler: LeaderSampler, elections: list[object], when: str, same: bool) -> None:
    most, figure = overlap_figure(sampler, elections)
    ok = same and most == 1 and sampler.started("c1") is None
    found.judge("suspended", ok,
                f"c0 stopped {when}, with the same node (its session lived); c1 never led" if ok else
                f"c0 led again after the link healed, with another node or epoch, though its session lived; {figure}"
                if not same else f"c1 led while c0's session and node lived on; {figure}",
                ADVICE_FORGOT)


# ---------------------------------------------------------------- a partitioned leader, fenced

def judge_partition(found: Findings, sampler: LeaderSampler, old: object, rest: list[object], new: object) -> None:
    most, figure = overlap_figure(sampler, [old, *rest])
    stopped, started = sampler.stopped(old.name), sampler.started(new.name)
    gap = started - stopped if stopped is not None and started is not None else None
    ok = most == 1 and old.is_leader is False and gap is not None and gap > 0
    found.judge("partition", ok,
                f"the partitioned leader stopped {gap:.2f} s before {new.name} started; {figure}" if ok else
                f"the partitioned leader went on leading {sampler.together:.2f} s after {new.name} started, until "
                f"the link healed; {figure}",
                "Cut off from ZooKeeper, a leader cannot know whether its session lives on. It must stop on "
                "SUSPENDED and, as SUSPENDED comes late, when its lease (2/3 of a session after ZooKeeper's "
                "last answer) runs out. Look at LeaderElection._on_connection_change (SUSPENDED) and "
                "LeaderElection._renew_lease (the lease).")


def partition(lab: Lab, found: Findings, fault: str = "blackhole") -> None:
    chroot, sampler, proxy = lab.namespace(), lab.sampler(), lab.proxy()
    old = candidate(lab, chroot, "old", sampler, timeout=SHORT_SESSION, via=proxy.address)
    wait_for(lambda: old.is_leader, REACT, "partition", "the first candidate did not lead",
             "A lone candidate must lead.")
    rest = join_in_turn(lab, chroot, ["c1", "c2"], sampler, "partition")
    token = old.token
    ledger_of(lab.client(chroot), token, "before the partition")

    getattr(proxy, fault)()
    new = sole_leader(rest, "partition", bound=SHORT_SESSION + 2 * REACT)
    time.sleep(AFTER_ELECTION)  # the partition lasts a little past the election, as real ones do
    proxy.heal()
    try:
        wait_for(lambda: old.client.connected, 2 * REACT, "stale-write",
                 "the old leader did not reconnect after the partition healed", "")
    finally:  # judged once the old leader has heard its session is gone: any overlap is over by then
        judge_partition(found, sampler, old, rest, new)
    wait_for(lambda: old.participants()[-1:] == ["old"] and not old.is_leader, 2 * REACT, "rejoin",
             f"after its session expired, the old leader did not rejoin within {2 * REACT:.0f} s",
             "LOST means the session and its node are gone: forget the node and join again as a new "
             "candidate. Look at LeaderElection._on_connection_change (LOST).")
    found.hold("rejoin", "after its session expired, the old leader rejoined last in line")
    late_write(lab, found, chroot, old, new, token)  # last: fenced_write (step 6) comes after the steps above
    if found.verdicts["partition"].ok:
        both_held(lab, found)


def both_held(lab: Lab, found: Findings) -> None:
    """The held renewal and the held claim side by side: each in a chroot of its own, each waiting out a
    session, so together they take as long as one. The claim's verdict joins partition's."""
    claim = Findings({"partition": Verdict("partition", True, "")})
    aside = threading.Thread(target=run_aside, args=(held_claim, lab, claim), name="held-claim", daemon=True)
    aside.start()
    held_renewal(lab, found)
    aside.join(2 * REACT + HOLD + RENEWAL_SESSION + 1.0)   # its waits, added up
    mine, theirs = found.verdicts["partition"], claim.verdicts["partition"]
    if aside.is_alive():
        found.fail("partition", "a candidate whose claiming read was held did not finish its turn", ADVICE_CLAIM)
    elif mine.ok and not theirs.ok:
        found.verdicts["partition"] = theirs
    elif mine.ok:
        mine.figure += theirs.figure


def run_aside(step: Callable[[Lab, Findings], None], lab: Lab, found: Findings) -> None:
    """A step of a scenario on a thread of its own: what run_check does for the scenario's thread."""
    try:
        step(lab, found)
    except Broken as broken:
        found.verdicts[broken.verdict.key] = broken.verdict
    except Exception as exc:  # the learner's code may raise anything: a finding, not our crash
        lab.errors.note(exc)
        found.fail("partition", f"{type(exc).__name__}: {exc}", "")


def ledger_of(admin: KazooClient, token: object, value: str) -> None:
    """The ledger as the old leader would leave it (the record fenced_write's stub names). The checker writes
    it, not fenced_write: partition and rejoin are judged before fenced_write (step 6) is written."""
    admin.create(LEDGER, json.dumps({"epoch": token.epoch, "leader": token.leader, "value": value}).encode())


STALE = "a stale leader's late write"
ADVICE_FENCE = ("A leader can pause right after checking that it leads; only ZooKeeper can tell that its session "
                "ended. Put check(election node) in the write's transaction: fenced_write.")
ADVICE_UNTOLD = ("A failed transaction does not raise: commit() answers each operation with a result or an "
                 "exception, and the check's answer says the election node is gone. Raise NotLeaderError then, or "
                 "the caller goes on as the leader, believing its write is in. Look at fenced_write.")


def late(lab: Lab, old: object, token: object, ledger: str) -> tuple[object, bool]:
    """The deposed leader's fenced_write of STALE to `ledger` with its old token: (what it returned, refused?)."""
    try:
        return lab.script.fenced_write(old.client, token, ledger, STALE), False
    except lab.script.NotLeaderError:
        return None, True


def late_write(lab: Lab, found: Findings, chroot: str, old: object, new: object, token: object) -> None:
    """The deposed leader writes with its old token: ZooKeeper must reject it, and the recipe refuse it."""
    # The late write comes before the new leader's first one: the ledger still holds the old epoch, so
    # only ZooKeeper's check of the election node can tell that this leader was deposed. (A script that
    # compares epochs itself, on the client, would let it through.)
    answer, refused = late(lab, old, token, LEDGER)
    admin = lab.client(chroot)
    if STALE.encode() in admin.get(LEDGER)[0]:  # what ZooKeeper did, read from the ledger, not from the answer
        found.fail("stale-write", f"ZooKeeper accepted the deposed leader's write with its old epoch "
                   f"{token.epoch}, after the new leader (epoch {new.epoch}) was elected: the ledger holds it"
                   + (" (fenced_write raised NotLeaderError after it was in)" if refused else ""), ADVICE_FENCE)
    elif not refused:
        found.fail("stale-write", f"ZooKeeper rejected the deposed leader's write (the ledger kept its record of "
                   f"before), but fenced_write returned {answer!r} instead of raising NotLeaderError: its caller "
                   "believes the write is in", ADVICE_UNTOLD)
    elif late_create(lab, found, admin, old, token):
        refused_by_recipe(lab, found, admin, old, new, token)
        if found.verdicts["stale-write"].ok:
            another_writer(lab, found, chroot, new.token)


# A ledger nobody has written yet: the deposed leader's write would create it.
FRESH = "/ledger-fresh"


def late_create(lab: Lab, found: Findings, admin: KazooClient, old: object, token: object) -> bool:
    """The deposed leader writes a ledger that does not exist yet: the create must be fenced like a set."""
    answer, refused = late(lab, old, token, FRESH)
    if admin.exists(FRESH) is not None:
        found.fail("stale-write", f"ZooKeeper let the deposed leader (epoch {token.epoch}) create a ledger nobody had "
                   "written yet", "The first write creates the ledger, and a deposed leader may be the one to make it: "
                   "the create goes in the same transaction as check(election node), like a set_data. Look at "
                   "fenced_write.")
    elif not refused:
        found.fail("stale-write", f"ZooKeeper refused the deposed leader's create of a new ledger, but fenced_write "
                   f"returned {answer!r} instead of raising NotLeaderError", ADVICE_UNTOLD)
    return found.verdicts.get("stale-write") is None


def refused_by_recipe(lab: Lab, found: Findings, admin: KazooClient, old: object, new: object,
                      token: object) -> None:
    """fenced_set refuses a candidate that no longer leads; the new leader's write goes in."""
    try:
        old.fenced_set(LEDGER, "through the recipe")
    except lab.script.NotLeaderError:
        version = new.fenced_set(LEDGER, "from the new leader")
        data, stat = admin.get(LEDGER)
        if b"from the new leader" in data and version != stat.version:
            return found.fail("stale-write", f"the new leader's write went in, but fenced_write returned version "
                              f"{version!r}, where ZooKeeper holds the ledger at version {stat.version}",
                              "fenced_write returns the ledger's new version, as ZooKeeper's answer to the "
                              "transaction gives it (the set_data result's stat), not the version read before. "
                              "Look at fenced_write.")
        found.judge("stale-write", b"from the new leader" in data,
                    f"stale write rejected by ZooKeeper (epoch {token.epoch}, after epoch {new.epoch} "
                    "was elected), and its create of a new ledger too", "The ledger lost the new leader's write.")
    else:
        found.fail("stale-write", "the deposed leader's fenced_set was accepted",
                   "Only the leader may write: fenced_set must refuse unless is_leader holds.")


# What another writer (an operator, a tool) puts in the ledger between fenced_write's read and its commit.
OTHER = json.dumps({"epoch": -1, "leader": "another writer", "value": "written meanwhile"}).encode()
ADVICE_CAS = ("The ledger changed after fenced_write read it, and the commit wrote over the change unseen. Make the "
              "write conditional on what you read: set_data(ledger, record, version=stat.version) in the "
              "transaction, and NotLeaderError when ZooKeeper refuses it. Look at fenced_write.")


def another_writer(lab: Lab, found: Findings, chroot: str, token: object) -> None:
    """The leader writes while another writer changes the ledger between fenced_write's read and its commit
    (the commit held on the wire): ZooKeeper must refuse the commit, and fenced_write raise NotLeaderError."""
    tap, admin = lab.tap(), lab.client(chroot)
    writer = lab.client(chroot, via=tap.address)
    tap.hold_next(MULTI)
    outcome: list[object] = []

    def write() -> None:
        try:
            outcome.append(lab.script.fenced_write(writer, token, LEDGER, "over another's"))
        except Exception as exc:  # noqa: BLE001 - the learner's fenced_write may raise anything: the outcome
            outcome.append(exc)

    thread = threading.Thread(target=write, name="fenced-write", daemon=True)
    thread.start()
    try:
        wait_for(tap.held.is_set, REACT, "stale-write", "fenced_write sent no transaction to ZooKeeper", ADVICE_FENCE)
        admin.set(LEDGER, OTHER)
    finally:
        tap.release()
    thread.join(REACT + SESSION_TIMEOUT)
    said = repr(outcome[0]) if outcome and not isinstance(outcome[0], Exception) else \
        type(outcome[0]).__name__ if outcome else "nothing: it did not return"
    if admin.get(LEDGER)[0] != OTHER:
        found.fail("stale-write", "the ledger changed after fenced_write read it, and its commit wrote over that "
                   f"change (fenced_write gave {said})", ADVICE_CAS)
    elif not outcome or not isinstance(outcome[0], lab.script.NotLeaderError):
        found.fail("stale-write", "ZooKeeper refused a commit over a ledger changed since fenced_write read it, but "
                   f"fenced_write gave {said} instead of raising NotLeaderError",
                   "A failed transaction does not raise: commit() answers each operation. Here the election node "
                   "is there (its check answers RolledBackError) and set_data answers BadVersionError: the ledger "
                   "moved since it was read. Raise NotLeaderError for any refused operation, or the caller goes on "
                   "believing its write is in. Look at fenced_write.")
    else:
        found.verdicts["stale-write"].figure += ("; a write over a ledger changed after fenced_write read it was "
                                                 "refused")


# ---------------------------------------------------------------- a renewal answered late, then silence

# The held leader's session: ZooKeeper may expire it this long after it last heard from the leader.
RENEWAL_SESSION = 2.0
# How long the renewal's answer is held: more than the third of a session between a lease (2/3 of one) and the
# expiry, so a lease counted from the answer outlives the session; less than the 3/4 of a lease a renewal waits.
HOLD = 0.425 * RENEWAL_SESSION
PING_XID = -2           # a heartbeat's xid, in the request and in its answer
ADVICE_LEASE = ("ZooKeeper may have heard from the leader last when the question reached it, and expires the "
                "session a session timeout after that: a lease counted from the answer outlives it by as long as "
                "the answer took. Count the lease from the moment you asked. Look at LeaderElection._renew_lease.")


class HeldAnswer(WireTap):
    """A relay that, once armed, lets one read through to ZooKeeper, holds its answer `hold` s, and then
    passes nothing more from the client: ZooKeeper hears no more of the session (its close never reaches
    the client). It answers the client's heartbeats itself, so the client sees no trouble: SUSPENDED comes
    late, and only the lease stops the leader."""

    def __init__(self, target: str, hold: float):
        super().__init__(target)
        self.hold, self.cut, self.heard_at, self._held_xid = hold, False, 0.0, None
        self._arm = False

    def arm(self) -> None:
        self.held.clear()
        self._arm = True

    def heal(self) -> None:
        """Hang up on the client: it reconnects through us to ZooKeeper, which tells it the session is gone."""
        self.cut, self._arm = False, False
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _requests(self, src: socket.socket, dst: socket.socket, data_xids: set[int]) -> None:
        for index, frame in self._frames(src):
            self.last_frame = time.monotonic()  # the scenarios wait for quiet here, as on any tap
            xid, op = request_header(index, frame)
            if self.cut:
                if xid == PING_XID:  # the heartbeat's answer: xid, zxid 0, no error
                    with self._send_lock:
                        self._send(src, (16).to_bytes(4, "big") + frame[4:8] + bytes(12))
                continue
            if self._arm and op in WATCHED_READS and xid is not None and xid >= 0:  # the read a renewal asks
                self._arm, self._held_xid, self.heard_at, self.cut = False, xid, time.monotonic(), True
            if not self._send(dst, frame):
                break
        self._hang_up(src, dst)

    def _replies(self, src: socket.socket, dst: socket.socket, data_xids: set[int]) -> None:
        for index, frame in self._frames(src):
            self.last_frame = time.monotonic()
            if self._held_xid is not None and reply_xid(index, frame) == self._held_xid:
                self._held_xid = None
                self.held.set()
                time.sleep(max(0.0, self.heard_at + self.hold - time.monotonic()))
            with self._send_lock:
                if not self._send(dst, frame):
                    break
        if not self.cut:  # cut off, the client never hears that ZooKeeper closed the connection
            self._hang_up(src, dst)


def held_renewal(lab: Lab, found: Findings) -> None:
    """A renewal answered HOLD s late, then silence: the leader must stop before ZooKeeper may expire it."""
    chroot, sampler = lab.namespace(), lab.sampler()
    tap = HeldAnswer(lab.zk_address, HOLD)
    lab.on_close(tap.close)
    leader = candidate(lab, chroot, "held", sampler, timeout=RENEWAL_SESSION, via=tap.address)
    wait_for(lambda: leader.is_leader, REACT, "partition", "a lone candidate did not lead",
             "A lone candidate must lead.")
    session = leader.client._session_timeout / 1000.0  # as ZooKeeper granted it
    tap.arm()
    wait_for(tap.held.is_set, REACT, "partition", f"the leader asked ZooKeeper nothing for {REACT:.0f} s",
             "A leader renews its lease by asking ZooKeeper: look at LeaderElection._renew_lease.")
    try:
        wait_for(lambda: (sampler.stopped("held") or 0) > tap.heard_at, session + REACT, "partition", "", "")
    except Broken:
        found.fail("partition", f"a leader whose renewal was answered {HOLD:.2f} s late, and that ZooKeeper heard "
                   f"no more from, still led {session + REACT:.1f} s later", ADVICE_LEASE)
        return
    finally:
        tap.heal()
    acted = sampler.stopped("held") - tap.heard_at
    judge_held(lab, found, sampler, acted, session, ADVICE_LEASE,
               f"a renewal answered {HOLD:.2f} s late, then silence: the leader stopped {acted:.2f} s after "
               "ZooKeeper last heard from it")


def judge_held(lab: Lab, found: Findings, sampler: LeaderSampler, acted: float, session: float, advice: str,
               figure: str) -> None:
    """A leader whose answer was held, then silenced, must have stopped `acted` s after it asked, within the
    `session` after which ZooKeeper may expire it; failing, the lanes shown are its."""
    if acted < session:
        found.verdicts["partition"].figure += f"; {figure}, {session - acted:.2f} s before it could expire the session"
        return
    found.fail("partition", f"{figure}, {acted - session:.2f} s past the moment ZooKeeper could expire its session "
               f"({session:.1f} s)", advice)
    lab.samplers.insert(0, lab.samplers.pop(lab.samplers.index(sampler)))


ADVICE_CLAIM = ("The read that makes you leader is a question too: ZooKeeper may have heard from you last when it "
                "reached it, and a lease counted from its answer outlives the session by as long as the answer "
                "took. Take the time before you sync and read the children, and claim with it. Look at "
                "LeaderElection._check_position.")


def held_claim(lab: Lab, found: Findings) -> None:
    """The read that makes a candidate leader is answered HOLD s late, then silence: it must stop before
    ZooKeeper may expire it, counted from when it asked, not from the answer."""
    chroot, sampler = lab.namespace(), lab.sampler()
    first = candidate(lab, chroot, "first", sampler, timeout=RENEWAL_SESSION)
    wait_for(lambda: first.is_leader, REACT, "partition", "a lone candidate did not lead",
             "A lone candidate must lead.")
    tap = HeldAnswer(lab.zk_address, HOLD)
    lab.on_close(tap.close)
    heir = candidate(lab, chroot, "heir", sampler, timeout=RENEWAL_SESSION, via=tap.address)
    admin = lab.client(chroot)
    wait_for(lambda: len(admin.get_children(PATH)) == 2 and time.monotonic() - tap.last_frame > QUIET, REACT,
             "partition", "a second candidate did not join", "start() must join the election.")
    session = heir.client._session_timeout / 1000.0
    tap.arm()   # the heir's next read is the one that makes it leader
    first.resign()
    try:
        wait_for(lambda: heir.is_leader, REACT + HOLD, "partition", "", "")
        wait_for(lambda: (sampler.stopped("heir") or 0) > tap.heard_at, session + REACT, "partition", "", "")
    except Broken:
        what = (f"was still leading {session + REACT:.1f} s later" if sampler.started("heir") else
                f"did not lead within {REACT + HOLD:.1f} s")
        found.fail("partition", f"a candidate whose claiming read was answered {HOLD:.2f} s late {what}",
                   ADVICE_CLAIM)
        return
    finally:
        tap.heal()
    acted = sampler.stopped("heir") - tap.heard_at
    judge_held(lab, found, sampler, acted, session, ADVICE_CLAIM,
               f"a claiming read answered {HOLD:.2f} s late: the heir stopped {acted:.2f} s after it asked")


# ---------------------------------------------------------------- a predecessor that leaves between two reads

ADVICE_RACE = ("exists() on a node that is already gone returns None and sets a watch for its creation, which "
               "never fires: the candidate waits for nothing. When the predecessor is gone, read the children "
               "again at once. Look at LeaderElection._check_position.")


def join_held(lab: Lab, chroot: str, sampler: LeaderSampler, tap: WireTap, admin: KazooClient, name: str,
              queue: int) -> tuple[object, bool]:
    """A candidate `name` that joins through `tap`, its look at its predecessor held right after it read the
    children; or (one that never looks after reading them) settled in line, the queue `queue` long. The
    candidate, and whether its look was held."""
    tap.hold_after_children()
    joined = candidate(lab, chroot, name, sampler, via=tap.address)
    wait_for(lambda: tap.held.is_set() or (time.monotonic() - tap.last_frame > QUIET
                                           and len(admin.get_children(PATH)) == queue), REACT, "handover-race",
             f"{name} did not join the election", "start() must join the election.")
    return joined, tap.held.is_set()


def handover_race(lab: Lab, found: Findings) -> None:
    chroot, sampler, tap = lab.namespace(), lab.sampler(), lab.tap()
    admin = lab.client(chroot)
    first = join_in_turn(lab, chroot, ["c0"], sampler, "handover-race")[0]
    sole_leader([first], "handover-race")
    second, held = join_held(lab, chroot, sampler, tap, admin, "c1", 2)
    first.resign()
    try:
        wait_for(lambda: len(admin.get_children(PATH)) == 1, REACT, "handover-race",
                 f"c0 resigned, but its node was still there {REACT:.0f} s later",
                 "resign() must delete the candidate's node.")
    finally:
        released = time.monotonic()
        tap.release()
    how = "between c1's two reads (its next request held on the wire)" if held else "while c1 waited"
    try:
        wait_for(lambda: second.is_leader, REACT, "handover-race", "", "")
    except Broken:
        raise Broken("handover-race", f"c0 left {how}; c1 did not lead within {REACT:.0f} s: it waits for a "
                     "watch that will never fire", ADVICE_RACE) from None
    took = time.monotonic() - released
    most, figure = overlap_figure(sampler, [first, second])
    if found.judge("handover-race", most == 1, f"c0 left {how}; c1 led {took * 1000:.0f} ms later; {figure}",
                   ADVICE_TWO_LEADERS):
        middle_race(lab, found, chroot, second, sampler, f"c0 left {how}; c1 led {took * 1000:.0f} ms later")


ADVICE_MIDDLE_RACE = ("A predecessor that is gone when you look at it does not make you first: someone may still be "
                      "ahead of it. Read the children again and lead only if your node is first; else watch the "
                      "node now just before yours. Look at LeaderElection._check_position.")


def middle_race(lab: Lab, found: Findings, chroot: str, leader: object, sampler: LeaderSampler, before: str) -> None:
    """`leader` leads, c2 waits behind it, and c3's look at c2 is held on the wire while c2 leaves: c3 must read
    the queue again and wait behind the leader (c2 gone does not make c3 first), then lead once the leader goes."""
    admin, tap = lab.client(chroot), lab.tap()
    middle = candidate(lab, chroot, "c2", sampler)
    wait_for(lambda: len(admin.get_children(PATH)) == 2, REACT, "handover-race", "c2 did not join the election",
             "start() must join the election.")
    last, held = join_held(lab, chroot, sampler, tap, admin, "c3", 3)
    how = "between c3's two reads" if held else "while c3 waited"
    middle.resign()
    try:
        wait_for(lambda: len(admin.get_children(PATH)) == 2, REACT, "handover-race",
                 f"c2 resigned, but its node was still there {REACT:.0f} s later", "resign() must delete its node.")
    finally:
        tap.release()
    end, led = time.monotonic() + TEMPTATION, False   # c3, told its predecessor is gone, may take it for its election
    while time.monotonic() < end:   # the whole window: the lanes then show how long two led
        led = led or last.is_leader
        time.sleep(0.005)
    if led:
        raise Broken("handover-race", f"{before}; then c2, in the middle, left {how}, and c3 led "
                     f"while {leader.name} still led", ADVICE_MIDDLE_RACE)
    leader.resign()
    try:
        wait_for(lambda: last.is_leader, REACT, "handover-race", "", "")
    except Broken:
        raise Broken("handover-race", f"{before}; then c2 left {how} and c3 stayed in line, but did "
                     f"not lead within {REACT:.0f} s of {leader.name} leaving: it watched nothing",
                     ADVICE_MIDDLE_RACE) from None
    most, figure = overlap_figure(sampler, [leader, middle, last])
    found.judge("handover-race", most == 1, f"{before}; c2 left the middle {how}: c3 stayed behind "
                f"{leader.name}, and led when it left; {figure}", ADVICE_TWO_LEADERS)


# ---------------------------------------------------------------- a node deleted from outside

ADVICE_DELETED = ("A candidate whose node was deleted while its session lives (zkCli's delete, a clean-up "
                  "script) is no longer in the queue, and nothing else will put it back. When your node is "
                  "missing from the children, stop leading and join again with a new node: look at "
                  "LeaderElection._check_position.")


def nodes_of(admin: KazooClient, script: object) -> dict[str, list[str]]:
    """name -> the election nodes ZooKeeper holds for it now."""
    found: dict[str, list[str]] = {}
    for child in admin.get_children(PATH):
        parsed = script.parse_candidate(child)
        found.setdefault(parsed.name if parsed else child, []).append(child)
    return found


def deleted_node(lab: Lab, found: Findings) -> None:
    chroot, sampler = lab.namespace(), lab.sampler()
    admin = lab.client(chroot)
    c0, c1, c2 = elections = join_in_turn(lab, chroot, ["c0", "c1", "c2"], sampler, "deleted-node")
    sole_leader(elections, "deleted-node")
    old = {e.name: nodes_of(admin, lab.script).get(e.name, []) for e in elections}
    admin.delete(f"{PATH}/{old['c1'][0]}")    # a waiting candidate's node, then the leader's
    drain(elections)
    deleted_at = time.monotonic()
    admin.delete(f"{PATH}/{old['c0'][0]}")
    wait_rejoined(admin, lab.script, old, c2)
    lease = lab.script.LEASE_FRACTION * SESSION_TIMEOUT
    # c2 may lead before c0 notices (ZooKeeper deleted the node, not the session): give c0 its whole lease
    # to stop, as sampled, before judging; a leader that acts on past it fails.
    with contextlib.suppress(Broken):
        wait_for(lambda: sampler.stopped("c0") is not None and not c0.is_leader,
                 max(0.0, deleted_at + lease + 0.25 - time.monotonic()), "deleted-node", "", "")
    stopped = sampler.stopped("c0")
    late = (stopped - deleted_at) if stopped is not None else float("inf")
    twice = sorted(n for n, nodes in nodes_of(admin, lab.script).items() if len(nodes) > 1)
    ok = late <= lease + 0.05 and not twice and not c0.is_leader
    if found.judge("deleted-node", ok,
                   f"c1 and c0 (the leader) joined again with new nodes; c0 stopped acting {late:.2f} s after its "
                   f"node was deleted (lease {lease:.2f} s); one node per candidate" if ok else
                   f"{', '.join(twice)} held two nodes at once" if twice else
                   f"the deleted leader acted on {late:.2f} s after its node was deleted (its lease: {lease:.2f} s)",
                   ADVICE_GONE):
        deleted_path(lab, found, admin, sampler, elections)


ADVICE_GONE = ("A leader whose node is gone must stop by its next renewal: LeaderElection._renew_lease asks "
               "whether the node still exists, and LeaderElection._check_position joins again.")


def deleted_path(lab: Lab, found: Findings, admin: KazooClient, sampler: LeaderSampler, elections: list) -> None:
    """The whole election path deleted (rm -r by hand): the leader, its node gone with it, must stop by its next
    renewal, not run out its lease reading a path that is no more; then the candidates make it again, and lead."""
    try:
        leader = sole_leader(elections, "deleted-node")
    except Broken:
        return  # not one leader to delete the path under (a break that claims on any watch): judged above
    renewal = lab.script.LEASE_FRACTION * lab.script.RENEW_FRACTION * SESSION_TIMEOUT
    deleted_at = delete_path(admin)
    with contextlib.suppress(Broken):
        wait_for(lambda: not leader.is_leader, renewal + SLIP, "deleted-node", "", "")
    sampler.settle()
    late = (sampler.stopped(leader.name) or time.monotonic()) - deleted_at
    if late > renewal + SLIP:
        return found.fail("deleted-node", f"the election path was deleted: {leader.name}, leading, acted on "
                          f"for {late:.2f} s and more (a renewal comes every {renewal:.2f} s)", ADVICE_GONE)
    # Someone leads again on the path made anew; how many at once is judged by the scenarios above (a break that
    # claims on every watch makes it a coin toss here).
    wait_for(lambda: any(e.is_leader for e in elections), 2 * REACT, "deleted-node",
             f"after the election path was deleted, no candidate led within {2 * REACT:.0f} s",
             "Candidates whose node went with the path must join again: the create makes the path anew.")
    found.verdicts["deleted-node"].figure += (f"; the whole election path deleted: {leader.name} stopped "
                                              f"{late:.2f} s later, and the candidates made it again")


def delete_path(admin: KazooClient) -> float:
    """Delete PATH and every node under it in one transaction (all at one instant, as rm -r cannot: it deletes
    one by one, and on a loaded machine that takes long enough to blur when the leader's node went); again
    if a candidate joined meanwhile. Returns when the transaction that did it was sent."""
    for _ in range(10):
        sent = time.monotonic()
        tx = admin.transaction()
        for child in admin.get_children(PATH):
            tx.delete(f"{PATH}/{child}")
        tx.delete(PATH)
        if not any(isinstance(result, Exception) for result in tx.commit()):
            return sent
    raise Broken("deleted-node", "the election path could not be deleted: candidates kept joining under it", "")


def wait_rejoined(admin: KazooClient, script: object, old: dict[str, list[str]], next_leader: object) -> None:
    """Wait until c0 and c1 hold new nodes and the next in line leads; else fail, naming who did not rejoin."""
    def rejoined() -> bool:
        now = nodes_of(admin, script)
        return all(now.get(n) and now[n][0] not in old[n] for n in ("c0", "c1")) and next_leader.is_leader
    try:
        wait_for(rejoined, REACT, "deleted-node", "", "")
    except Broken:
        now = nodes_of(admin, script)
        lost = [n for n in ("c0", "c1") if not now.get(n) or now[n][0] in old[n]]
        raise Broken("deleted-node", f"{', '.join(lost) or 'nobody'} did not join again within {REACT:.0f} s of "
                     f"its node's deletion{'' if next_leader.is_leader else f'; {next_leader.name} does not lead'}",
                     ADVICE_DELETED) from None


# ---------------------------------------------------------------- a leader behind an isolated follower

# Shorter than the time an isolated follower keeps serving reads (syncLimit x tickTime = 2.5 s on the
# lab's servers), so ZooKeeper expires the leader's session while that follower still answers it.
ISOLATED_SESSION = 1.5
# The lab's servers: a follower that hears nothing from the ZooKeeper leader for syncLimit (10 ticks of
# 250 ms) gives up and drops its clients; until then its reads are stale.
FOLLOWER_GIVES_UP = 10 * 0.25


# How long the two servers left may take past a session's expiry to expire it and tell the next in line: on a
# loaded machine they can lose their quorum for a moment and elect a ZooKeeper leader again (a CI run saw no
# expiry for 3.4 s of a 1.5 s session), and a new ZooKeeper leader gives every session its full timeout again.
QUORUM_SLOW = 2 * REACT

# A candidate on the isolated follower in an election of its own, told late that its predecessor left: its
# session is short, so ZooKeeper expires it and elects the next one well before the follower gives up.
LATE_SESSION = 1.0

ADVICE_ISOLATED = ("A follower cut off from its peers keeps answering reads from its stale copy for a while, long "
                   "after ZooKeeper expired the leader's session. A read that renews a lease or makes a leader must "
                   "follow a sync(), which only the ZooKeeper leader can answer: look at LeaderElection._sync, "
                   "and at LeaderElection._renew_lease, whose lease must run out while no fresh answer comes.")
ADVICE_STALE_LOOK = ("Told that its predecessor left, a candidate reads the queue to see whether it leads. From a "
                     "follower cut off from its peers that read shows a world that has moved on: its own session "
                     "expired, and the next candidate leads. Sync before that read: LeaderElection._check_position "
                     "calls LeaderElection._sync first. And never lead on the notification alone: "
                     "LeaderElection._predecessor_changed only wakes the thread.")


def isolated_follower(lab: Lab, found: Findings) -> None:
    try:
        cluster = lab.ensemble()
    except RuntimeError as exc:  # a port another program took meanwhile, a JVM that would not start
        raise Broken("isolated-follower", f"not judged: {exc}", "This says nothing about your script: the check's "
                     "3-server ZooKeeper did not start. Run the check again.") from None
    sampler, late_sampler = lab.sampler(), lab.sampler()
    lab.on_close(cluster.heal_peers)
    follower, old, rest = leader_on_a_follower(lab, cluster, sampler)
    tap, late, last = told_late(lab, cluster, follower, late_sampler)
    isolated = time.monotonic()
    cluster.isolate(follower.sid, how="blackhole")
    if late is not None:
        wait_for(lambda: last.is_leader, LATE_SESSION * 2 + QUORUM_SLOW, "isolated-follower",
                 "q did not lead after w's server was cut off and its session expired",
                 "When a session expires, the next in line must lead: LeaderElection._check_position.")
        tap.release()  # w hears now that p left, while its server still answers from its stale copy
    new = wait_for(lambda: next((e for e in rest if e.is_leader), None), ISOLATED_SESSION * 2 + QUORUM_SLOW,
                   "isolated-follower", "no candidate led after the leader's server was cut off",
                   "When the leader's session expires, the next in line must lead: LeaderElection._check_position.")
    # Sample on while the follower could still answer c0 and w from its stale copy: until it gives up.
    wait_for(lambda: follower.mode() is None and not old.client.connected and (late is None or
                                                                             not late.client.connected),
             FOLLOWER_GIVES_UP + ISOLATED_SESSION, "isolated-follower", "the isolated follower kept serving", "",
             interval=0.05)
    if judge_isolated(found, sampler, old, rest, new, isolated) and late is not None:
        judge_told_late(lab, found, late_sampler, [late, last])


def judge_isolated(found: Findings, sampler: LeaderSampler, old: object, rest: list[object], new: object,
                   isolated: float) -> bool:
    most, figure = overlap_figure(sampler, [old, *rest])
    stopped, started = sampler.stopped("c0"), sampler.started(new.name)
    gap = started - stopped if stopped is not None and started is not None else None
    ok = most == 1 and gap is not None and gap > 0
    found.judge("isolated-follower", ok,
                f"c0 stopped {stopped - isolated:.2f} s after its server was cut off, {gap:.2f} s before {new.name} "
                "started; 0 s of overlap" if ok else
                f"c0 went on leading {sampler.together:.2f} s after {new.name} started, on reads from a server "
                f"cut off from its peers; {figure}", ADVICE_ISOLATED)
    return ok


def judge_told_late(lab: Lab, found: Findings, sampler: LeaderSampler, elections: list[object]) -> None:
    most, figure = overlap_figure(sampler, elections)
    if most > 1:  # the lanes shown under the failure are this election's
        lab.samplers.remove(sampler)
        lab.samplers.insert(0, sampler)
        found.fail("isolated-follower", f"w, told late that p had left, led beside q on a read from a server cut "
                   f"off from its peers, whose stale copy still showed w first after its session expired; {figure}",
                   ADVICE_STALE_LOOK)
        return
    previous = found.verdicts["isolated-follower"].figure
    found.hold("isolated-follower", f"{previous}; w, told late that p had left, did not lead on that server's "
               "stale copy")


def told_late(lab: Lab, cluster: object, follower: object, sampler: LeaderSampler) -> tuple[object, object, object]:
    """A second election: p leads on a healthy server, w waits behind it on the follower (through a tap), q behind
    w. p resigns, and the notification that tells w is held on the wire. Returns (the tap, w, q); w is None if
    it learnt of p's departure by a read of its own, so that nothing was left to hold."""
    others = [s for s in cluster.servers if s is not follower]
    chroot = f"/check-{time.monotonic_ns()}"
    lab.client(via=others[0].address).ensure_path(chroot)
    tap = lab.tap(target=follower.address)
    first = candidate(lab, chroot, "p", sampler, ISOLATED_SESSION, via=others[0].address)
    wait_for(lambda: first.is_leader, REACT, "isolated-follower", "p did not lead", "A lone candidate must lead.")
    late = candidate(lab, chroot, "w", sampler, LATE_SESSION, via=tap.address)
    wait_for(lambda: tap.watches > 0, REACT, "isolated-follower", "w set no watch on the candidate before it",
             "Each candidate but the first must watch the node just before its own: LeaderElection._check_position.")
    settle(late.client, REACT)  # its watch is in place on the follower: its session's requests are in order
    last = candidate(lab, chroot, "q", sampler, ISOLATED_SESSION, via=others[1].address)
    wait_for(lambda: len(first.participants()) == 3, REACT, "isolated-follower", "w and q did not join",
             "start() must join the election.")
    tap.hold_next_event()
    first.resign()
    wait_for(lambda: tap.held.is_set() or late.is_leader, REACT, "isolated-follower", "w was not told that p left",
             "A candidate must watch the node just before its own: LeaderElection._check_position.")
    if not tap.held.is_set():  # a watch on every child fired for q's join, and w's own read saw p go: no news is
        tap.release()          # left to tell it late, so only the first election is judged
        return tap, None, last
    return tap, late, last


def leader_on_a_follower(lab: Lab, cluster: object, sampler: LeaderSampler) -> tuple[object, object, list[object]]:
    """c0 leading through a ZooKeeper follower, c1 and c2 waiting on the other two servers."""
    follower = next((s for s in cluster.servers if s.mode() == "follower"), None)
    if follower is None:
        raise Broken("isolated-follower", "not judged: the checker's ensemble has no follower",
                     "The checker's 3-server ZooKeeper did not form; run the check again.")
    others = [s for s in cluster.servers if s is not follower]
    chroot = f"/check-{time.monotonic_ns()}"
    lab.client(via=others[0].address).ensure_path(chroot)
    old = candidate(lab, chroot, "c0", sampler, ISOLATED_SESSION, via=follower.address)
    wait_for(lambda: old.is_leader, REACT, "isolated-follower", "the first candidate did not lead",
             "A lone candidate must lead.")
    rest = [candidate(lab, chroot, f"c{i + 1}", sampler, ISOLATED_SESSION, via=s.address) for i, s in enumerate(others)]
    wait_for(lambda: len(old.participants()) == 3, REACT, "isolated-follower", "the others did not join",
             "start() must join the election.")
    return follower, old, rest


# ---------------------------------------------------------------- what `check leader` runs, in order
# In the order of the rules they test (the step order of the lesson), so the first advice printed
# when several fail is about the earliest rule.

ONE_LEADER = Check({"one-leader": "one leader at a time, the first in line"}, one_leader, bound=8)
IN_ORDER = Check({"in-order": "leadership passes down the queue in sequence order"}, in_order, bound=8)
HERD = Check({"no-herd": "a departure wakes only the candidate behind it",
              "middle": "a departure in the middle of the queue elects nobody"}, herd, bound=8)
HANDOVER_RACE = Check({"handover-race": "a predecessor that leaves between the two reads still hands over"},
                      handover_race, bound=6)
DELETED_NODE = Check({"deleted-node": "a candidate whose node is deleted from outside joins again"},
                     deleted_node, bound=6)
PARTITION = Check({"partition": "a partitioned leader stops before the next one starts",
                   "rejoin": "an expired leader rejoins at the back of the queue",
                   "stale-write": "a deposed leader's late write is rejected by ZooKeeper"}, partition, bound=12)
LOST_CREATE = Check({"lost-create": "a lost reply to create leaves no orphan node, and adopts no other session's "
                                     "node"}, lost_create, bound=8)
# Its waits add up to 17 s at their longest (q leads, the next leader, the follower gives up), plus setting up
# two elections: 12 s was overrun on a loaded machine by a script whose _sync does nothing.
ISOLATED_FOLLOWER = Check({"isolated-follower": "a leader behind a follower cut off from its peers stops before "
                                                "the next starts"}, isolated_follower, bound=20,
                          needs_ensemble=True)
SUSPENDED = Check({"suspended": "a leader that loses its connection stops at once, and leads again if its session "
                               "survives"}, suspended, bound=10)
CHECKS = [ONE_LEADER, IN_ORDER, HERD, HANDOVER_RACE, DELETED_NODE, ISOLATED_FOLLOWER, SUSPENDED, PARTITION, LOST_CREATE]
# The step of the lesson that holds each guarantee's rule (the step cut): the order above follows it. The steps
# go from caller to callee (_check_position calls _sync; the leader's loop, _renew_lease), so that with steps
# 1..k written a guarantee of theirs waits at most on step k+1. The lease (step 4) keeps a partitioned leader
# apart too, but "partition" is judged with SUSPENDED and LOST (step 5), in the same scenario as "rejoin".
STEPS = {"one-leader": 1, "in-order": 1, "no-herd": 2, "middle": 2, "handover-race": 2, "deleted-node": 2,
         "isolated-follower": 3, "suspended": 5, "partition": 5, "rejoin": 5, "stale-write": 6, "lost-create": 7}
