# ruff: noqa: F821, E501  (one function whose names come from the challenge script it goes into)
# wrong: int() instead of round(), and no floor of one point: the lightest member may own no key at all
# fails: weights
def member_points(name: str, weight: float, vnodes: int) -> list[int]:
    return [point(f"{name}#{i}") for i in range(int(vnodes * weight))]
