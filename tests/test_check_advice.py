"""Guarantees print in the order of the rules (the lesson's step order), so the first advice printed is about the
earliest rule. (That every break-exercise's advice names a function it edited is proved in test_exercises.py,
from the same checker runs that prove each exercise's verdict.)"""

from __future__ import annotations

import pytest

from zklab.check import guarantees
from zklab.check_hashing import STEPS as HASHING_STEPS
from zklab.check_leader import STEPS as LEADER_STEPS


@pytest.mark.parametrize("challenge, steps", [("leader", LEADER_STEPS), ("hashing", HASHING_STEPS)])
def test_guarantees_print_in_the_order_of_the_rules(challenge: str, steps: dict[str, int]) -> None:
    """The output order follows the step that holds each rule, so the first advice printed when several
    guarantees fail is about the earliest rule."""
    order = list(guarantees(challenge))
    assert set(order) == set(steps)
    assert [steps[key] for key in order] == sorted(steps[key] for key in order)
