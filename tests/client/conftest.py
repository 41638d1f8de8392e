"""Fixtures for the client tests (the fake mgmtd itself is in mgmtd_fake.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
import trio
from mgmtd_fake import FakeMgmtd, ServedFake, serve_fake

from threefs.wire.mgmtd import RoutingInfo


@pytest.fixture
def fake_factory(nursery: trio.Nursery) -> Callable[..., Awaitable[ServedFake]]:
    """``await fake_factory(routing=None, is_primary=True)``: a ``FakeMgmtd`` served for the test."""

    async def factory(routing: RoutingInfo | None = None, *, is_primary: bool = True) -> ServedFake:
        return await serve_fake(nursery, FakeMgmtd(routing, is_primary=is_primary))

    return factory
