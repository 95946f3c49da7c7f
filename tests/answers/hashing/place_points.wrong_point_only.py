# ruff: noqa: F821, E501  (one function whose names come from the challenge script it goes into)
# wrong: sorts by the point alone, so equal points stay in the order the members came
# fails: order
def place_points(weights: Mapping[str, float], vnodes: int) -> tuple[list[int], list[str]]:
    entries = [(p, name) for name, w in weights.items() for p in member_points(name, w, vnodes)]
    entries.sort(key=lambda entry: entry[0])
    return [p for p, _ in entries], [name for _, name in entries]
