# ruff: noqa: F821, E501  (one function whose names come from the challenge script it goes into)
# wrong: one point per member, whatever vnodes and weight say: arcs of wildly uneven length
# fails: balance
def member_points(name: str, weight: float, vnodes: int) -> list[int]:
    return [point(f"{name}#0")]
