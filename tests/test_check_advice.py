"""Hints aim at the function that holds the rule: every guarantee a break-exercise breaks gives advice naming a
function the exercise edited, and guarantees print in the order of the rules (the lesson's step order)."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.check_proofs import Outcome, copy_scripts, edited_names, run_checker
from zklab.check import guarantees
from zklab.check_hashing import STEPS as HASHING_STEPS
from zklab.check_lab import ROOT
from zklab.check_leader import STEPS as LEADER_STEPS
from zklab.exercise import Exercise, apply_edit, load_all

BREAKS = [e for e in load_all() if e.kind == "break" and e.fails]
PARALLEL = 2


def edited(exercise: Exercise) -> set[str]:
    """The functions (or module-level names) whose source holds one of the exercise's `find` texts."""
    text = (ROOT / exercise.script).read_text()
    return {name for edit in exercise.edits for name in edited_names(text, edit["find"])}


def names(advice: str, qualname: str) -> bool:
    return re.search(rf"(?<![\w.]){re.escape(qualname)}(?!\w)", advice) is not None


def prove(exercise: Exercise, workdir: Path) -> Outcome:
    text = apply_edit((ROOT / exercise.script).read_text(), exercise)
    scripts = copy_scripts(workdir / exercise.name, {exercise.script: text})
    return run_checker(exercise.challenge, scripts, "--only", ",".join(exercise.fails))


@pytest.fixture(scope="module")
def proofs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    workdir = tmp_path_factory.mktemp("advice")
    with ThreadPoolExecutor(PARALLEL) as pool:
        return dict(zip([e.name for e in BREAKS], pool.map(lambda e: prove(e, workdir), BREAKS), strict=True))


@pytest.mark.timeout(300)
@pytest.mark.parametrize("exercise", BREAKS, ids=[e.name for e in BREAKS])
def test_the_advice_names_a_function_the_exercise_edited(exercise: Exercise, proofs: dict[str, Outcome]) -> None:
    """Each guarantee the exercise breaks fails with advice naming one of the functions it edited."""
    outcome, functions = proofs[exercise.name], edited(exercise)
    assert functions, f"{exercise.name}: its edits are in no function"
    for key in exercise.fails:
        held, figure, advice = outcome.verdicts[key]
        assert not held, outcome.output
        assert any(names(advice, f) for f in functions), f"{key}: advice names none of {functions}: {advice}"


@pytest.mark.parametrize("challenge, steps", [("leader", LEADER_STEPS), ("hashing", HASHING_STEPS)])
def test_guarantees_print_in_the_order_of_the_rules(challenge: str, steps: dict[str, int]) -> None:
    """The output order follows the step that holds each rule, so the first advice printed when several
    guarantees fail is about the earliest rule."""
    order = list(guarantees(challenge))
    assert set(order) == set(steps)
    assert [steps[key] for key in order] == sorted(steps[key] for key in order)
