"""Model-based test: random writes and range reads on every engine agree with a dict model."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from threefs.kv import Engine, run_transaction

# A small alphabet with the edge bytes, so ranges often share prefixes and hit boundaries.
_key_bytes = st.sampled_from([0x00, 0x01, 0x61, 0x7F, 0x80, 0xFE, 0xFF])
keys = st.lists(_key_bytes, max_size=3).map(bytes).filter(lambda key: not key.startswith(b"\xff"))
bounds = st.lists(_key_bytes, max_size=3).map(bytes)
values = st.binary(max_size=4)

write_ops = st.one_of(
    st.tuples(st.just("set"), keys, values),
    st.tuples(st.just("clear"), keys),
    st.tuples(st.just("clear_range"), bounds, bounds),
)
range_reads = st.tuples(bounds, bounds, st.integers(min_value=0, max_value=4), st.booleans())


def model_range(model: dict[bytes, bytes], begin: bytes, end: bytes, limit: int, reverse: bool):
    end = min(end, b"\xff")
    pairs = sorted(((k, v) for k, v in model.items() if begin <= k < end), reverse=reverse)
    return pairs[:limit] if limit else pairs


def apply(model: dict[bytes, bytes], op: tuple) -> None:
    if op[0] == "set":
        model[op[1]] = op[2]
    elif op[0] == "clear":
        model.pop(op[1], None)
    else:
        for key in [k for k in model if op[1] <= k < min(op[2], b"\xff")]:
            del model[key]


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    committed=st.dictionaries(keys, values, max_size=8),
    ops=st.lists(write_ops, max_size=8),
    reads=st.lists(range_reads, min_size=1, max_size=4),
)
def test_range_reads_match_dict_model(engine: Engine, committed, ops, reads) -> None:
    def reset(txn):
        txn.clear_range(b"", b"\xff")
        for key, value in committed.items():
            txn.set(key, value)

    run_transaction(engine, reset)
    model = dict(committed)
    txn = engine.transaction()
    try:
        for op in ops:
            getattr(txn, op[0])(*op[1:])
            apply(model, op)
        for begin, end, limit, reverse in reads:  # read-your-writes over committed + buffered
            assert txn.get_range(begin, end, limit, reverse) == model_range(model, begin, end, limit, reverse)
        for key in {op[1] for op in ops} | set(committed):
            assert txn.get(key) == model.get(key)
        txn.commit()
    finally:
        txn.rollback()
    after = engine.transaction(read_only=True)
    for begin, end, limit, reverse in reads:
        assert after.get_range(begin, end, limit, reverse) == model_range(model, begin, end, limit, reverse)
    after.rollback()
