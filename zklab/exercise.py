"""Exercises as data: `./run.sh exercise list|show N|apply N|write CHALLENGE|hint N|solution N|reset`.

Two kinds live in exercises/, one JSON file each:
- "write": the learner writes one step of the recipe. `apply N` empties that one function (found by
  its qualified name with ast): the def line, signature and type hints stay, the body becomes a
  docstring saying what to write and `raise NotImplementedError("write me: exercise N")`.
  `write leader|hashing` empties every step of a challenge at once. Hints come one at a time; the
  reference body shows only after `check` passed the step, or with --reveal.
- "break" (the default for a file with "edits"): a list of find/replace snippets, each `find`
  occurring exactly once, that breaks one rule of finished code on purpose.
`reset` puts back the reference text of whatever was emptied or edited, and nothing else: the
learner's other edits stay. State (what was emptied, hints shown, the last check's verdicts) lives
in .zklab/ next to the scripts. A malformed exercise file is one line naming it; the rest still work.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

from zklab.check_lab import ROOT, SCRIPTS

EXERCISES = ROOT / "exercises"
WIDTH = 100
KINDS = ("write", "break")  # teaching order: write each step of a challenge, then break it on purpose
REQUIRED = {"write": ("challenge", "step", "function", "title", "rule", "stub", "hints", "guarantees"),
            "break": ("challenge", "title", "rule", "task", "edits", "fails", "holds")}
QUALNAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)?")
# An exercise file is a few kilobytes; anything much larger is not one of ours.
MAX_FILE_BYTES = 100_000
STATE_FILE = "exercises.json"   # under .zklab/: what is emptied, which hints were shown, the last check
# The stub's last line; the checker reports the qualname of the function that raised it.
STUB_RAISE = 'raise NotImplementedError("write me: exercise {number}")'


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
    rule: str            # the rule the exercise is about, in the README's words
    task: str = ""       # break: what to change, what happens, and why
    edits: list[dict[str, str]] = field(default_factory=list)
    fails: list[str] = field(default_factory=list)     # break: guarantees `check` must report broken
    holds: list[str] = field(default_factory=list)     # break: guarantees that must still hold
    kind: str = "break"
    step: int = 0        # write: the step's place in the challenge's teaching order
    function: str = ""   # write: the qualified name of the function the learner writes
    stub: str = ""       # write: the stub's docstring
    hints: list[str] = field(default_factory=list)
    guarantees: list[str] = field(default_factory=list)  # write: the guarantees that need this step

    @property
    def script(self) -> str:
        return SCRIPTS[self.challenge]


# ---------------------------------------------------------------- loading, trusting no file

def load(directory: Path = EXERCISES) -> tuple[list[Exercise], list[str]]:
    """Every well-formed exercise, numbered in teaching order, and one line per file that is not."""
    found, problems = [], []
    for path in sorted(directory.glob("*.json")):
        try:
            found.append((path, read_exercise(path)))
        except ExerciseError as exc:
            problems.append(f"{path.name}: {exc}; skipped")
    steps: dict[tuple[str, int], str] = {}
    for path, data in list(found):
        if data["kind"] == "write" and steps.setdefault((data["challenge"], data["step"]), path.name) != path.name:
            problems.append(f"{path.name}: step {data['step']} of {data['challenge']} is "
                            f"{steps[(data['challenge'], data['step'])]} already; skipped")
            found.remove((path, data))
    found.sort(key=lambda item: (list(SCRIPTS).index(item[1]["challenge"]), KINDS.index(item[1]["kind"]),
                                 item[1].get("step", 0), item[0].name))
    fields = set(Exercise.__dataclass_fields__)
    exercises = [Exercise(number=number, name=path.stem, **{k: v for k, v in data.items() if k in fields})
                 for number, (path, data) in enumerate(found, 1)]
    return exercises, problems


def load_all(directory: Path = EXERCISES) -> list[Exercise]:
    return load(directory)[0]


def read_exercise(path: Path) -> dict:
    """The file's data with its kind filled in; ExerciseError saying what is wrong with it."""
    if path.stat().st_size > MAX_FILE_BYTES:
        raise ExerciseError(f"{path.stat().st_size:,} bytes, more than an exercise ({MAX_FILE_BYTES:,})")
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise ExerciseError("not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise ExerciseError(f"not valid JSON (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(data, dict):
        raise ExerciseError("not a JSON object")
    data.setdefault("kind", "write" if "function" in data else "break")
    if data["kind"] not in KINDS:
        raise ExerciseError(f"unknown kind {data['kind']!r} (known: {', '.join(KINDS)})")
    if missing := [k for k in REQUIRED[data["kind"]] if k not in data]:
        raise ExerciseError(f"missing {', '.join(repr(k) for k in missing)}")
    if data["challenge"] not in SCRIPTS:
        raise ExerciseError(f"unknown challenge {data['challenge']!r} (known: {', '.join(SCRIPTS)})")
    for key in ("title", "rule", "task", "function", "stub"):
        if key in data and not (isinstance(data[key], str) and data[key].strip()):
            raise ExerciseError(f"{key!r} must be non-empty text")
    for key in ("fails", "holds", "hints", "guarantees"):
        if key in data and not (isinstance(data[key], list) and all(isinstance(x, str) for x in data[key])):
            raise ExerciseError(f"{key!r} must be a list of text")
    (check_write if data["kind"] == "write" else check_break)(data)
    return data


def check_write(data: dict) -> None:
    if isinstance(data["step"], bool) or not isinstance(data["step"], int) or not 1 <= data["step"] <= 99:
        raise ExerciseError(f"'step' must be a whole number from 1 to 99, not {data['step']!r}")
    if not QUALNAME.fullmatch(data["function"]):
        raise ExerciseError(f"'function' must be a name or Class.name, not {data['function']!r}")
    if '"""' in data["stub"] or "\\" in data["stub"]:
        raise ExerciseError("'stub' may not hold triple quotes or backslashes (it becomes a docstring)")
    if not data["hints"] or not data["guarantees"]:
        raise ExerciseError("'hints' and 'guarantees' must each name at least one")


def check_break(data: dict) -> None:
    edits = data["edits"]
    if not isinstance(edits, list) or not edits:
        raise ExerciseError("'edits' must be a non-empty list of {\"find\": ..., \"replace\": ...}")
    for i, edit in enumerate(edits, 1):
        if not (isinstance(edit, dict) and isinstance(edit.get("find"), str) and isinstance(edit.get("replace"), str)):
            raise ExerciseError(f"edit #{i} must have text 'find' and 'replace'")
        if not edit["find"] or not edit["replace"] or edit["find"] == edit["replace"]:
            raise ExerciseError(f"edit #{i}: 'find' and 'replace' must be non-empty and differ")


# ---------------------------------------------------------------- the script on disk: line endings and symlinks kept

@dataclass
class Script:
    path: Path    # the real file, symlinks followed: we write through them
    text: str     # with "\n" line ends, whatever the file has
    crlf: bool    # the file ends its lines with "\r\n": so will we


def read_script(path: Path) -> Script:
    real = path.resolve()
    raw = real.read_bytes().decode("utf-8")
    crlf = "\r\n" in raw
    return Script(real, raw.replace("\r\n", "\n") if crlf else raw, crlf)


def write_script(script: Script, text: str) -> None:
    if text != script.text:
        write_atomically(script.path, text.replace("\n", "\r\n") if script.crlf else text)
        script.text = text


def write_atomically(path: Path, text: str) -> None:
    """Replace the file's content in one step: a reader sees the old text or the new, never half."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as out:
        out.write(text.encode("utf-8"))
    os.chmod(temp, path.stat().st_mode)
    os.replace(temp, path)


def reference_text(script: str, directory: Path) -> str | None:
    """The script as committed (`git show HEAD:`), "\n" line ends; None outside a git checkout."""
    path = (directory / script).resolve()
    try:
        done = subprocess.run(["git", "-C", str(path.parent), "show", f"HEAD:./{path.name}"],
                              capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.decode("utf-8", "replace").replace("\r\n", "\n") if done.returncode == 0 else None


# ---------------------------------------------------------------- state in .zklab/

def state_dir(scripts: Path | None = None) -> Path:
    if env := os.environ.get("ZKLAB_STATE"):
        return Path(env)
    return (scripts or ROOT) / ".zklab"


def load_state(scripts: Path | None = None) -> dict:
    path = state_dir(scripts) / STATE_FILE
    try:
        state = json.loads(path.read_text())
    except FileNotFoundError:
        state = {}
    except (OSError, ValueError):
        print(f"warning: {path} is unreadable; starting from a clean state", file=sys.stderr)
        state = {}
    if not isinstance(state, dict):
        state = {}
    for key in ("applied", "hints", "progress"):
        if not isinstance(state.get(key), dict):
            state[key] = {}
    return state


def save_state(state: dict, scripts: Path | None = None) -> None:
    directory = state_dir(scripts)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / STATE_FILE
    if not path.exists():
        path.write_text("{}")
    write_atomically(path, json.dumps(state, indent=1, sort_keys=True))


# ---------------------------------------------------------------- write-steps: finding and emptying one function

def find_function(text: str, qualname: str, script: str = "the script") -> ast.FunctionDef | ast.AsyncFunctionDef:
    try:
        tree = ast.parse(text)
    except SyntaxError as exc:
        raise ExerciseError(f"{script} line {exc.lineno}: {exc.msg}; fix it first") from None
    node, scope = None, tree.body
    for part in qualname.split("."):
        node = next((n for n in scope if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                     and n.name == part), None)
        if node is None:
            raise ExerciseError(f"{script} has no {qualname} (no {part} where it should be)")
        scope = node.body
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        raise ExerciseError(f"{script}: {qualname} is not a function")
    return node


def body_span(lines: list[str], node: ast.FunctionDef | ast.AsyncFunctionDef) -> tuple[int, int, str]:
    """(first, last) 0-based line indexes of the body, comments around it included, and its indent."""
    first, last = node.body[0].lineno - 1, node.body[-1].end_lineno - 1
    indent = lines[first][:node.body[0].col_offset]
    if indent.strip():  # the body shares the def's line: `def f(): return 1`
        raise ExerciseError(f"{node.name}'s body shares a line with its def; put it on lines of its own")
    while first - 1 >= node.lineno and lines[first - 1].lstrip().startswith("#"):
        first -= 1   # comments above the first statement belong to the body
    while last + 1 < len(lines) and lines[last + 1].startswith(indent) and lines[last + 1].lstrip().startswith("#"):
        last += 1    # and so do comments below the last one, indented as it is
    return first, last, indent


def split_lines(text: str) -> list[str]:
    return text.split("\n")   # ast counts lines the same way; the last item holds what follows the last \n


def stub_body(exercise: Exercise, indent: str) -> list[str]:
    doc = exercise.stub.strip().split("\n")
    lines = [f'{indent}"""{doc[0]}'] + [f"{indent}{line}".rstrip() for line in doc[1:]] + [f'{indent}"""']
    return lines + [indent + STUB_RAISE.format(number=exercise.number)]


def empty_function(text: str, exercise: Exercise) -> tuple[str, str, str]:
    """The text with the step's body replaced by its stub; also the reference body and the stub, as text."""
    lines = split_lines(text)
    first, last, indent = body_span(lines, find_function(text, exercise.function, exercise.script))
    stub = stub_body(exercise, indent)
    reference = "\n".join(lines[first:last + 1])
    return "\n".join(lines[:first] + stub + lines[last + 1:]), reference, "\n".join(stub)


def replace_body(text: str, exercise: Exercise, body: str) -> str:
    lines = split_lines(text)
    first, last, _ = body_span(lines, find_function(text, exercise.function, exercise.script))
    return "\n".join(lines[:first] + body.split("\n") + lines[last + 1:])


def function_body(text: str, exercise: Exercise) -> str:
    lines = split_lines(text)
    first, last, _ = body_span(lines, find_function(text, exercise.function, exercise.script))
    return "\n".join(lines[first:last + 1])


def replace_function(text: str, qualname: str, source: str) -> str:
    """`text` with the function `qualname` (decorators, def, body and its comments) replaced by `source`,
    dedented, then indented to fit: how the tests put a right or wrong answer in a copy of a script."""
    node = find_function(text, qualname)
    lines = split_lines(text)
    start = min([node.lineno] + [d.lineno for d in node.decorator_list]) - 1
    indent = " " * node.col_offset
    new = [(indent + line).rstrip() for line in textwrap.dedent(source).strip("\n").split("\n")]
    return "\n".join(lines[:start] + new + lines[body_span(lines, node)[1] + 1:])


def function_source(text: str, exercise: Exercise) -> str:
    node = find_function(text, exercise.function, exercise.script)
    start = min([node.lineno] + [d.lineno for d in node.decorator_list]) - 1
    lines = split_lines(text)
    return "\n".join(lines[start:body_span(lines, node)[1] + 1])


def is_stub(text: str, exercise: Exercise) -> bool:
    """The step's function is a stub: a docstring at most, then `raise NotImplementedError("write me...")`."""
    try:
        body = find_function(text, exercise.function, exercise.script).body
    except ExerciseError:
        return False
    last = body[-1]
    return (len(body) <= 2 and isinstance(last, ast.Raise) and isinstance(last.exc, ast.Call)
            and getattr(last.exc.func, "id", "") == "NotImplementedError"
            and bool(last.exc.args) and isinstance(last.exc.args[0], ast.Constant)
            and str(last.exc.args[0].value).startswith("write me"))


# ---------------------------------------------------------------- break exercises: edits

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
    return exercise.kind == "break" and len(parts_in_place(text, exercise)) == len(exercise.edits)


def parts_in_place(text: str, exercise: Exercise) -> list[int]:
    """Which of the edits stand in the text as the exercise made them (0-based).

    A part is provably the exercise's own when its replacement occurs exactly once and the text it
    replaced occurs nowhere but inside it.
    """
    return [i for i, e in enumerate(exercise.edits)
            if text.count(e["replace"]) == 1 and text.count(e["find"]) == e["replace"].count(e["find"])]


def _replace_once(text: str, old: str, new: str, exercise: Exercise, index: int) -> str:
    count = text.count(old)
    if count != 1:
        first = old.strip().splitlines()[0] if old.strip() else "(empty)"
        raise ExerciseError(f"{exercise.script} does not match exercise {exercise.number}: its edit #{index} "
                            f"(`{first[:60]}`) occurs {count} times, not once")
    return text.replace(old, new)


def applied_here(exercises: list[Exercise], challenge: str, text: str) -> list[Exercise]:
    return [e for e in exercises if e.challenge == challenge and e.kind == "break" and parts_in_place(text, e)]


def nearest_lines(text: str, snippet: str) -> str:
    """'line 452' or 'lines 452-453': where the text looks most like `snippet` (a part changed by hand)."""
    lines, wanted = split_lines(text), snippet.rstrip("\n").split("\n")
    best, at = 0.0, 0
    for i in range(len(lines) - len(wanted) + 1):
        score = difflib.SequenceMatcher(None, "\n".join(lines[i:i + len(wanted)]), "\n".join(wanted)).quick_ratio()
        if score > best:
            best, at = score, i
    return f"line {at + 1}" if len(wanted) == 1 else f"lines {at + 1}-{at + len(wanted)}"


# ---------------------------------------------------------------- what the learner reads

def verdict_words(exercise: Exercise) -> list[str]:
    from zklab.check import guarantees  # the checker's own words for each guarantee

    words = guarantees(exercise.challenge)
    if exercise.kind == "write":
        return [f"  needs it: {words.get(k, k)}" for k in exercise.guarantees]
    return ([f"  breaks: {words[k]}" for k in exercise.fails] or ["  breaks: nothing: every guarantee still holds"])


def things_to_try(challenge: str, exercises: list[Exercise] | None = None) -> str:
    """The README's "Things to try" list for one challenge, generated from exercises/ (break kind)."""
    from zklab.check import guarantees

    words, lines = guarantees(challenge), []
    for e in exercises or load_all():
        if e.challenge == challenge and e.kind == "break":
            broken = "; ".join(f"\u2718 {words[k]}" for k in e.fails) or "every guarantee still holds"
            lines.append(f"{e.number}. **{e.title}** (rule: {e.rule}). `check` then reports: {broken}.")
    return "\n".join(lines)


def show(exercise: Exercise) -> str:
    lines = [f"exercise {exercise.number} ({exercise.kind}): {exercise.title}  ({exercise.script})",
             f"rule: {exercise.rule}", ""]
    if exercise.kind == "write":
        lines += [f"step {exercise.step}: write {exercise.function}", "", exercise.stub.strip(), "",
                  f"what `./run.sh check {exercise.challenge}` needs it for:", *verdict_words(exercise), "",
                  f"./run.sh exercise apply {exercise.number}    then write it    then    ./run.sh check "
                  f"{exercise.challenge}    (./run.sh exercise hint {exercise.number} when stuck)"]
        return "\n".join(lines)
    lines.append("\n\n".join(textwrap.fill(p, WIDTH) for p in exercise.task.split("\n\n")))
    lines += ["", "the edit:"]
    for edit in exercise.edits:
        lines += ["  - " + line for line in edit["find"].rstrip("\n").splitlines()]
        lines += ["  + " + line for line in edit["replace"].rstrip("\n").splitlines()]
    lines += ["", f"what `./run.sh check {exercise.challenge}` reports afterwards:", *verdict_words(exercise),
              "", f"./run.sh exercise apply {exercise.number}    then    ./run.sh check {exercise.challenge}    "
              "then    ./run.sh exercise reset"]
    return "\n".join(lines)


# ---------------------------------------------------------------- progress: what the last check said

def step_status(exercise: Exercise, verdicts: dict[str, bool], unwritten: dict[str, str]) -> tuple[str, str]:
    """('holds' | 'fails' | 'waits' | 'unwritten', detail) for one write-step, from a check's verdicts."""
    def same(qualname: str) -> bool:
        return qualname == exercise.function or qualname.endswith("." + exercise.function)

    if any(same(q) for q in unwritten.values()):
        return "unwritten", "not written"
    if all(verdicts.get(k) is True for k in exercise.guarantees):
        return "holds", "written and holding"
    waiting = sorted({q for k, q in unwritten.items() if k in exercise.guarantees})
    if waiting:
        return "waits", f"written; its guarantees wait on {', '.join(waiting)}"
    failing = [k for k in exercise.guarantees if verdicts.get(k) is not True]
    return "fails", f"written and failing: {', '.join(failing)}"


def progress_line(challenge: str, steps: list[Exercise], verdicts: dict[str, bool], unwritten: dict[str, str],
                  yours: set[str] | None = None, stubs: frozenset[str] = frozenset(),
                  breaking: Exercise | None = None) -> str:
    """How far the steps hold, in teaching order, and what to do next. `yours`: the steps emptied for the
    learner; `stubs`: the steps still empty in the script; `breaking`: a break-exercise applied now."""
    if breaking is not None:  # the ✘ lines are the break's lesson, not a step to write
        return (f"{challenge}: break-exercise {breaking.number} is applied ({breaking.title}): the lines above show "
                "what it breaks; `./run.sh exercise reset` puts the reference back")
    total, held = len(steps), 0
    while held < total and steps[held].name not in stubs and holds(steps[held], verdicts, unwritten):
        held += 1
    if held == total:
        return f"{challenge}: steps 1-{total} of {total} hold" + whose(challenge, steps, yours)
    head = f"{challenge}: 0 of {total} steps hold" if held == 0 else \
        f"{challenge}: step{'s 1-' if held > 1 else ' '}{held} of {total} hold{'s' if held == 1 else ''}"
    nxt = steps[held]
    status, detail = step_status(nxt, verdicts, unwritten)
    if nxt.name in stubs or status == "unwritten":
        return f"{head}; next: step {nxt.step}, {nxt.function} (exercise {nxt.number})"
    if status == "fails":
        failing = detail.split(": ", 1)[-1]  # the failure may lie in another function: the advice names it
        return f"{head}; step {nxt.step}'s guarantees fail ({failing}): the advice above names the function to look at"
    return f"{head}; {waiting(steps[held:], stubs, unwritten) or f'step {nxt.step} is {detail}'}"


def holds(step: Exercise, verdicts: dict[str, bool], unwritten: dict[str, str]) -> bool:
    return step_status(step, verdicts, unwritten)[0] == "holds"


def waiting(steps: list[Exercise], stubs: frozenset[str], unwritten: dict[str, str]) -> str:
    """'steps 2-3 are written, and their guarantees wait on step 4, f (exercise 4)': `steps` from the first
    that does not hold; '' if what its guarantees wait on is no step that is still to write."""
    written = next((i for i, step in enumerate(steps) if step.name in stubs), len(steps))
    hit = {q.rsplit(".", 1)[-1] for k, q in unwritten.items() if k in steps[0].guarantees}
    awaited = next((step for step in steps[written:] if step.function.rsplit(".", 1)[-1] in hit), None)
    if awaited is None or written == 0:
        return ""
    ready = f"step {steps[0].step} is" if written == 1 else f"steps {steps[0].step}-{steps[written - 1].step} are"
    return (f"{ready} written, and {'its' if written == 1 else 'their'} guarantees wait on step {awaited.step}, "
            f"{awaited.function} (exercise {awaited.number})")


def whose(challenge: str, steps: list[Exercise], yours: set[str] | None) -> str:
    """What holds is the learner's, the reference's, or both: a reference that holds teaches nothing."""
    mine = [str(step.step) for step in steps if yours is not None and step.name in yours]
    if yours is None or len(mine) == len(steps):
        return ", all written by you" if mine else ""
    if not mine:
        return f": the reference's (`./run.sh exercise write {challenge}` empties every step for you to write)"
    return f"; you wrote step{'s' if len(mine) > 1 else ''} {', '.join(mine)}, the others are the reference's"


def record_check(challenge: str, verdicts: dict[str, bool], unwritten: dict[str, str],
                 scripts: Path | None = None) -> str | None:
    """Keep a check's verdicts for `exercise list` and `solution`; the progress line for check to print last."""
    mine = [e for e in load_all() if e.challenge == challenge]
    steps = [e for e in mine if e.kind == "write"]
    if not steps:
        return None
    yours, text = None, _text_or_none((scripts or ROOT) / SCRIPTS[challenge])
    stubs = frozenset(step.name for step in steps if text is not None and is_stub(text, step))
    breaking = None
    try:
        state = load_state(scripts)
        yours = set(state["applied"]) | edited(steps, text, scripts or ROOT)
        breaking = next((e for e in mine if e.kind == "break" and e.name in yours
                         and text is not None and parts_in_place(text, e)), None)
        state["progress"][challenge] = {"verdicts": dict(verdicts), "unwritten": dict(unwritten),
                                        "at": time.strftime("%Y-%m-%d %H:%M:%S")}
        save_state(state, scripts)
    except OSError as exc:
        print(f"warning: could not keep the verdicts in {state_dir(scripts)}: {exc}", file=sys.stderr)
    return progress_line(challenge, steps, verdicts, unwritten, yours, stubs, breaking)


def edited(steps: list[Exercise], text: str | None, scripts: Path) -> set[str]:
    """The steps whose function differs from the committed one (bodies written by hand, or pasted back after
    a reset): what holds there is the learner's, not the reference's. Empty outside a git checkout."""
    committed = reference_text(steps[0].script, scripts) if text is not None else None
    if committed is None:
        return set()
    changed = set()
    for step in steps:
        try:
            if function_source(text, step) != function_source(committed, step):
                changed.add(step.name)
        except ExerciseError:  # the function is gone from one of them: not the reference's either way
            changed.add(step.name)
    return changed


def last_check(state: dict, challenge: str) -> tuple[dict[str, bool], dict[str, str]] | None:
    entry = state["progress"].get(challenge)
    if not isinstance(entry, dict):
        return None
    return dict(entry.get("verdicts") or {}), dict(entry.get("unwritten") or {})


# ---------------------------------------------------------------- commands

def cmd_list(exercises: list[Exercise], args: argparse.Namespace) -> int:
    state = load_state(args.scripts)
    texts = {c: _text_or_none(args.scripts / s) for c, s in SCRIPTS.items()}
    for challenge, script in SCRIPTS.items():
        for kind, heading in (("write", "write it yourself"), ("break", "break it on purpose")):
            mine = [e for e in exercises if e.challenge == challenge and e.kind == kind]
            if mine:
                print(f"{heading}: {challenge} ({script})")
            for e in mine:
                print(f"{e.number:>4}  {kind:<5}  {e.title:<52.52}  {status(e, texts[challenge], state)}".rstrip())
    print("\n./run.sh exercise show N tells the task; apply N empties a step or makes the edit; write leader|hashing "
          "empties every step;\nhint N, solution N; reset puts the reference back")
    return 0


def status(exercise: Exercise, text: str | None, state: dict) -> str:
    if exercise.kind == "break":
        return "applied" if text is not None and parts_in_place(text, exercise) else ""
    if text is not None and is_stub(text, exercise):
        return "not written"
    checked = last_check(state, exercise.challenge)
    mine = exercise.name in state["applied"]   # emptied by apply or write, so what stands is the learner's
    if checked is None:
        return "written, not checked yet" if mine else "reference"
    status, detail = step_status(exercise, *checked)
    if mine:
        return detail
    return "reference, " + {"holds": "holding", "fails": detail.replace("written and failing", "failing"),
                            "waits": detail.replace("written; ", "")}.get(status, detail)


def _text_or_none(path: Path) -> str | None:
    try:
        return read_script(path).text
    except (OSError, UnicodeDecodeError):
        return None


def cmd_show(exercises: list[Exercise], args: argparse.Namespace) -> int:
    print(show(pick(exercises, args.number)))
    return 0


def cmd_apply(exercises: list[Exercise], args: argparse.Namespace) -> int:
    exercise = pick(exercises, args.number)
    if exercise.kind == "write":
        return empty_steps(exercises, [exercise], args)
    script = read_script(args.scripts / exercise.script)
    if already := applied_here(exercises, exercise.challenge, script.text):
        raise ExerciseError(f"exercise {already[0].number} is applied to {exercise.script} already; "
                            "`./run.sh exercise reset` first")
    if emptied := [e for e in exercises if e.challenge == exercise.challenge and is_stub(script.text, e)]:
        raise ExerciseError(f"step {emptied[0].step} ({emptied[0].function}) is emptied in {exercise.script}: "
                            "break exercises need the finished recipe; `./run.sh exercise reset` first")
    try:
        edited = apply_edit(script.text, exercise)
    except ExerciseError as exc:
        raise ExerciseError(f"{exc}: was it edited by hand? `git diff {exercise.script}` shows how; "
                            "nothing was changed") from None
    state = load_state(args.scripts)
    write_script(script, edited)
    state["applied"][exercise.name] = {"number": exercise.number}
    save_state(state, args.scripts)
    print(f"applied exercise {exercise.number} ({exercise.title}) to {exercise.script}; "
          f"now run `./run.sh check {exercise.challenge}`, and `./run.sh exercise reset` to undo it")
    return 0


def cmd_write(exercises: list[Exercise], args: argparse.Namespace) -> int:
    steps = [e for e in exercises if e.challenge == args.challenge and e.kind == "write"]
    if not steps:
        raise ExerciseError(f"no write-steps for {args.challenge} in exercises/")
    return empty_steps(exercises, steps, args)


def empty_steps(exercises: list[Exercise], steps: list[Exercise], args: argparse.Namespace) -> int:
    """Empty each step's function in its script, keeping each reference body in .zklab/ for reset."""
    challenge = steps[0].challenge
    script = read_script(args.scripts / steps[0].script)
    if already := applied_here(exercises, challenge, script.text):
        raise ExerciseError(f"exercise {already[0].number} ({already[0].title}) is applied to {steps[0].script}; "
                            "`./run.sh exercise reset` first")
    state, text, emptied = load_state(args.scripts), script.text, []
    for step in steps:
        if is_stub(text, step):
            print(f"step {step.step} ({step.function}) is empty already")
            continue
        text, reference, stub = empty_function(text, step)
        state["applied"][step.name] = {"number": step.number, "reference": reference, "stub": stub}
        emptied.append(step)
    save_state(state, args.scripts)   # the reference first: a crash now still lets reset find it
    write_script(script, text)
    for step in emptied:
        print(f"emptied step {step.step} of {challenge}: {step.function} (exercise {step.number}, {step.title})")
    if emptied:
        print(f"now write {'it' if len(emptied) == 1 else 'them'} in {steps[0].script}, then `./run.sh check "
              f"{challenge}`; `./run.sh exercise hint {emptied[0].number}` gives a hint, `reset` the reference")
    return 0


def cmd_reset(exercises: list[Exercise], args: argparse.Namespace) -> int:
    """Put back the reference of every exercise in place, or of one challenge's, or of exercise N alone."""
    chosen = exercises if args.which is None else [e for e in exercises if e.challenge == args.which] \
        if args.which in SCRIPTS else [pick(exercises, args.which)]
    state, said = load_state(args.scripts), []
    for challenge, name in SCRIPTS.items():
        if not any(e.challenge == challenge for e in chosen):
            continue
        script = read_script(args.scripts / name)
        text = reset_steps(chosen, challenge, script, state, said, args.scripts)
        text = reset_breaks(chosen, challenge, name, text, state, said)
        write_script(script, text)
    save_state(state, args.scripts)
    for line in said:
        print(line)
    if not said:
        print(f"{'no exercise' if args.which is None else args.which} is in place; your own edits, if any, are "
              "untouched (`git diff` shows them, `git checkout -- <script>` would discard them)")
    return 0


def reset_steps(exercises: list[Exercise], challenge: str, script: Script, state: dict, said: list[str],
                scripts: Path) -> str:
    """Put back the reference body of every emptied step; a body the learner wrote is kept in .zklab/written/."""
    text, committed = script.text, None
    for step in [e for e in exercises if e.challenge == challenge and e.kind == "write"]:
        kept = state["applied"].pop(step.name, None)
        stubbed = is_stub(text, step)
        if kept is None and not stubbed:
            continue
        reference = kept.get("reference") if isinstance(kept, dict) else None
        if reference is None:
            committed = committed if committed is not None else reference_text(step.script, scripts)
            if committed is None:
                said.append(f"step {step.step} ({step.function}) is emptied, but its reference is neither in "
                            f"{state_dir(scripts)} nor in git; left as it is")
                continue
            reference = function_body(committed, step)
        try:
            current = function_body(text, step)
        except ExerciseError as exc:
            said.append(f"step {step.step} ({step.function}): {exc}; left as it is")
            continue
        if current == reference:
            continue
        if not stubbed:
            keep = state_dir(scripts) / "written" / f"{step.name}.py"
            keep.parent.mkdir(parents=True, exist_ok=True)
            keep.write_text(current + "\n")
            said.append(f"your {step.function} is kept in {keep}")
        text = replace_body(text, step, reference)
        said.append(f"put back {step.function} (exercise {step.number}) in {step.script}")
    return text


def reset_breaks(exercises: list[Exercise], challenge: str, script: str, text: str, state: dict,
                 said: list[str]) -> str:
    """Undo every part of a break exercise still in place; name the parts changed by hand, and keep them."""
    mine = [e for e in exercises if e.challenge == challenge and e.kind == "break"]
    recorded = {e.name for e in mine if e.name in state["applied"]}
    # One exercise's edit can contain another's (5 ignores SUSPENDED and the lease, 6 only SUSPENDED):
    # undo the one applied, else the larger, then look again. Each exercise is undone once at most.
    while scored := [(e, parts) for e in mine if (parts := parts_in_place(text, e))]:
        exercise, parts = max(scored, key=lambda s: (s[0].name in recorded, len(s[1]), len(s[0].edits)))
        mine.remove(exercise)
        recorded.discard(exercise.name)
        state["applied"].pop(exercise.name, None)
        for i in reversed(parts):
            text = text.replace(exercise.edits[i]["replace"], exercise.edits[i]["find"], 1)
        said.append(f"undid exercise {exercise.number} ({exercise.title}) in {script}")
        said += [hand_changed(exercise, i, text) for i in range(len(exercise.edits)) if i not in parts]
    for name in recorded:   # applied by us, yet not one part is left as it was made
        exercise = next(e for e in mine if e.name == name)
        state["applied"].pop(name)
        said.append(f"exercise {exercise.number} ({exercise.title}) was applied, but none of its edit is left as "
                    f"made in {script}: " + "; ".join(hand_changed(exercise, i, text).split(": ", 1)[1]
                                                      for i in range(len(exercise.edits))))
    return text


def hand_changed(exercise: Exercise, index: int, text: str) -> str:
    first = exercise.edits[index]["replace"].strip().split("\n")[0][:60]
    return (f"exercise {exercise.number}: its edit #{index + 1} (`{first}`) was changed by hand near "
            f"{nearest_lines(text, exercise.edits[index]['replace'])}; left as it is "
            f"(`./run.sh exercise show {exercise.number}` shows what it was)")


def cmd_hint(exercises: list[Exercise], args: argparse.Namespace) -> int:
    exercise = write_step(exercises, args.number)
    state = load_state(args.scripts)
    shown = min(int(state["hints"].get(exercise.name, 0) or 0), len(exercise.hints))
    if shown < len(exercise.hints):
        print(f"hint {shown + 1} of {len(exercise.hints)} for exercise {exercise.number} ({exercise.function}):")
        print(textwrap.fill(exercise.hints[shown], WIDTH, initial_indent="  ", subsequent_indent="  "), flush=True)
        state["hints"][exercise.name] = shown + 1  # counted once the learner could read it (not on a full disk)
        save_state(state, args.scripts)
        return 0
    print(f"all {len(exercise.hints)} hints for exercise {exercise.number} ({exercise.function}):")
    for i, hint in enumerate(exercise.hints, 1):
        print(textwrap.fill(hint, WIDTH, initial_indent=f"  {i}. ", subsequent_indent="     "))
    print(f"still stuck? `./run.sh exercise solution {exercise.number} --reveal` shows the reference (a spoiler)")
    return 0


def cmd_solution(exercises: list[Exercise], args: argparse.Namespace) -> int:
    exercise = write_step(exercises, args.number)
    state = load_state(args.scripts)
    checked = last_check(state, exercise.challenge)
    passed = checked is not None and step_status(exercise, *checked)[0] == "holds"
    if not passed and not args.reveal:
        print(f"exercise {exercise.number}'s solution opens once `./run.sh check {exercise.challenge}` passes "
              f"{', '.join(exercise.guarantees)} with your {exercise.function}; `--reveal` shows it now, "
              "and spoils the step")
        return 1
    if not passed:
        print(f"spoiler: the reference {exercise.function} for exercise {exercise.number}; "
              "writing it yourself teaches more")
    print(reference_function(exercise, args.scripts, state))
    return 0


def reference_function(exercise: Exercise, scripts: Path, state: dict) -> str:
    committed = reference_text(exercise.script, scripts)
    if committed is not None:
        return function_source(committed, exercise)
    kept = state["applied"].get(exercise.name)
    text = read_script(scripts / exercise.script).text
    if isinstance(kept, dict) and kept.get("reference"):
        return function_source(replace_body(text, exercise, kept["reference"]), exercise)
    if is_stub(text, exercise):
        raise ExerciseError(f"the reference {exercise.function} is neither in git nor in {state_dir(scripts)}")
    return function_source(text, exercise)


def write_step(exercises: list[Exercise], number: str) -> Exercise:
    exercise = pick(exercises, number)
    if exercise.kind != "write":
        raise NoSuchExercise(f"exercise {exercise.number} breaks finished code on purpose: it has no hints or "
                             f"solution; `./run.sh exercise show {exercise.number}` tells it all")
    return exercise


def pick(exercises: list[Exercise], number: str) -> Exercise:
    for e in exercises:
        if number in (str(e.number), e.name):
            return e
    raise NoSuchExercise(f"no exercise {number!r}: `./run.sh exercise list` shows 1 to {len(exercises)}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="./run.sh exercise", description="Write each step of a recipe yourself, "
                                     "or break one rule on purpose; check it; reset.")
    parser.add_argument("--scripts", type=Path, default=ROOT, metavar="DIR", help=argparse.SUPPRESS)
    parser.add_argument("--exercises", type=Path, default=EXERCISES, metavar="DIR", help=argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", allow_abbrev=False,
                        help="every exercise in teaching order, with its status").set_defaults(run=cmd_list)
    for name, run, words in (("show", cmd_show, "tell the task of exercise N"),
                             ("apply", cmd_apply, "empty step N, or make break N's edit"),
                             ("hint", cmd_hint, "the next hint for step N")):
        sub = commands.add_parser(name, allow_abbrev=False, help=words)
        sub.add_argument("number", metavar="N")
        sub.set_defaults(run=run)
    sub = commands.add_parser("write", allow_abbrev=False, help="empty every step of a challenge at once")
    sub.add_argument("challenge", choices=list(SCRIPTS))
    sub.set_defaults(run=cmd_write)
    sub = commands.add_parser("solution", allow_abbrev=False, help="the reference for step N, once check passed it")
    sub.add_argument("number", metavar="N")
    sub.add_argument("--reveal", action="store_true", help="show it now (a spoiler)")
    sub.set_defaults(run=cmd_solution)
    sub = commands.add_parser("reset", allow_abbrev=False, help="put back the reference of every exercise (or of "
                              "leader, hashing, or exercise N alone), keeping your own edits")
    sub.add_argument("which", nargs="?", metavar="N|leader|hashing", help="only this exercise, or this challenge's")
    sub.set_defaults(run=cmd_reset)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    exercises, problems = load(args.exercises)
    for problem in problems:
        print(f"warning: exercises/{problem}", file=sys.stderr)
    try:
        return args.run(exercises, args)
    except OSError as exc:
        from zklab.zk import output_lost  # here: the ZooKeeper tools are not worth loading for every exercise

        if (code := output_lost(exc, "exercise")) is not None:  # `| head`: exit 0, quietly; a full disk: 1
            return code
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (ExerciseError, UnicodeDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, NoSuchExercise) else 1


if __name__ == "__main__":
    sys.exit(main())
