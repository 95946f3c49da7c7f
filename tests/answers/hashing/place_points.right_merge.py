# ruff: noqa: F821, E501  (one function whose names come from the challenge script it goes into)
# right: sorts each member's pairs, then merges the sorted runs
def place_points(weights: Mapping[str, float], vnodes: int) -> tuple[list[int], list[str]]:
    import heapq  # the script does not import it: an answer may bring its own helpers

    runs = [sorted((p, name) for p in member_points(name, w, vnodes)) for name, w in weights.items()]
    merged = list(heapq.merge(*runs))
    return [p for p, _ in merged], [name for _, name in merged]
