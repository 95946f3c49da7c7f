# ruff: noqa: F821, E501  (one function whose names come from the challenge script it goes into)
# wrong: sorts every child, parsed or not: a child no candidate made (None) breaks the sort for everyone
# fails: one-leader
def election_order(children: list[str]) -> list[Candidate]:
    return sorted((parse_candidate(child) for child in children), key=lambda c: c.seq)
