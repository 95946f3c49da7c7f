# ruff: noqa: F821, E501  (one function whose names come from the challenge script it goes into)
# wrong: checks the record's shape but not its size: deeply nested data raises RecursionError, not ValueError,
# and the router's rebuild fails on every retry; a padded record of any size gets on the ring
# fails: foreign
def parse_weight(data: bytes) -> float:
    if not data:
        return 1
    try:
        doc = json.loads(data)
    except ValueError:
        raise ValueError("not JSON") from None
    if not isinstance(doc, dict) or "weight" not in doc:
        raise ValueError("not {\"weight\": number}")
    return check_weight(doc["weight"])
