"""IdlePool: reuse, refusal of unusable connections, the idle bound, and close."""

from threefs.kv.pool import IdlePool


class Conn:
    made = 0

    def __init__(self) -> None:
        Conn.made += 1
        self.closed = False
        self.busy = False

    def close(self) -> None:
        self.closed = True


def test_reuses_refuses_bounds_and_closes():
    pool = IdlePool(Conn, lambda c: not c.busy, max_idle=1)
    first = pool.take()
    pool.give(first)
    assert pool.take() is first and not first.closed  # reused
    first.busy = True
    pool.give(first)
    assert first.closed  # not reusable: closed, not kept
    a, b = pool.take(), pool.take()
    assert a is not b
    pool.give(a)
    pool.give(b)
    assert not a.closed and b.closed  # over max_idle
    pool.close()
    assert pool.closed and a.closed
    late = Conn()
    pool.give(late)
    assert late.closed  # a closed pool keeps nothing
