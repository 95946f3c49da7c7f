"""Exercises as data: `./run.sh exercise list|show N|apply N|reset`.

Each file in exercises/ breaks one rule from the README's rules tables with a small edit to a
challenge script: a list of find/replace snippets, each `find` occurring exactly once. `apply` makes
the edit in the working tree, `./run.sh check` then shows which guarantees it broke, and `reset`
undoes it by applying the inverse edit, so a learner's own changes elsewhere in the file survive.
The test suite applies every exercise to a copy of the scripts and proves its expected verdict.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path

from zklab.check_lab import ROOT, SCRIPTS

EXERCISES = ROOT / "exercises"
WIDTH = 100


class ExerciseError(Exception):
    """An exercise cannot be applied or undone; the message is one line for the learner."""


class NoSuchExercise(ExerciseError):
    """A bad argument: exit 2."""


@dataclass(frozen=True)
class Exercise:
    number: int
    name: str            # the file name without .json
    challenge: str       # "leader" or "hashing"
    title: str
    rule: str            # the rule's exact text in the README's rules table
    task: str            # what the learner reads: what to change, what happens, and why
    edits: list[dict[str, str]]
    fails: list[str]     # guarantees `check` must report broken
    holds: list[str]     # guarantees that must still hold

    @property
    def script(self) -> str:
        return SCRIPTS[self.challenge]


def load_all(directory: Path = EXERCISES) -> list[Exercise]:
    """Every exercise, numbered from 1: the leader election's first, each challenge's in file-name order."""
    found = [(path, json.loads(path.read_text())) for path in directory.glob("*.json")]
    found.sort(key=lambda item: (list(SCRIPTS).index(item[1]["challenge"]), item[0].name))  # challenge 1 first
    return [Exercise(number, path.stem, data["challenge"], data["title"], data["rule"], data["task"], data["edits"],
                     data["fails"], data["holds"]) for number, (path, data) in enumerate(found, 1)]


# ---------------------------------------------------------------- edits

def apply_edit(text: str, exercise: Exercise) -> str:
    """The script with the exercise's edit made; ExerciseError if a snippet is not there exactly once."""
    for i, edit in enumerate(exercise.edits, 1):
        text = _replace_once(text, edit["find"], edit["replace"], exercise, i)
    return text


def undo_edit(text: str, exercise: Exercise) -> str:
    """The inverse: every replacement back to what it replaced."""
    for i, edit in reversed(list(enumerate(exercise.edits, 1))):
        text = _replace_once(text, edit["replace"], edit["find"], exercise, i)
    return text


def is_applied(text: str, exercise: Exercise) -> bool:
    try:
        return apply_edit(undo_edit(text, exercise), exercise) == text
    except ExerciseError:
        return False


def _replace_once(text: str, old: str, new: str, exercise: Exercise, index: int) -> str:
    count = text.count(old)
    if count != 1:
        first = old.strip().splitlines()[0] if old.strip() else "(empty)"
        raise ExerciseError(f"{exercise.script} does not match exercise {exercise.number}: its edit #{index} "
                            f"(`{first[:60]}`) occurs {count} times, not once")
    return text.replace(old, new)


def applied_here(exercises: list[Exercise], challenge: str, text: str) -> list[Exercise]:
    return [e for e in exercises if e.challenge == challenge and is_applied(text, e)]


def write_atomically(path: Path, text: str) -> None:
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.chmod(temp, path.stat().st_mode)
    os.replace(temp, path)


# ---------------------------------------------------------------- what the learner reads

def verdict_words(exercise: Exercise) -> list[str]:
    from zklab.check import guarantees  # the checker's own words for each guarantee

    words = guarantees(exercise.challenge)
    return ([f"  breaks: {words[k]}" for k in exercise.fails] or ["  breaks: nothing: every guarantee still holds"])


def things_to_try(challenge: str, exercises: list[Exercise] | None = None) -> str:
    """The README's "Things to try" list for one challenge, generated from exercises/."""
    from zklab.check import guarantees

    words, lines = guarantees(challenge), []
    for e in exercises or load_all():
        if e.challenge == challenge:
            broken = "; ".join(f"\u2718 {words[k]}" for k in e.fails) or "every guarantee still holds"
            lines.append(f"{e.number}. **{e.title}** (rule: {e.rule}). `check` then reports: {broken}.")
    return "\n".join(lines)


def show(exercise: Exercise) -> str:
    lines = [f"exercise {exercise.number}: {exercise.title}  ({exercise.script})",
             f"rule: {exercise.rule}", ""]
    lines.append("\n\n".join(textwrap.fill(p, WIDTH) for p in exercise.task.split("\n\n")))
    lines += ["", "the edit:"]
    for edit in exercise.edits:
        lines += ["  - " + line for line in edit["find"].rstrip("\n").splitlines()]
        lines += ["  + " + line for line in edit["replace"].rstrip("\n").splitlines()]
    lines += ["", f"what `./run.sh check {exercise.challenge}` reports afterwards:", *verdict_words(exercise),
              "", f"./run.sh exercise apply {exercise.number}    then    ./run.sh check {exercise.challenge}    "
              "then    ./run.sh exercise reset"]
    return "\n".join(lines)


# ---------------------------------------------------------------- commands

def cmd_list(exercises: list[Exercise], args: argparse.Namespace) -> int:
    for e in exercises:
        print(f"{e.number:>3}  {e.challenge:<8} {e.title}")
    print("\n./run.sh exercise show N  tells the task; apply N makes the edit; reset undoes it")
    return 0


def cmd_show(exercises: list[Exercise], args: argparse.Namespace) -> int:
    print(show(pick(exercises, args.number)))
    return 0


def cmd_apply(exercises: list[Exercise], args: argparse.Namespace) -> int:
    exercise = pick(exercises, args.number)
    path = args.scripts / exercise.script
    text = path.read_text()
    if already := applied_here(exercises, exercise.challenge, text):
        raise ExerciseError(f"exercise {already[0].number} is applied to {exercise.script} already; "
                            "`./run.sh exercise reset` first")
    try:
        edited = apply_edit(text, exercise)
    except ExerciseError as exc:
        raise ExerciseError(f"{exc}: was it edited by hand? `git diff {exercise.script}` shows how; "
                            "nothing was changed") from None
    write_atomically(path, edited)
    print(f"applied exercise {exercise.number} ({exercise.title}) to {exercise.script}; "
          f"now run `./run.sh check {exercise.challenge}`, and `./run.sh exercise reset` to undo it")
    return 0


def cmd_reset(exercises: list[Exercise], args: argparse.Namespace) -> int:
    undone = 0
    for challenge, script in SCRIPTS.items():
        path = args.scripts / script
        text, undid = path.read_text(), []
        # One exercise's edit can contain another's (5 ignores SUSPENDED and the lease, 6 only SUSPENDED),
        # so both look applied: undo the larger, then look again.
        while applied := applied_here(exercises, challenge, text):
            exercise = max(applied, key=lambda e: len(e.edits))
            text = undo_edit(text, exercise)
            undid.append(exercise)
        if undid:
            write_atomically(path, text)
        for exercise in undid:
            print(f"undid exercise {exercise.number} ({exercise.title}) in {script}")
        undone += len(undid)
    if not undone:
        print("no exercise's edit is in place; your own edits, if any, are untouched "
              "(`git diff` shows them, `git checkout -- <script>` would discard them)")
    return 0


def pick(exercises: list[Exercise], number: str) -> Exercise:
    for e in exercises:
        if number in (str(e.number), e.name):
            return e
    raise NoSuchExercise(f"no exercise {number!r}: `./run.sh exercise list` shows 1 to {len(exercises)}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="./run.sh exercise", description="Break one rule on purpose, check what "
                                     "it broke, and undo it.")
    parser.add_argument("--scripts", type=Path, default=ROOT, metavar="DIR", help=argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="every exercise, numbered").set_defaults(run=cmd_list)
    for name, run, words in (("show", cmd_show, "tell the task"), ("apply", cmd_apply, "make the edit")):
        sub = commands.add_parser(name, help=f"{words} of exercise N")
        sub.add_argument("number", metavar="N")
        sub.set_defaults(run=run)
    commands.add_parser("reset", help="undo the applied exercise, keeping your own edits").set_defaults(run=cmd_reset)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return args.run(load_all(), args)
    except (ExerciseError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, NoSuchExercise) else 1


if __name__ == "__main__":
    sys.exit(main())
