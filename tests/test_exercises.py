"""Every exercise under exercises/ does what it promises: the checker reports exactly its expected verdict."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from zklab.check import guarantees
from zklab.check_lab import ROOT, SCRIPTS
from zklab.exercise import Exercise, apply_edit, is_applied, load_all, things_to_try, undo_edit

EXERCISES = load_all()
# Two proofs at a time: each runs its own ZooKeeper and checker on a 2-core machine.
PARALLEL = 2
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


def prove(exercise: Exercise, workdir: Path) -> tuple[dict[str, bool], str, int]:
    """Apply `exercise` to a copy of the scripts and run the checker on the copy, in a process of its own."""
    copy = workdir / exercise.name
    copy.mkdir()
    for script in SCRIPTS.values():
        shutil.copy(ROOT / script, copy / script)
    path = copy / exercise.script
    path.write_text(apply_edit(path.read_text(), exercise))
    result = subprocess.run([sys.executable, "-m", "zklab.check", exercise.challenge, "--scripts", str(copy)],
                            cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONIOENCODING": "utf-8"})
    return verdict(result.stdout, exercise.challenge), result.stdout + result.stderr, result.returncode


@pytest.fixture(scope="module")
def proofs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[dict[str, bool], str, int]]:
    workdir = tmp_path_factory.mktemp("exercises")
    with ThreadPoolExecutor(PARALLEL) as pool:
        results = pool.map(lambda e: prove(e, workdir), EXERCISES)
        return {e.name: r for e, r in zip(EXERCISES, results, strict=True)}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("exercise", EXERCISES, ids=[e.name for e in EXERCISES])
def test_exercise_gives_exactly_its_verdict(exercise: Exercise, proofs: dict) -> None:
    """The checker, run on the scripts with the exercise applied, breaks exactly the promised guarantees."""
    found, output, code = proofs[exercise.name]
    expected = {**{k: False for k in exercise.fails}, **{k: True for k in exercise.holds}}
    assert found == expected, output
    assert code == (1 if exercise.fails else 0), output


@pytest.mark.parametrize("exercise", EXERCISES, ids=[e.name for e in EXERCISES])
def test_exercise_is_well_formed(exercise: Exercise) -> None:
    """Each exercise names every guarantee once, quotes a rule of its challenge's table, and undoes cleanly."""
    assert sorted(exercise.fails + exercise.holds) == sorted(guarantees(exercise.challenge))
    assert f"| {exercise.rule} |" in rules_table(exercise.challenge)
    original = (ROOT / exercise.script).read_text()
    edited = apply_edit(original, exercise)
    assert edited != original and is_applied(edited, exercise) and not is_applied(original, exercise)
    assert undo_edit(edited, exercise) == original


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
