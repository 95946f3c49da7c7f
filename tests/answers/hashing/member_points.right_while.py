# ruff: noqa: F821, E501  (one function whose names come from the challenge script it goes into)
# right: counts its points in a while loop
def member_points(name: str, weight: float, vnodes: int) -> list[int]:
    wanted = round(vnodes * check_weight(weight)) or 1
    points, i = [], 0
    while i < wanted:
        points.append(point(name + "#" + str(i)))
        i += 1
    return points
