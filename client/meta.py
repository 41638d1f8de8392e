"""The meta client: typed calls of every meta method, with retries and idempotent request ids.

``MetaClient`` sends each call to one of the cluster's meta servers: the ``addresses`` given, or
the META nodes that routing info lists as ACTIVE (refreshed when none answers). It starts at a
random server, so clients spread over them, and moves to the next one when a server cannot be
reached. Only retryable errors are retried, within the call's deadline, with doubling backoff.

Idempotency: every mutating call gets a ``RequestId`` (this client's 16 random bytes and a
sequence number that only grows) once, before its first try; every retry sends the same id, so
meta applies the request once and a retry after a lost reply gets the first answer.

Paths are ``str`` (encoded with ``os.fsencode``), ``bytes``, or a ``PathAt`` (relative to a
directory inode). The ``Caller`` (POSIX identity) is the one given at construction (default:
this process's uid, gid and groups, not admin) unless a call names another.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import random
from collections.abc import Sequence
from typing import Any

import msgspec
import trio

from client.routing import RoutingCache
from threefs.config import Section
from threefs.errors import Code, ThreeFSError
from threefs.layout import Layout
from threefs.rpc import RpcClient, format_address, parse_address
from threefs.wire import meta as wire
from threefs.wire.common import MethodSpec
from threefs.wire.meta import Caller, Inode, InodeType, ListEntry, PathAt, RequestId
from threefs.wire.mgmtd import NodeStatus, NodeType

__all__ = ["MetaClient", "MetaClientConfig", "PathLike", "process_caller"]

log = logging.getLogger("client.meta")

PathLike = str | bytes | os.PathLike[str] | PathAt

# Errors after which another meta server may do better than this one.
_SWITCH_SERVER = frozenset(
    {
        Code.RPC_CONNECT_FAILED,
        Code.RPC_CONNECTION_CLOSED,
        Code.RPC_DEADLINE_EXCEEDED,
        Code.RPC_SERVER_OVERLOADED,
    }
)


class MetaClientConfig(Section):
    """How ``MetaClient`` retries. ``request_timeout_s``: the whole time one call may take,
    retries included; ``attempt_timeout_s``: each RPC's deadline; the pause between tries
    doubles from ``retry_initial_backoff_s`` up to ``retry_max_backoff_s``."""

    request_timeout_s: float = 30.0
    attempt_timeout_s: float = 10.0
    retry_initial_backoff_s: float = 0.01
    retry_max_backoff_s: float = 1.0

    def __post_init__(self) -> None:
        for name in ("request_timeout_s", "attempt_timeout_s", "retry_initial_backoff_s"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ThreeFSError(Code.CONFIG_INVALID, f"meta_client.{name} must be a finite number > 0")
        if not self.retry_max_backoff_s >= self.retry_initial_backoff_s:
            raise ThreeFSError(
                Code.CONFIG_INVALID, "meta_client.retry_max_backoff_s must be >= retry_initial_backoff_s"
            )


def process_caller(*, admin: bool = False) -> Caller:
    """This process's identity: effective uid and gid, supplementary groups."""
    return Caller(uid=os.geteuid(), gid=os.getegid(), groups=sorted(set(os.getgroups())), admin=admin)


def to_path_at(path: PathLike, parent: int = wire.ROOT_INODE) -> PathAt:
    """``path`` as a ``PathAt`` relative to ``parent`` (an absolute path ignores it)."""
    if isinstance(path, PathAt):
        return path
    return PathAt(parent, path if isinstance(path, bytes) else os.fsencode(path))


class MetaClient:
    """Calls meta servers through ``rpc`` (borrowed: the caller keeps it open). Servers come from
    ``addresses`` when given, else from ``routing`` (borrowed; refreshed here when no listed
    server answers). ``caller``: the default identity; ``client_id``: 16 bytes naming this
    client in request ids (default random); ``client_node``: this client's node id at mgmtd,
    recorded in its write sessions so they are pruned if it stops heartbeating (0: none).

    Every method raises ``ThreeFSError``: the server's code (META_NOT_FOUND, ...), or the last
    retryable error when the deadline passed, or CLIENT_ROUTING_UNAVAILABLE when no meta server
    is known. Safe to use from many tasks at once.
    """

    def __init__(
        self,
        rpc: RpcClient,
        *,
        routing: RoutingCache | None = None,
        addresses: Sequence[str] = (),
        caller: Caller | None = None,
        config: MetaClientConfig | None = None,
        client_id: bytes | None = None,
        client_node: int = 0,
    ) -> None:
        if isinstance(addresses, str):
            raise ThreeFSError(Code.INVALID_ARG, "addresses must be a list of HOST:PORT")
        if not addresses and routing is None:
            raise ThreeFSError(Code.INVALID_ARG, "MetaClient needs meta addresses or a routing cache")
        if client_id is not None and len(client_id) != 16:
            raise ThreeFSError(Code.INVALID_ARG, f"client_id must be 16 bytes, not {len(client_id)}")
        self.rpc = rpc
        self.routing = routing
        self.fixed_addresses = tuple(format_address(parse_address(a)) for a in addresses)
        self.caller = caller if caller is not None else process_caller()
        self.config = config or MetaClientConfig()
        self.client_id = client_id if client_id is not None else os.urandom(16)
        self.client_node = client_node
        self._seq = itertools.count(1)
        self._offset = random.randrange(1 << 16)
        self.retries = 0

    # ------------------------------------------------------------------ the call loop

    def next_request_id(self) -> RequestId:
        """A request id never used before by this client."""
        return RequestId(self.client_id, next(self._seq))

    def servers(self) -> list[str]:
        """The meta servers calls go to now (fixed, or ACTIVE META nodes in routing)."""
        if self.fixed_addresses:
            return list(self.fixed_addresses)
        if self.routing is None or self.routing.version == 0:
            return []
        nodes = sorted(self.routing.routing.nodes.values(), key=lambda n: n.node_id)
        return [
            n.addresses[0]
            for n in nodes
            if n.node_type == NodeType.META and n.status == NodeStatus.ACTIVE and n.addresses
        ]

    async def _pick(self, deadline: float, refresh: bool) -> str:
        servers = self.servers()
        if (not servers or refresh) and self.routing is not None and not self.fixed_addresses:
            try:
                await self.routing.refresh(timeout_s=max(deadline - trio.current_time(), 0.1))
            except ThreeFSError as exc:
                if not servers:
                    raise ThreeFSError(
                        Code.CLIENT_ROUTING_UNAVAILABLE, f"no meta server known: {exc.message}"
                    ) from exc
            servers = self.servers()
        if not servers:
            raise ThreeFSError(Code.CLIENT_ROUTING_UNAVAILABLE, "no ACTIVE meta server in routing info")
        return servers[self._offset % len(servers)]

    async def call(
        self,
        spec: MethodSpec,
        request: msgspec.Struct,
        *,
        timeout_s: float | None = None,
        attempt_timeout_s: float | None = None,
    ) -> Any:
        """Send ``request`` to a meta server and return the response (see the class docstring)."""
        config = self.config
        attempt_s = attempt_timeout_s or config.attempt_timeout_s
        deadline = trio.current_time() + (timeout_s or config.request_timeout_s)
        backoff = config.retry_initial_backoff_s
        refresh = False
        attempt = 0
        while True:
            attempt += 1
            try:
                address = await self._pick(deadline, refresh)
            except ThreeFSError as exc:
                if trio.current_time() + backoff >= deadline:
                    raise
                log.debug("%s: %s; retrying", spec.name, exc)
                await trio.sleep(backoff)
                backoff = min(2 * backoff, config.retry_max_backoff_s)
                refresh = True
                continue
            remaining = deadline - trio.current_time()
            if remaining <= 0:
                raise ThreeFSError(
                    Code.RPC_DEADLINE_EXCEEDED, f"{spec.name}: deadline passed before calling meta"
                )
            try:
                response, _ = await self.rpc.call(address, spec, request, timeout_s=min(attempt_s, remaining))
                return response
            except ThreeFSError as exc:
                if not exc.retryable:
                    raise
                pause = backoff * random.uniform(0.5, 1.0)
                if trio.current_time() + pause >= deadline:
                    raise
                self.retries += 1
                if exc.code in _SWITCH_SERVER:
                    self._offset += 1
                    refresh = True
                log.debug(
                    "%s at %s failed (%s); retrying",
                    spec.name,
                    address,
                    exc,
                    extra={"attempt": attempt, "code": exc.code.name, "request_id": _request_tag(request)},
                )
                await trio.sleep(pause)
                backoff = min(2 * backoff, config.retry_max_backoff_s)

    def _caller(self, caller: Caller | None) -> Caller:
        return caller if caller is not None else self.caller

    # ------------------------------------------------------------------ reads

    async def statfs(self, *, caller: Caller | None = None) -> wire.StatFsResponse:
        return await self.call(wire.STAT_FS, wire.StatFsRequest(caller=self._caller(caller)))

    async def stat(
        self,
        path: PathLike,
        *,
        parent: int = wire.ROOT_INODE,
        follow: bool = True,
        caller: Caller | None = None,
    ) -> Inode:
        request = wire.StatRequest(at=to_path_at(path, parent), follow=follow, caller=self._caller(caller))
        return (await self.call(wire.STAT, request)).inode

    async def stat_inode(self, inode_id: int, *, caller: Caller | None = None) -> Inode:
        """The inode by id (META_NOT_FOUND when it does not exist)."""
        response = await self.batch_stat(inodes=[inode_id], caller=caller)
        if response.inodes[0] is None:
            code = Code(response.codes[0]) if response.codes[0] else Code.META_NOT_FOUND
            raise ThreeFSError(code, f"inode {inode_id}")
        return response.inodes[0]

    async def lookup(self, parent: int, name: str | bytes, *, caller: Caller | None = None) -> Inode:
        name = name if isinstance(name, bytes) else os.fsencode(name)
        request = wire.LookupRequest(parent=parent, name=name, caller=self._caller(caller))
        return (await self.call(wire.LOOKUP, request)).inode

    async def batch_stat(
        self, *, inodes: Sequence[int] = (), paths: Sequence[PathLike] = (), caller: Caller | None = None
    ) -> wire.BatchStatResponse:
        request = wire.BatchStatRequest(
            inodes=list(inodes), paths=[to_path_at(p) for p in paths], caller=self._caller(caller)
        )
        return await self.call(wire.BATCH_STAT, request)

    async def readlink(self, path: PathLike, *, caller: Caller | None = None) -> bytes:
        request = wire.ReadlinkRequest(at=to_path_at(path), caller=self._caller(caller))
        return (await self.call(wire.READLINK, request)).target

    async def list(
        self,
        path: PathLike,
        *,
        after: bytes = b"",
        limit: int = 1000,
        with_attrs: bool = False,
        caller: Caller | None = None,
    ) -> wire.ListResponse:
        """One page of the directory (entries after ``after``, at most ``limit``)."""
        request = wire.ListRequest(
            at=to_path_at(path), after=after, limit=limit, with_attrs=with_attrs, caller=self._caller(caller)
        )
        return await self.call(wire.LIST, request)

    async def list_all(
        self, path: PathLike, *, with_attrs: bool = False, page: int = 1000, caller: Caller | None = None
    ) -> list[ListEntry]:
        """Every entry of the directory, page by page (not one snapshot: entries made or removed
        meanwhile may or may not appear)."""
        entries: list[ListEntry] = []
        after = b""
        while True:
            response = await self.list(path, after=after, limit=page, with_attrs=with_attrs, caller=caller)
            entries.extend(response.entries)
            if not response.more or not response.entries:
                return entries
            after = response.entries[-1].name

    async def get_real_path(self, path: PathLike, *, caller: Caller | None = None) -> bytes:
        request = wire.GetRealPathRequest(at=to_path_at(path), caller=self._caller(caller))
        return (await self.call(wire.GET_REAL_PATH, request)).path

    async def gc_list(self, limit: int = 1000, *, caller: Caller | None = None) -> wire.GcListResponse:
        return await self.call(wire.GC_LIST, wire.GcListRequest(limit=limit, caller=self._caller(caller)))

    # ------------------------------------------------------------------ changes

    async def mknod(
        self,
        path: PathLike,
        type: InodeType,
        mode: int = 0o644,
        rdev: int = 0,
        *,
        caller: Caller | None = None,
    ) -> Inode:
        request = wire.MknodRequest(
            at=to_path_at(path),
            type=type,
            mode=mode,
            rdev=rdev,
            request=self.next_request_id(),
            caller=self._caller(caller),
        )
        return (await self.call(wire.MKNOD, request)).inode

    async def open(
        self,
        path: PathLike,
        flags: int = wire.OpenFlags.READ,
        mode: int = 0o644,
        *,
        follow: bool = True,
        caller: Caller | None = None,
    ) -> wire.OpenResponse:
        """Open with ``wire.OpenFlags`` bits; WRITE returns a session id to close with ``close``."""
        request = wire.OpenRequest(
            at=to_path_at(path),
            flags=flags,
            mode=mode,
            follow=follow,
            client_node=self.client_node,
            request=self.next_request_id(),
            caller=self._caller(caller),
        )
        return await self.call(wire.OPEN, request)

    async def create(
        self, path: PathLike, mode: int = 0o644, *, exclusive: bool = True, caller: Caller | None = None
    ) -> wire.OpenResponse:
        """Create a file and open it for writing (O_CREAT|O_WRONLY, with O_EXCL by default)."""
        flags = wire.OpenFlags.WRITE | wire.OpenFlags.CREATE
        if exclusive:
            flags |= wire.OpenFlags.EXCLUSIVE
        return await self.open(path, flags, mode, caller=caller)

    async def mkdir(
        self, path: PathLike, mode: int = 0o755, *, recursive: bool = False, caller: Caller | None = None
    ) -> Inode:
        request = wire.MkdirRequest(
            at=to_path_at(path),
            mode=mode,
            recursive=recursive,
            request=self.next_request_id(),
            caller=self._caller(caller),
        )
        return (await self.call(wire.MKDIR, request)).inode

    async def symlink(self, path: PathLike, target: str | bytes, *, caller: Caller | None = None) -> Inode:
        request = wire.SymlinkRequest(
            at=to_path_at(path),
            target=target if isinstance(target, bytes) else os.fsencode(target),
            request=self.next_request_id(),
            caller=self._caller(caller),
        )
        return (await self.call(wire.SYMLINK, request)).inode

    async def hard_link(self, old: PathLike, new: PathLike, *, caller: Caller | None = None) -> Inode:
        request = wire.HardLinkRequest(
            old=to_path_at(old),
            new=to_path_at(new),
            request=self.next_request_id(),
            caller=self._caller(caller),
        )
        return (await self.call(wire.HARD_LINK, request)).inode

    async def remove(
        self,
        path: PathLike,
        *,
        directory: bool = False,
        recursive: bool = False,
        caller: Caller | None = None,
    ) -> wire.RemoveResponse:
        """unlink (default), rmdir (``directory``) or a whole tree (``recursive``)."""
        request = wire.RemoveRequest(
            at=to_path_at(path),
            directory=directory,
            recursive=recursive,
            request=self.next_request_id(),
            caller=self._caller(caller),
        )
        return await self.call(wire.REMOVE, request)

    async def unlink(self, path: PathLike, *, caller: Caller | None = None) -> wire.RemoveResponse:
        return await self.remove(path, caller=caller)

    async def rmdir(self, path: PathLike, *, caller: Caller | None = None) -> wire.RemoveResponse:
        return await self.remove(path, directory=True, caller=caller)

    async def rename(
        self, src: PathLike, dst: PathLike, *, flags: int = 0, caller: Caller | None = None
    ) -> wire.RenameResponse:
        """``flags``: ``wire.RenameFlags`` bits (NOREPLACE, EXCHANGE)."""
        request = wire.RenameRequest(
            src=to_path_at(src),
            dst=to_path_at(dst),
            flags=flags,
            request=self.next_request_id(),
            caller=self._caller(caller),
        )
        return await self.call(wire.RENAME, request)

    async def set_attr(
        self,
        path: PathLike,
        *,
        follow: bool = True,
        mode: int | None = None,
        uid: int | None = None,
        gid: int | None = None,
        atime: wire.TimeSpec | None = None,
        mtime: wire.TimeSpec | None = None,
        length: int | None = None,
        caller: Caller | None = None,
    ) -> Inode:
        """Change what is given; ``length`` truncates or extends a file (chunks included)."""
        request = wire.SetAttrRequest(
            at=to_path_at(path),
            follow=follow,
            mode=mode,
            uid=uid,
            gid=gid,
            atime=atime,
            mtime=mtime,
            length=length,
            request=self.next_request_id(),
            caller=self._caller(caller),
        )
        return (await self.call(wire.SET_ATTR, request)).inode

    async def sync(
        self,
        inode_id: int,
        *,
        session_id: bytes = b"",
        length_hint: int | None = None,
        wrote: bool = False,
        close: bool = False,
        caller: Caller | None = None,
    ) -> Inode:
        """Report the end of this writer's writes (``length_hint``); ``close`` ends the session."""
        request = wire.SyncRequest(
            inode=inode_id,
            session_id=session_id,
            length_hint=length_hint,
            wrote=wrote,
            close=close,
            request=self.next_request_id(),
            caller=self._caller(caller),
        )
        return (await self.call(wire.SYNC, request)).inode

    async def close(
        self,
        inode_id: int,
        session_id: bytes,
        *,
        length_hint: int | None = None,
        wrote: bool = False,
        caller: Caller | None = None,
    ) -> Inode:
        """End a write session (a ``sync`` with ``close``)."""
        return await self.sync(
            inode_id, session_id=session_id, length_hint=length_hint, wrote=wrote, close=True, caller=caller
        )

    async def set_layout(self, path: PathLike, layout: Layout, *, caller: Caller | None = None) -> Inode:
        request = wire.SetLayoutRequest(
            at=to_path_at(path), layout=layout, request=self.next_request_id(), caller=self._caller(caller)
        )
        return (await self.call(wire.SET_LAYOUT, request)).inode

    async def fsck(self, *, repair: bool = False, caller: Caller | None = None) -> wire.FsckResponse:
        request = wire.FsckRequest(repair=repair, caller=self._caller(caller))
        long_s = max(self.config.request_timeout_s, 300.0)  # a whole-namespace scan
        return await self.call(wire.FSCK, request, timeout_s=long_s, attempt_timeout_s=long_s)

    # ------------------------------------------------------------------ extended attributes

    async def get_xattr(
        self, path: PathLike, name: bytes, *, follow: bool = True, caller: Caller | None = None
    ) -> bytes:
        """The value of xattr ``name`` (META_NO_XATTR when absent)."""
        request = wire.GetXattrRequest(
            at=to_path_at(path), name=name, follow=follow, caller=self._caller(caller)
        )
        return (await self.call(wire.GET_XATTR, request)).value

    async def set_xattr(
        self,
        path: PathLike,
        name: bytes,
        value: bytes,
        *,
        flags: int = 0,
        follow: bool = True,
        caller: Caller | None = None,
    ) -> Inode:
        """Set xattr ``name`` (``flags``: ``wire.XattrFlags`` CREATE / REPLACE)."""
        request = wire.SetXattrRequest(
            at=to_path_at(path),
            name=name,
            value=value,
            flags=flags,
            follow=follow,
            request=self.next_request_id(),
            caller=self._caller(caller),
        )
        return (await self.call(wire.SET_XATTR, request)).inode

    async def list_xattr(
        self, path: PathLike, *, follow: bool = True, caller: Caller | None = None
    ) -> list[bytes]:
        request = wire.ListXattrRequest(at=to_path_at(path), follow=follow, caller=self._caller(caller))
        return (await self.call(wire.LIST_XATTR, request)).names

    async def remove_xattr(
        self, path: PathLike, name: bytes, *, follow: bool = True, caller: Caller | None = None
    ) -> Inode:
        request = wire.RemoveXattrRequest(
            at=to_path_at(path),
            name=name,
            follow=follow,
            request=self.next_request_id(),
            caller=self._caller(caller),
        )
        return (await self.call(wire.REMOVE_XATTR, request)).inode


def _request_tag(request: msgspec.Struct) -> str:
    """The idempotency id of a changing request (``client:seq``), "" for a read."""
    request_id = getattr(request, "request", None)
    return "" if request_id is None else f"{request_id.client_id.hex()}:{request_id.seq}"
