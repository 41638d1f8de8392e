"""Fixtures for the mgmtd tests: a mem KV engine shared by the mgmtds of one test, and a
factory of mgmtds driven by hand (see ``mgmtd_helpers``). Tests that use them request
``mock_clock`` so that wall time starts at ``BASE_MS`` and moves only by ``mock_clock.jump``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
import trio
from mgmtd_helpers import Mgmtd, mgmtd_config, trio_wall_ms
from trio.testing import MockClock

from mgmtd.state import MgmtdState
from threefs.kv import Engine, MemEngine

MgmtdFactory = Callable[..., Awaitable[Mgmtd]]


@pytest.fixture
def engine() -> Engine:
    return MemEngine()


@pytest.fixture
def make_mgmtd(engine: Engine) -> MgmtdFactory:
    """``await make_mgmtd(node_id=1, offset_ms=0, primary=True, **config)``: a mgmtd on the
    shared mem engine, after one lease check, which must make it primary or not as asked."""

    async def make(node_id: int = 1, *, offset_ms: int = 0, primary: bool = True, **config: object) -> Mgmtd:
        if not isinstance(trio.lowlevel.current_clock(), MockClock):
            raise RuntimeError("mgmtd unit tests run on a MockClock: request the mock_clock fixture")
        state = MgmtdState(mgmtd_config(node_id=node_id, **config), engine, now_ms=trio_wall_ms(offset_ms))
        state.address = f"127.0.0.1:{9000 + node_id}"
        mgmtd = Mgmtd(state)
        if await mgmtd.keeper.run_once() != primary:
            raise RuntimeError(
                f"mgmtd {node_id} is{'' if primary else ' unexpectedly'} primary: {state.lease}"
            )
        return mgmtd

    return make


@pytest.fixture
async def mgmtd(make_mgmtd: MgmtdFactory) -> Mgmtd:
    return await make_mgmtd()
