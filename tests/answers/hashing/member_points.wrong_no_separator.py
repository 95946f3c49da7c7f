# ruff: noqa: F821, E501  (one function whose names come from the challenge script it goes into)
# wrong: labels without a separator: m1's 10th label (m110) is m11's first, so members share points
# fails: balance
def member_points(name: str, weight: float, vnodes: int) -> list[int]:
    return [point(f"{name}{i}") for i in range(max(1, round(vnodes * check_weight(weight))))]
