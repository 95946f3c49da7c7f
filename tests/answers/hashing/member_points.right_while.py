# ruff: noqa: F821, E501  (one function whose names come from the challenge script it goes into)
# right: counts its points in a while loop, labelled name-i (not name#i): another label is another ring,
# as even as the reference's on average; the checker's bounds must pass it (it once failed 1.27x vs 1.15)
def member_points(name: str, weight: float, vnodes: int) -> list[int]:
    wanted = round(vnodes * check_weight(weight)) or 1
    points, i = [], 0
    while i < wanted:
        points.append(point(name + "-" + str(i)))
        i += 1
    return points
