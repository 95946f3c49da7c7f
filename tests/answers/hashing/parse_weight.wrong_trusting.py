# ruff: noqa: F821, E501  (one function whose names come from the challenge script it goes into)
# wrong: trusts the member's data: any number is a weight
# fails: foreign
def parse_weight(data: bytes) -> float:
    return float(json.loads(data or b'{"weight": 1}')["weight"])
