"""The leadership lanes: one picture of who led when, shared by the leader demo and the checker.

Rules of the picture:
- one lane per candidate, time left to right, at most PICTURE_WIDTH columns with the names;
- every mark is measured (a candidate's sampled or logged is_leader), never what the recipe believes;
- a column never hides a second leader: anyone leading at the same instant as the column's main
  leader is drawn too, so an overlap always shows; a hand-off inside one column shows one leader.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TextIO

PICTURE_WIDTH = 100  # columns, lane names included
MARKS = {True: {"lead": "█", "wait": "─", "cut": "░", "gone": "✗", "rejected": "!"},   # UTF-8
         False: {"lead": "#", "wait": "-", "cut": "~", "gone": "x", "rejected": "!"}}  # plain ASCII


@dataclass
class Lane:
    """One worker's measured life: its terms (the election's history) and what the chaos did to it."""
    name: str
    history: list[tuple[float, bool, str]]
    joined: float | None = None
    gone: float | None = None
    crashed: bool = False
    partitions: list[tuple[float, float]] = field(default_factory=list)
    rejections: list[float] = field(default_factory=list)

    def terms(self, end: float) -> list[tuple[float, float]]:
        """The intervals in which this worker acted as leader."""
        return leader_terms(self.history, end)


def leader_terms(history: list[tuple[float, bool, str]], end: float) -> list[tuple[float, float]]:
    """An election's (time, leading?, why) history as the intervals it acted as leader; one still open ends at `end`."""
    spans, since = [], None
    for t, leading, _ in history:
        if leading and since is None:
            since = t
        elif not leading and since is not None:
            spans.append((since, t))
            since = None
    return spans + ([(since, end)] if since is not None else [])


def utf8_output(stream: TextIO | None = None) -> bool:
    """Whether `stream` (stdout by default) takes UTF-8, so the picture may use block characters."""
    return ((stream or sys.stdout).encoding or "").lower().replace("-", "") == "utf8"


def draw_timeline(lanes: list[Lane], start: float, end: float, utf8: bool, width: int = PICTURE_WIDTH) -> list[str]:
    """One lane per worker, time left to right. A column covers a slice of time: it shows as leader
    the worker that led for most of that slice, and also any other worker that led at the same
    instant as it (which would break the rule). A hand-off inside a column shows one leader."""
    marks, label = MARKS[utf8], max([len(lane.name) for lane in lanes] + [4]) + 1
    columns = width - label - 2
    step = max(end - start, 1e-9) / columns
    slices = [(start + i * step, start + (i + 1) * step) for i in range(columns)]
    leaders = [column_leaders(lanes, a, b, end) for a, b in slices]
    rows = [f"{'':<{label}} 0s{f'{end - start:.1f}s':>{columns - 1}}"]
    for lane in lanes:
        cells = [lane_mark(lane, a, b, lane.name in led, marks) for (a, b), led in zip(slices, leaders, strict=True)]
        rows.append(f"{lane.name:<{label}}|{''.join(cells)}|")
    rows.append(f"{'':<{label}} {marks['lead']} leading  {marks['wait']} waiting in line  {marks['cut']} partitioned  "
                f"{marks['gone']} crashed or resigned  {marks['rejected']} write rejected")
    rows.append(f"{'':<{label}} one column = {step:.2f} s; it shows the worker that led for most of it")
    return rows


def column_leaders(lanes: list[Lane], a: float, b: float, end: float) -> set[str]:
    """Who to mark as leading in [a, b): the longest leader, plus anyone leading at the same instant."""
    clipped = {lane.name: [(max(s, a), min(e, b)) for s, e in lane.terms(end) if s < b and e > a]
               for lane in lanes}
    spent = {name: sum(e - s for s, e in spans) for name, spans in clipped.items() if spans}
    if not spent:
        return set()
    main = max(spent, key=spent.get)
    overlapping = {name for name in spent if name != main and any(
        max(s1, s2) < min(e1, e2) for s1, e1 in clipped[name] for s2, e2 in clipped[main])}
    return {main} | overlapping


def lane_mark(lane: Lane, a: float, b: float, leading: bool, marks: dict[str, str]) -> str:
    """What one lane shows for [a, b): the rarest event wins, so a crash or a rejection is never hidden."""
    if any(a <= t < b for t in lane.rejections):
        return marks["rejected"]
    if lane.gone is not None and a <= lane.gone < b:
        return marks["gone"]
    if leading:
        return marks["lead"]
    if any(s < b and e > a for s, e in lane.partitions):
        return marks["cut"]
    if lane.joined is not None and lane.joined < b and (lane.gone is None or lane.gone > a):
        return marks["wait"]
    return " "
