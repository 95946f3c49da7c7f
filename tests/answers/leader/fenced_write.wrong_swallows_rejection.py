# ruff: noqa: F821, E501  (one function whose names come from the challenge script it goes into)
# wrong: keeps ZooKeeper's check in the transaction, but answers -1 when the commit fails instead of raising:
# ZooKeeper rejects the deposed leader's write, and its caller never hears of it
# fails: stale-write
def fenced_write(client: KazooClient, token: FencingToken, ledger: str, value: str | bytes,
                 timeout: float | None = None) -> int:
    record = json.dumps({"epoch": token.epoch, "leader": token.leader, "value": ledger_text(value)}).encode()
    wait = timeout if timeout is not None else client._session_timeout / 1000.0
    stat = client.exists_async(ledger).get(timeout=wait)
    tx = client.transaction()
    tx.check(token.node_path, 0)
    if stat is None:
        tx.create(ledger, record)
    else:
        tx.set_data(ledger, record, version=stat.version)
    results = tx.commit_async().get(timeout=wait)
    if any(isinstance(r, Exception) for r in results):
        return -1
    return 0 if stat is None else results[1].version
