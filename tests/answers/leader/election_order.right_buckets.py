# ruff: noqa: F821, E501  (one function whose names come from the challenge script it goes into)
# right: buckets by sequence number, then walks the numbers in order
def election_order(children: list[str]) -> list[Candidate]:
    by_seq: dict[int, list[Candidate]] = {}
    for child in children:
        candidate = parse_candidate(child)
        if candidate:
            by_seq.setdefault(candidate.seq, []).append(candidate)
    return [c for seq in sorted(by_seq) for c in by_seq[seq]]
