# ruff: noqa: F821, E501  (one function whose names come from the challenge script it goes into)
# wrong: sorts the node names as strings, so the random GUID in front decides the order
# fails: one-leader, in-order
def election_order(children: list[str]) -> list[Candidate]:
    return [c for c in map(parse_candidate, sorted(children)) if c is not None]
