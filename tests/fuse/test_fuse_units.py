"""Unit tests of the FUSE daemon's pure parts: mount-option parsing and the caller cache."""

from __future__ import annotations

import types

import pytest

from client.fuse import attrs
from client.fuse.attrs import CallerCache
from client.fuse.options import parse_mount_options
from threefs.errors import Code, ThreeFSError


def test_mount_options_defaults_and_values() -> None:
    defaults = parse_mount_options("")
    assert (defaults.entry_timeout, defaults.attr_timeout, defaults.negative_timeout) == (0, 0, 0)
    assert defaults.groups_timeout == 1.0 and not defaults.writeback
    options = parse_mount_options("attr_timeout=1.5,entry_timeout=2,groups_timeout=0,writeback,allow_other")
    assert (options.attr_timeout, options.entry_timeout, options.groups_timeout) == (1.5, 2.0, 0.0)
    assert options.writeback and options.allow_other


@pytest.mark.parametrize("bad", ["groups_timeout=-1", "groups_timeout=nan", "attr_timeout=x", "nosuchoption"])
def test_mount_options_refused(bad: str) -> None:
    with pytest.raises(ThreeFSError) as caught:
        parse_mount_options(bad)
    assert caught.value.code == Code.CONFIG_INVALID


class _Groups:
    """Stands in for ``pyfuse3.get_sup_groups``: answers ``groups[pid]`` and counts calls."""

    def __init__(self) -> None:
        self.groups: dict[int, set[int]] = {}
        self.calls = 0

    def __call__(self, pid: int) -> set[int]:
        self.calls += 1
        if pid not in self.groups:
            raise OSError(3, "no such process")
        return set(self.groups[pid])


@pytest.fixture
def sup_groups(monkeypatch: pytest.MonkeyPatch) -> _Groups:
    fake = _Groups()
    monkeypatch.setattr(attrs.pyfuse3, "get_sup_groups", fake)
    return fake


def _ctx(pid: int, uid: int, gid: int) -> types.SimpleNamespace:
    return types.SimpleNamespace(pid=pid, uid=uid, gid=gid)


def test_caller_cache_keeps_groups_for_its_timeout(
    sup_groups: _Groups, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [100.0]
    monkeypatch.setattr(attrs.time, "monotonic", lambda: clock[0])
    sup_groups.groups = {7: {30, 20}, 8: {40}}
    cache = CallerCache(timeout=1.0)
    first = cache(_ctx(7, 1000, 1000))
    assert first.groups == [20, 30] and first.uid == 1000 and not first.admin
    sup_groups.groups[7] = {50}  # setgroups() without a change of uid or gid
    assert cache(_ctx(7, 1000, 1000)).groups == [20, 30]  # kept within the timeout
    assert sup_groups.calls == 1
    assert cache(_ctx(7, 1001, 1000)).groups == [50]  # another uid is another key
    assert cache(_ctx(8, 0, 0)).admin  # another pid; uid 0 is admin root
    clock[0] += 1.01
    assert cache(_ctx(7, 1000, 1000)).groups == [50]  # expired: read again
    assert sup_groups.calls == 4


def test_caller_cache_timeout_zero_always_reads(sup_groups: _Groups) -> None:
    sup_groups.groups = {7: {20}}
    cache = CallerCache(timeout=0)
    for _ in range(3):
        cache(_ctx(7, 1000, 1000))
    assert sup_groups.calls == 3


def test_caller_cache_of_gone_process_and_limit(sup_groups: _Groups) -> None:
    cache = CallerCache(timeout=10.0, limit=2)
    gone = cache(_ctx(99, 1000, 1001))  # the process already exited: uid and gid still count
    assert (gone.uid, gone.gid, gone.groups) == (1000, 1001, [])
    sup_groups.groups = {1: set(), 2: set(), 3: set()}
    for pid in (1, 2, 3):
        cache(_ctx(pid, 0, 0))
    assert len(cache._entries) <= 2  # bounded: starts over when full
