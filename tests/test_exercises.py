"""Every exercise under exercises/ does what it promises, and the exercise commands keep the learner's file safe.

Break exercises: the checker reports exactly the expected verdict. Write-steps: `apply` empties one
function and `reset` gives back the committed text byte for byte (CRLF and symlinks kept); a broken
exercise file is one line. The write-steps' verdicts (a)-(d) are proved in tests/test_exercise_proofs.py.
"""

from __future__ import annotations

import ast
import builtins
import json
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from importlib import import_module
from pathlib import Path

import pytest

from tests.check_proofs import edited_names, parse
from zklab.check import guarantees
from zklab.check_lab import ROOT, SCRIPTS
from zklab.exercise import (
    Exercise,
    apply_edit,
    empty_function,
    is_applied,
    is_stub,
    load,
    load_all,
    progress_line,
    record_check,
    replace_function,
    things_to_try,
    undo_edit,
)

EXERCISES = load_all()
BREAKS = [e for e in EXERCISES if e.kind == "break"]
STEPS = [e for e in EXERCISES if e.kind == "write"]
# Three proofs at a time: a checker mostly waits on ZooKeeper sessions (a leader check uses about a quarter of
# a core: 3.6 s of CPU in 15.5 s), and every one shares its worker's ZooKeeper.
PARALLEL = 3
# A hint carries a concrete name or number: a digit, a call, a CONSTANT, a.name, a snake_name, a CamelName.
CONCRETE = r"[0-9]|\w\(|\b[A-Z_]{3,}\b|\w\.\w|\b_?[a-z]+_\w+|\b[A-Z][a-z]+[A-Z]\w*"
MARKS = {"\u2714": True, "ok": True, "\u2718": False, "XX": False}


def verdict(output: str, challenge: str) -> dict[str, bool]:
    """key -> held?, read from the checker's lines (`<mark> <guarantee>: <figure>`)."""
    words = guarantees(challenge)
    found = {}
    for line in output.splitlines():
        mark, _, rest = line.partition(" ")
        for key, text in words.items():
            if mark in MARKS and rest.startswith(text + ":"):
                found[key] = MARKS[mark]
    return found


def copy_scripts(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for script in SCRIPTS.values():
        shutil.copy(ROOT / script, directory / script)
    return directory


def committed(script: str) -> bytes:
    return subprocess.run(["git", "show", f"HEAD:{script}"], cwd=ROOT, capture_output=True, check=True).stdout


def exercise_cli(scripts: Path, *args: str, exercises: Path | None = None) -> subprocess.CompletedProcess:
    extra = ["--exercises", str(exercises)] if exercises else []
    return subprocess.run([sys.executable, "-m", "zklab.exercise", "--scripts", str(scripts), *extra, *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONIOENCODING": "utf-8", "ZKLAB_STATE": str(scripts / ".zklab")})


# ---------------------------------------------------------------- break exercises: the checker's verdict

def prove(exercise: Exercise, workdir: Path) -> tuple[dict[str, bool], str, int]:
    """Apply `exercise` to a copy of the scripts and run the checker on the copy, in a process of its own."""
    copy = copy_scripts(workdir / exercise.name)
    path = copy / exercise.script
    path.write_text(apply_edit(path.read_text(), exercise))
    result = subprocess.run([sys.executable, "-m", "zklab.check", exercise.challenge, "--scripts", str(copy)],
                            cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONIOENCODING": "utf-8", "ZKLAB_STATE": str(copy / ".zklab")})
    return verdict(result.stdout, exercise.challenge), result.stdout + result.stderr, result.returncode


@pytest.fixture(scope="module")
def proofs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[dict[str, bool], str, int]]:
    workdir = tmp_path_factory.mktemp("exercises")
    with ThreadPoolExecutor(PARALLEL) as pool:
        results = pool.map(lambda e: prove(e, workdir), BREAKS)
        return {e.name: r for e, r in zip(BREAKS, results, strict=True)}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("exercise", BREAKS, ids=[e.name for e in BREAKS])
def test_exercise_gives_exactly_its_verdict(exercise: Exercise, proofs: dict) -> None:
    """The checker, run on the scripts with the exercise applied, breaks exactly the promised guarantees."""
    found, output, code = proofs[exercise.name]
    expected = {**{k: False for k in exercise.fails}, **{k: True for k in exercise.holds}}
    assert found == expected, output
    assert code == (1 if exercise.fails else 0), output


def edited(exercise: Exercise) -> set[str]:
    """The functions (or module-level names) whose source holds one of the exercise's `find` texts."""
    text = (ROOT / exercise.script).read_text()
    return {name for edit in exercise.edits for name in edited_names(text, edit["find"])}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("exercise", [e for e in BREAKS if e.fails], ids=[e.name for e in BREAKS if e.fails])
def test_the_advice_names_a_function_the_exercise_edited(exercise: Exercise, proofs: dict) -> None:
    """Hints aim at the rule's function: each guarantee the exercise breaks fails with advice naming one of the
    functions the exercise edited (read from the same checker run as its verdict)."""
    _, output, _ = proofs[exercise.name]
    advice, functions = parse(output, exercise.challenge), edited(exercise)
    assert functions, f"{exercise.name}: its edits are in no function"
    for key in exercise.fails:
        held, _, words = advice[key]
        assert not held, output
        assert any(re.search(rf"(?<![\w.]){re.escape(f)}(?!\w)", words) for f in functions), \
            f"{key}: advice names none of {functions}: {words}"


@pytest.mark.parametrize("exercise", BREAKS, ids=[e.name for e in BREAKS])
def test_exercise_is_well_formed(exercise: Exercise) -> None:
    """Each exercise names every guarantee once, quotes a rule of its challenge's table, and undoes cleanly."""
    assert sorted(exercise.fails + exercise.holds) == sorted(guarantees(exercise.challenge))
    assert f"| {exercise.rule} |" in rules_table(exercise.challenge)
    original = (ROOT / exercise.script).read_text()
    edited = apply_edit(original, exercise)
    assert edited != original and is_applied(edited, exercise) and not is_applied(original, exercise)
    assert undo_edit(edited, exercise) == original
    for edit in exercise.edits:  # reset can prove a part is the exercise's own only if the script never holds it
        assert edit["replace"] not in original


def readme_section(challenge: str, heading: str) -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("## Challenge 1" if challenge == "leader" else "## Challenge 2")
    body = text[text.index(heading, start) + len(heading):]
    return body[:re.search(r"\n#{2,3} |\n---", body).start()].strip()


def rules_table(challenge: str) -> str:
    return readme_section(challenge, "### The rules, and why each exists")


@pytest.mark.parametrize("challenge", list(SCRIPTS))
def test_readme_things_to_try_match_the_exercises(challenge: str) -> None:
    """The README's "Things to try" list is the one generated from exercises/."""
    section = readme_section(challenge, "### Things to try")
    assert things_to_try(challenge) in section


# ---------------------------------------------------------------- write-steps: data

def test_write_steps_in_teaching_order() -> None:
    """At least 12 write-steps; each challenge's steps are numbered 1..7 and listed before its break exercises."""
    assert len(STEPS) >= 12
    for challenge in SCRIPTS:
        mine = [e for e in EXERCISES if e.challenge == challenge]
        kinds = [e.kind for e in mine]
        assert kinds == sorted(kinds, key=["write", "break"].index)
        assert [e.step for e in mine if e.kind == "write"] == list(range(1, 8))
    assert [e.number for e in EXERCISES] == list(range(1, len(EXERCISES) + 1))


@pytest.mark.parametrize("step", STEPS, ids=[e.name for e in STEPS])
def test_write_step_is_well_formed(step: Exercise) -> None:
    """A step names a function of its script, 3+ hints each with a concrete name or number, known guarantees."""
    text = (ROOT / step.script).read_text()
    emptied, reference, stub = empty_function(text, step)
    assert is_stub(emptied, step) and not is_stub(text, step)
    assert f'raise NotImplementedError("write me: exercise {step.number}")' in stub
    assert "May use:" in step.stub and "Return" in step.stub
    assert len(step.hints) >= 3
    assert all(re.search(CONCRETE, hint) for hint in step.hints), step.hints
    assert set(step.guarantees) <= set(guarantees(step.challenge))
    ast.parse(emptied)  # the rest of the script still imports


@pytest.mark.parametrize("step", STEPS, ids=[e.name for e in STEPS])
def test_a_stub_names_only_what_its_script_has(step: Exercise) -> None:
    """Every `self.name` in a step's stub and hints, and every call its stub names, exists in the script."""
    text = (ROOT / step.script).read_text()
    for name in set(re.findall(r"self\.(_?[A-Za-z]\w*)", step.stub + " ".join(step.hints))):
        assert re.search(rf"\b{name}\b", text), f"{step.name} names self.{name}, which the script lacks"
    for name in set(re.findall(r"\b([A-Za-z_]\w*)\(", step.stub)) - set(dir(builtins)):
        assert re.search(rf"\b{name}\b", text), f"{step.name}'s stub names {name}(), which the script lacks"


@pytest.mark.parametrize("challenge", list(SCRIPTS))
def test_steps_agree_with_the_checker(challenge: str) -> None:
    """The checker's own record of which step holds each guarantee (its STEPS) matches the write-steps'."""
    module = import_module(f"zklab.check_{challenge}")
    for key, number in getattr(module, "STEPS", {}).items():
        step = next(e for e in STEPS if e.challenge == challenge and e.step == number)
        assert key in step.guarantees, f"the checker says step {number} holds {key}; {step.name} does not list it"


@pytest.mark.parametrize("challenge", list(SCRIPTS))
def test_every_guarantee_belongs_to_a_step(challenge: str) -> None:
    """Every guarantee the checker reports is held by some write-step of that challenge."""
    held = {k for e in STEPS if e.challenge == challenge for k in e.guarantees}
    assert set(guarantees(challenge)) <= held


# ---------------------------------------------------------------- write-steps: apply, write, reset

@pytest.mark.parametrize("challenge", list(SCRIPTS))
def test_write_then_reset_gives_back_the_committed_script(challenge: str, tmp_path: Path) -> None:
    """`write CHALLENGE` empties every step and nothing else; `reset` gives back the committed bytes."""
    scripts = copy_scripts(tmp_path)
    script = SCRIPTS[challenge]
    (scripts / script).write_bytes(committed(script))
    done = exercise_cli(scripts, "write", challenge)
    assert done.returncode == 0, done.stderr
    text = (scripts / script).read_text()
    assert all(is_stub(text, e) for e in STEPS if e.challenge == challenge)
    assert text.count("write me: exercise") == 7
    assert exercise_cli(scripts, "reset").returncode == 0
    assert (scripts / script).read_bytes() == committed(script)


def test_apply_keeps_crlf_and_writes_through_a_symlink(tmp_path: Path) -> None:
    """A CRLF script stays CRLF through apply and reset, and a symlinked script stays a symlink."""
    real = copy_scripts(tmp_path / "real")
    scripts = tmp_path / "linked"
    scripts.mkdir()
    for script in SCRIPTS.values():
        (real / script).write_bytes((ROOT / script).read_bytes().replace(b"\n", b"\r\n"))
        (scripts / script).symlink_to(real / script)
    before = (real / SCRIPTS["leader"]).read_bytes()
    for command in (["apply", "2"], ["apply", str(BREAKS[0].number)]):
        done = exercise_cli(scripts, *command)
        data = (real / SCRIPTS["leader"]).read_bytes()
        assert (scripts / SCRIPTS["leader"]).is_symlink()
        assert data.count(b"\n") == data.count(b"\r\n"), command
        assert exercise_cli(scripts, "reset").returncode == 0
        assert (real / SCRIPTS["leader"]).read_bytes() == before, done.stdout + done.stderr


def test_reset_takes_one_exercise_or_one_challenge(tmp_path: Path) -> None:
    """`reset N` puts back exercise N alone, `reset hashing` that challenge's: a learner undoing one hashing
    step keeps the leader steps they wrote."""
    scripts = copy_scripts(tmp_path)
    leader_step = next(e for e in STEPS if e.challenge == "leader")
    hashing_steps = [e for e in STEPS if e.challenge == "hashing"][:2]
    brk = next(e for e in BREAKS if e.challenge == "leader")
    for exercise in (leader_step, *hashing_steps):
        assert exercise_cli(scripts, "apply", str(exercise.number)).returncode == 0
    leader, hashing = scripts / SCRIPTS["leader"], scripts / SCRIPTS["hashing"]
    assert exercise_cli(scripts, "reset", str(hashing_steps[0].number)).returncode == 0
    assert not is_stub(hashing.read_text(), hashing_steps[0]) and is_stub(hashing.read_text(), hashing_steps[1])
    assert is_stub(leader.read_text(), leader_step)
    assert exercise_cli(scripts, "reset", "hashing").returncode == 0
    assert hashing.read_text() == (ROOT / SCRIPTS["hashing"]).read_text() and is_stub(leader.read_text(), leader_step)
    assert exercise_cli(scripts, "reset", "leader").returncode == 0
    assert leader.read_text() == (ROOT / SCRIPTS["leader"]).read_text()
    assert exercise_cli(scripts, "apply", str(brk.number)).returncode == 0  # a break needs the finished recipe
    assert is_applied(leader.read_text(), brk)
    assert exercise_cli(scripts, "reset", str(brk.number)).returncode == 0
    assert leader.read_text() == (ROOT / SCRIPTS["leader"]).read_text()
    unknown = exercise_cli(scripts, "reset", "99")
    assert unknown.returncode == 2 and "no exercise '99'" in unknown.stderr, unknown.stderr


def test_reset_keeps_the_learners_other_edits_and_their_written_step(tmp_path: Path) -> None:
    """An edit elsewhere survives reset; a step the learner wrote is put back and their version kept."""
    scripts = copy_scripts(tmp_path)
    path = scripts / SCRIPTS["leader"]
    step = next(e for e in STEPS if e.function == "election_order")
    assert exercise_cli(scripts, "apply", str(step.number)).returncode == 0
    mine = "    return sorted((c for c in map(parse_candidate, children) if c), key=lambda c: c.seq)"
    text = path.read_text().replace(f'    raise NotImplementedError("write me: exercise {step.number}")', mine)
    path.write_text(text + "# my own note\n")
    done = exercise_cli(scripts, "reset")
    assert done.returncode == 0
    assert path.read_text() == (ROOT / SCRIPTS["leader"]).read_text() + "# my own note\n"
    assert "kept in" in done.stdout


def test_reset_undoes_what_it_can_find_and_names_the_hand_changed_part(tmp_path: Path) -> None:
    """The issue's case: apply the herd exercise, drop its `# exercise` comment by hand, reset."""
    scripts = copy_scripts(tmp_path)
    path = scripts / SCRIPTS["leader"]
    herd = next(e for e in BREAKS if e.name == "leader-1-herd")
    assert exercise_cli(scripts, "apply", str(herd.number)).returncode == 0
    path.write_text(path.read_text().replace("_predecessor_changed))  # exercise\n", "_predecessor_changed))\n"))
    done = exercise_cli(scripts, "reset")
    text = path.read_text()
    assert herd.edits[1]["find"] in text                      # the predecessor watch is back
    assert "get_children(self.path, watch=self._predecessor_changed))\n" in text   # the hand-made line stays
    line = text[:text.index("watch=self._predecessor_changed))\n")].count("\n") + 1
    assert "edit #1" in done.stdout and f"line {line}" in done.stdout, done.stdout
    assert "no exercise" not in done.stdout


@pytest.mark.parametrize(("content", "problem"), [
    ("{bad json", "not valid JSON"),
    ('{"challenge": "leader", "title": "t", "rule": "r", "task": "x", "fails": [], "holds": []}', "missing 'edits'"),
    ('{"challenge": "cooking", "title": "t", "rule": "r", "task": "x", "edits": [{"find": "a", "replace": "b"}],'
     ' "fails": [], "holds": []}', "unknown challenge 'cooking'"),
    ('{"challenge": "leader", "title": "t", "rule": "r", "task": "x", "edits": [], "fails": [], "holds": []}',
     "'edits' must be a non-empty list"),
    ("[1, 2]", "not a JSON object"),
    ('{"kind": "write", "challenge": "leader", "step": 1, "function": "election_order", "title": "t", "rule": "r",'
     ' "stub": "s", "hints": ["h"], "guarantees": ["in-order"]}', "step 1 of leader is"),
])
def test_a_malformed_exercise_file_is_one_line_and_the_rest_work(tmp_path: Path, content: str, problem: str) -> None:
    """Bad JSON, a missing key, an unknown challenge, no edits: one line naming the file; reset ends; list works."""
    directory = tmp_path / "exercises"
    shutil.copytree(ROOT / "exercises", directory)
    (directory / "zz-broken.json").write_text(content)
    scripts = copy_scripts(tmp_path / "scripts")
    for command in (["list"], ["apply", "1"], ["reset"]):
        done = exercise_cli(scripts, *command, exercises=directory)
        warnings = [line for line in done.stderr.splitlines() if "zz-broken.json" in line]
        assert len(warnings) == 1 and problem in warnings[0], done.stderr
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert len(load(directory)[0]) == len(EXERCISES)


# ---------------------------------------------------------------- hints, solutions, progress

def test_hints_come_one_at_a_time(tmp_path: Path) -> None:
    scripts = copy_scripts(tmp_path)
    step = STEPS[0]
    for i, hint in enumerate(step.hints, 1):
        done = exercise_cli(scripts, "hint", str(step.number))
        assert f"hint {i} of {len(step.hints)}" in done.stdout
        assert " ".join(hint.split()[:4]) in " ".join(done.stdout.split())
    done = exercise_cli(scripts, "hint", str(step.number))
    assert "solution" in done.stdout and "--reveal" in done.stdout


def test_a_hint_that_could_not_be_printed_is_not_counted(tmp_path: Path) -> None:
    """`hint N > /dev/full`: one line saying stdout failed, exit 1, and the next `hint N` is still hint 1."""
    scripts = copy_scripts(tmp_path)
    step = STEPS[0]
    with open("/dev/full", "w") as full:
        lost = subprocess.run([sys.executable, "-m", "zklab.exercise", "--scripts", str(scripts), "hint",
                               str(step.number)], cwd=ROOT, stdout=full, stderr=subprocess.PIPE, text=True,
                              timeout=60, env={**os.environ, "ZKLAB_STATE": str(scripts / ".zklab")})
    assert lost.returncode == 1 and "Traceback" not in lost.stderr and len(lost.stderr.splitlines()) == 1, lost.stderr
    assert f"hint 1 of {len(step.hints)}" in exercise_cli(scripts, "hint", str(step.number)).stdout


def test_the_solution_opens_after_the_step_holds_or_with_reveal(tmp_path: Path) -> None:
    scripts = copy_scripts(tmp_path)
    step = STEPS[0]
    shut = exercise_cli(scripts, "solution", str(step.number))
    assert shut.returncode == 1 and "def election_order" not in shut.stdout and "--reveal" in shut.stdout
    revealed = exercise_cli(scripts, "solution", str(step.number), "--reveal")
    assert revealed.stdout.startswith("spoiler") and "def election_order" in revealed.stdout
    state = scripts / ".zklab" / "exercises.json"
    state.parent.mkdir()
    state.write_text(json.dumps({"progress": {"leader": {"verdicts": {k: True for k in step.guarantees},
                                                         "unwritten": {}}}}))
    opened = exercise_cli(scripts, "solution", str(step.number))
    assert opened.returncode == 0 and "spoiler" not in opened.stdout and "def election_order" in opened.stdout


def test_progress_counts_the_steps_that_hold_in_teaching_order(tmp_path: Path, monkeypatch) -> None:
    """'leader: steps 1-3 of 7 hold': the longest prefix of steps whose guarantees all hold."""
    monkeypatch.setenv("ZKLAB_STATE", str(tmp_path))
    steps = [e for e in STEPS if e.challenge == "leader"]
    keys = sorted(set(guarantees("leader")) | {k for e in steps for k in e.guarantees})
    first_three = {k for e in steps[:3] for k in e.guarantees}
    verdicts = {k: k in first_three for k in keys}
    unwritten = {k: steps[3].function for k in keys if k not in first_three}
    line = record_check("leader", verdicts, unwritten)
    assert line.startswith("leader: steps 1-3 of 7 hold"), line
    assert json.loads((tmp_path / "exercises.json").read_text())["progress"]["leader"]["verdicts"] == verdicts
    listing = subprocess.run([sys.executable, "-m", "zklab.exercise", "list"], cwd=ROOT, capture_output=True,
                             text=True, env={**os.environ, "ZKLAB_STATE": str(tmp_path)}).stdout
    assert "reference, holding" in listing  # nothing emptied here: the reference stands, and holds
    nothing = progress_line("leader", steps, {k: False for k in keys}, {k: steps[0].function for k in keys})
    assert nothing.startswith("leader: 0 of 7 steps hold; next: step 1, election_order")
    everything = progress_line("leader", steps, {k: True for k in keys}, {})
    assert everything == "leader: steps 1-7 of 7 hold"
    # Whose steps hold: a learner who applied steps 1-3 one by one must not read "7 of 7" as all theirs.
    holding = {k: True for k in keys}
    assert progress_line("leader", steps, holding, {}, set()).startswith(
        "leader: steps 1-7 of 7 hold: the reference's (`./run.sh exercise write leader`")
    assert progress_line("leader", steps, holding, {}, {e.name for e in steps[:3]}) == \
        "leader: steps 1-7 of 7 hold; you wrote steps 1, 2, 3, the others are the reference's"
    assert progress_line("leader", steps, holding, {}, {e.name for e in steps}) == \
        "leader: steps 1-7 of 7 hold, all written by you"


def test_progress_follows_what_is_written_not_only_what_the_check_hit() -> None:
    """After `exercise write`, the step the checker's scenarios hit first is not always step 1: the line must
    still say step 1 is next while it is a stub, say which written steps wait on which later one, name a
    failing step as failing, and after a break-exercise speak of the break, not of a step to write."""
    steps = [e for e in STEPS if e.challenge == "leader"]
    keys = sorted(set(guarantees("leader")) | {k for e in steps for k in e.guarantees})
    nothing_holds = {k: False for k in keys}
    def hit(step: Exercise) -> dict[str, str]:
        return {k: step.function for k in keys}
    all_stubs = frozenset(e.name for e in steps)
    line = progress_line("leader", steps, nothing_holds, hit(steps[1]), set(), all_stubs)
    assert line == f"leader: 0 of 7 steps hold; next: step 1, {steps[0].function} (exercise {steps[0].number})"
    line = progress_line("leader", steps, nothing_holds, hit(steps[1]), set(), all_stubs - {steps[0].name})
    assert line == (f"leader: 0 of 7 steps hold; step 1 is written, and its guarantees wait on step 2, "
                    f"{steps[1].function} (exercise {steps[1].number})"), line
    line = progress_line("leader", steps, nothing_holds, hit(steps[6]), set(), frozenset({steps[6].name}))
    assert line == (f"leader: 0 of 7 steps hold; steps 1-6 are written, and their guarantees wait on step 7, "
                    f"{steps[6].function} (exercise {steps[6].number})"), line
    last = steps[6].guarantees[0]
    line = progress_line("leader", steps, {k: k != last for k in keys}, {})
    assert line == (f"leader: steps 1-6 of 7 hold; step 7's guarantees fail ({last}): the advice above names the "
                    "function to look at"), line
    brk = next(e for e in load_all() if e.challenge == "leader" and e.kind == "break")
    line = progress_line("leader", steps, nothing_holds, {}, {brk.name}, frozenset(), brk)
    assert line.startswith(f"leader: break-exercise {brk.number} is applied ({brk.title})"), line


def test_reset_without_its_state_takes_the_reference_from_git(tmp_path: Path) -> None:
    """With .zklab/ gone, reset still puts back an emptied step: the committed script has its reference."""
    scripts = copy_scripts(tmp_path)
    git = ["git", "-C", str(scripts), "-c", "user.name=lab", "-c", "user.email=lab@example.invalid"]
    for command in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "lab"]):
        subprocess.run(git + command, check=True, capture_output=True)
    before = (scripts / SCRIPTS["hashing"]).read_bytes()
    assert exercise_cli(scripts, "write", "hashing").returncode == 0
    shutil.rmtree(scripts / ".zklab")
    done = exercise_cli(scripts, "reset")
    assert done.returncode == 0 and "put back" in done.stdout, done.stdout + done.stderr
    assert (scripts / SCRIPTS["hashing"]).read_bytes() == before


def test_a_step_written_by_hand_after_a_reset_is_the_learners_in_the_progress_line(tmp_path: Path,
                                                                                    monkeypatch) -> None:
    """A learner trial pasted its own bodies back after `exercise reset`: check said 'the reference's'. A step
    whose function differs from the committed one is the learner's, whatever the state file says."""
    monkeypatch.setenv("ZKLAB_STATE", str(tmp_path / "state"))
    scripts = copy_scripts(tmp_path / "scripts")
    for command in (["init", "-q"], ["add", "."], ["-c", "user.name=l", "-c", "user.email=l@l", "commit", "-qm", "x"]):
        subprocess.run(["git", "-C", str(scripts), *command], check=True, capture_output=True)
    path = scripts / SCRIPTS["leader"]
    body = ("def election_order(children: list[str]) -> list[Candidate]:\n"
            "    return sorted(filter(None, map(parse_candidate, children)), key=lambda c: c.seq)\n")
    path.write_text(replace_function(path.read_text(), "election_order", body))
    keys = sorted(guarantees("leader"))
    line = record_check("leader", {k: True for k in keys}, {}, scripts)
    assert line == "leader: steps 1-7 of 7 hold; you wrote step 1, the others are the reference's", line
