# ruff: noqa: F821, E501  (one function whose names come from the challenge script it goes into)
# wrong: refuses empty data, which is a member made by hand with zkCli.sh: weight 1
# fails: foreign
def parse_weight(data: bytes) -> float:
    if len(data) > MAX_DATA_BYTES:
        raise ValueError("too big")
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        raise ValueError("not JSON") from None
    if not isinstance(doc, dict) or "weight" not in doc:
        raise ValueError("no weight")
    return check_weight(doc["weight"])
