"""Real processes for the fuzz tests, and the checks every fuzzed request goes through.

``FuzzCluster`` runs a ``LocalCluster`` (mgmtd, two storage nodes with two targets each, chains
of two, one meta server; 64 KiB chunks) on a trio loop in a background thread, so synchronous
hypothesis tests can drive it. ``FuzzCluster.exercise`` sends one request as raw bytes on a
fresh authenticated connection (a body need not match any struct) and checks:

- the reply is an ERROR frame with a registered code other than INTERNAL, a non-empty message,
  and (when the caller names them) one of the expected codes; no deadline, no closed
  connection, no hang;
- the process is still running, answers a valid request right after, and logged no traceback;
- the service's state is what it was before (``Probe.snapshot``: mgmtd's routing info and KV
  records, meta's KV records and the chunks on storage, the storage targets and their chunks),
  leaving out what changes with time alone (heartbeat times, the lease, inode id blocks).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import trio
from hypothesis import HealthCheck, settings

from client.fs.loop import LoopThread
from threefs.errors import Code, ThreeFSError
from threefs.kv import KEYSPACE_END, Prefix, open_engine, run_transaction
from threefs.kv.interface import Engine
from threefs.rpc import RpcClient
from threefs.rpc.auth import client_handshake, normalize_secret
from threefs.rpc.frame import FrameReader, encode_frame
from threefs.rpc.transport import TcpStream, parse_address
from threefs.testing.cluster import LocalCluster, NodeProcess
from threefs.wire import meta as meta_wire
from threefs.wire import mgmtd as mgmtd_wire
from threefs.wire import storage as storage_wire
from threefs.wire.common import MethodSpec
from threefs.wire.envelope import Envelope, FrameKind

__all__ = ["CHUNK", "FUZZ", "FuzzCluster", "Reply", "encode_body", "wire_form"]

CHUNK = 64 << 10
# Every fuzz test's settings: a modest number of examples per test so the whole suite stays
# well under two minutes on two cores; THREEFS_FUZZ_EXAMPLES raises it for a longer hunt.
FUZZ = settings(
    max_examples=int(os.environ.get("THREEFS_FUZZ_EXAMPLES", "15")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)
CALL_TIMEOUT_S = 10.0
MAX_REPLY_BYTES = 1 << 27
ROOT = meta_wire.Caller(uid=0, gid=0, admin=True)

# Codes that mean the server hung or went away, never a clear answer to a bad request.
_NOT_AN_ANSWER = frozenset(
    {
        Code.INTERNAL,
        Code.RPC_DEADLINE_EXCEEDED,
        Code.RPC_CONNECTION_CLOSED,
        Code.RPC_CONNECT_FAILED,
        Code.RPC_BAD_FRAME,
        Code.TIMEOUT,
    }
)
# Written by the meta server as time passes, whatever the requests: inode id blocks taken ahead
# of use (a failed request may take one; it only skips ids).
_META_VOLATILE_PREFIXES = (Prefix.INODE_ALLOCATOR.value,)
# Written by mgmtd as time passes: the primary lease, extended by its holder.
_MGMTD_VOLATILE_PREFIXES = (Prefix.LEASE.value,)


def encode_body(value: object) -> bytes:
    """The MessagePack bytes of ``value`` (a struct or plain data), without any validation."""
    return msgspec.msgpack.encode(value)


def wire_form(request: msgspec.Struct) -> Any:
    """``request`` as the plain MessagePack data it travels as (maps, lists, bytes, ints)."""
    return msgspec.msgpack.decode(msgspec.msgpack.encode(request))


@dataclass(frozen=True)
class Reply:
    """One reply: ``kind`` (RESPONSE or ERROR), the error's code (0 for a response) and message,
    and the decoded response and payload of a RESPONSE."""

    kind: FrameKind
    code: int = 0
    message: str = ""
    response: Any = None
    payload: Any = b""

    def describe(self) -> str:
        if self.kind == FrameKind.ERROR:
            code = _registered(self.code)
            return f"{code.name if code is not None else self.code}: {self.message}"
        return f"accepted: {self.response!r}"


def _registered(number: int) -> Code | None:
    """The registered code ``number``, or None."""
    try:
        return Code(number)
    except ValueError:
        return None


@dataclass
class Probe:
    """One service under test: its process(es), a valid request that proves it answers, and
    how to read its state."""

    name: str
    processes: list[NodeProcess]
    ping: Callable[[], Awaitable[None]]
    snapshot: Callable[[], Awaitable[Any]]
    log_offsets: dict[str, int] = field(default_factory=dict)


class FuzzCluster:
    """See the module docstring. ``start()`` returns once every target is SERVING and reports
    UPTODATE, the meta server is registered and routing has stopped moving; ``close()`` stops
    every process (call it in a fixture's teardown)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.local: LocalCluster | None = None
        self.rpc: RpcClient | None = None
        self.meta_engine: Engine | None = None
        self.mgmtd_engine: Engine | None = None
        self._loop: LoopThread[FuzzCluster] | None = None
        self.probes: dict[str, Probe] = {}

    # ------------------------------------------------------------------ lifecycle

    @asynccontextmanager
    async def _resources(self) -> AsyncIterator[FuzzCluster]:
        local = LocalCluster(
            self.directory,
            storage_nodes=2,
            targets_per_node=2,
            replication=2,
            chunk_size=CHUNK,
            meta_config_extra=f"default_chunk_size = {CHUNK}\n",
        )
        async with local, RpcClient(local.secret) as rpc:
            self.local, self.rpc = local, rpc
            self.meta_engine = open_engine(f"sqlite:///{local.dir}/meta/meta.db")
            self.mgmtd_engine = open_engine(f"sqlite:///{local.dir}/mgmtd/mgmtd.db")
            try:
                self._make_probes()
                await self._settle()
                yield self
            finally:
                self.meta_engine.close()
                self.mgmtd_engine.close()

    async def _settle(self, timeout_s: float = 30.0) -> None:
        """Wait until routing stops moving on its own: every target SERVING and reporting
        UPTODATE, and the routing version the same over a second of polls (targets report
        UPTODATE a little after their chains first serve)."""
        stable_since, version = trio.current_time(), -1
        with trio.fail_after(timeout_s):
            while True:
                routing = await self.routing()
                settled = all(
                    t.public_state == mgmtd_wire.PublicTargetState.SERVING
                    and t.local_state == mgmtd_wire.LocalTargetState.UPTODATE
                    for t in routing.targets.values()
                )
                if not settled or routing.version != version:
                    stable_since, version = trio.current_time(), routing.version
                elif trio.current_time() - stable_since >= 1.0:
                    return
                await trio.sleep(0.1)

    def start(self) -> FuzzCluster:
        self._loop = LoopThread(self._resources, name="fuzz-cluster")
        return self._loop.start()

    def close(self) -> None:
        if self._loop is not None:
            self._loop.close()

    def run(self, function: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        """``await function(*args)`` on the cluster's loop."""
        assert self._loop is not None
        return self._loop.run(function, *args)

    # ------------------------------------------------------------------ addresses and calls

    @property
    def cluster(self) -> LocalCluster:
        assert self.local is not None
        return self.local

    @property
    def mgmtd_address(self) -> str:
        return self.cluster.mgmtd_address

    @property
    def meta_address(self) -> str:
        return self.cluster.meta_addresses[0]

    def storage_address(self, node_id: int) -> str:
        return self.cluster.storage_addresses[node_id]

    async def call(
        self, address: str, spec: MethodSpec, request: msgspec.Struct, payload: bytes = b""
    ) -> Any:
        """A valid call through the ordinary client; returns the response (raises its error)."""
        assert self.rpc is not None
        response, _ = await self.rpc.call(address, spec, request, payload=payload, timeout_s=CALL_TIMEOUT_S)
        return response

    async def send_raw(self, address: str, spec: MethodSpec, body: bytes, payload: bytes = b"") -> Reply:
        """Send ``body`` (any bytes) as a request of ``spec`` on a new authenticated connection
        and return the one reply. A connection that closes, or no reply within
        ``CALL_TIMEOUT_S``, comes back as an ERROR with RPC_CONNECTION_CLOSED / RPC_DEADLINE_EXCEEDED."""
        host, port = parse_address(address)
        sock = trio.socket.socket()
        stream = TcpStream(sock, "fuzz")
        try:
            with trio.move_on_after(CALL_TIMEOUT_S) as scope:
                await sock.connect((host, port))
                reader = FrameReader(stream, MAX_REPLY_BYTES)
                await client_handshake(stream, reader, normalize_secret(self.cluster.secret))
                envelope = Envelope(
                    FrameKind.REQUEST,
                    1,
                    spec.service_id,
                    spec.method_id,
                    int(CALL_TIMEOUT_S * 1000),
                    msgspec.Raw(body),
                )
                head = encode_frame(envelope, payload, payload_crc_in_body=spec.payload_crc_in_body)
                await stream.send_parts([head, payload] if payload else [head])
                try:
                    frame = await reader.read_frame()
                except ThreeFSError as exc:
                    return Reply(FrameKind.ERROR, Code.RPC_CONNECTION_CLOSED, f"reading the reply: {exc}")
            if scope.cancelled_caught:
                return Reply(FrameKind.ERROR, Code.RPC_DEADLINE_EXCEEDED, f"no reply in {CALL_TIMEOUT_S} s")
        finally:
            with trio.CancelScope(shield=True):
                await stream.aclose()
        if frame is None:
            return Reply(FrameKind.ERROR, Code.RPC_CONNECTION_CLOSED, "the server closed the connection")
        reply_envelope, reply_payload = frame
        if reply_envelope.kind == FrameKind.ERROR:
            return Reply(FrameKind.ERROR, reply_envelope.error_code, reply_envelope.error_message)
        assert reply_envelope.kind == FrameKind.RESPONSE, reply_envelope
        response = spec.response_decoder.decode(reply_envelope.body)
        return Reply(FrameKind.RESPONSE, response=response, payload=bytes(reply_payload))

    # ------------------------------------------------------------------ the checks

    def exercise(
        self,
        service: str,
        address: str,
        spec: MethodSpec,
        body: bytes,
        *,
        payload: bytes = b"",
        expect: Collection[Code] | None = None,
        what: str = "",
    ) -> Reply:
        """Send one invalid request to ``service`` ("mgmtd", "meta" or "storage") and check it
        as the module docstring says; returns the reply. ``expect``: the codes that are right
        for this request (None: any clear code)."""
        return self.run(self._exercise, service, address, spec, body, payload, expect, what)

    def exercise_answer(
        self, service: str, address: str, spec: MethodSpec, body: bytes, *, payload: bytes = b""
    ) -> Reply:
        """Like ``exercise`` for a request whose contract is a RESPONSE reporting the problem
        (BatchStat's per-item codes, BatchRead's per-read codes): the reply may be an ERROR
        (checked the same way) or a RESPONSE, which the caller checks."""
        return self.run(self._exercise, service, address, spec, body, payload, None, "", True)

    async def _exercise(
        self,
        service: str,
        address: str,
        spec: MethodSpec,
        body: bytes,
        payload: bytes,
        expect: Collection[Code] | None,
        what: str,
        response_ok: bool = False,
    ) -> Reply:
        probe = self.probes[service]
        before = await probe.snapshot()
        self._skip_logs(probe)
        reply = await self.send_raw(address, spec, body, payload)
        where = f"{spec.name} {what}".strip()
        if not (response_ok and reply.kind == FrameKind.RESPONSE):
            check_clear_error(reply, where, expect)
        self._check_alive(probe, where)
        await probe.ping()
        after = await probe.snapshot()
        assert after == before, (
            f"{where} changed {service}'s state ({reply.describe()}):\n{_diff(before, after)}"
        )
        self._check_logs(probe, where)
        return reply

    def _check_alive(self, probe: Probe, where: str) -> None:
        for process in probe.processes:
            status = process.process.poll()
            assert status is None, f"{process.name} exited ({status}) after {where}:\n{process.log_tail()}"

    def _skip_logs(self, probe: Probe) -> None:
        for process in probe.processes:
            probe.log_offsets[process.name] = process.log_path.stat().st_size

    def _check_logs(self, probe: Probe, where: str) -> None:
        for process in probe.processes:
            with process.log_path.open("rb") as log:
                log.seek(probe.log_offsets.get(process.name, 0))
                text = log.read().decode(errors="replace")
            assert "Traceback" not in text, f"{process.name} logged a traceback after {where}:\n{text}"

    # ------------------------------------------------------------------ probes

    def _make_probes(self) -> None:
        local = self.cluster
        storage = [p for p in local.processes.values() if p.name.startswith("storage-")]
        self.probes = {
            "mgmtd": Probe("mgmtd", [local.processes["mgmtd"]], self._ping_mgmtd, self.mgmtd_snapshot),
            "meta": Probe("meta", [local.processes["meta-1001"]], self._ping_meta, self.meta_snapshot),
            "storage": Probe("storage", storage, self._ping_storage, self.storage_snapshot),
        }

    async def _ping_mgmtd(self) -> None:
        response = await self.call(self.mgmtd_address, mgmtd_wire.GET_PRIMARY, mgmtd_wire.GetPrimaryRequest())
        assert response.is_primary

    async def _ping_meta(self) -> None:
        request = meta_wire.StatRequest(at=meta_wire.PathAt(meta_wire.ROOT_INODE, b""), caller=ROOT)
        response = await self.call(self.meta_address, meta_wire.STAT, request)
        assert response.inode.id == meta_wire.ROOT_INODE

    async def _ping_storage(self) -> None:
        for node_id in self.cluster.storage_node_ids():
            response = await self.call(
                self.storage_address(node_id), storage_wire.SPACE_INFO, storage_wire.SpaceInfoRequest()
            )
            assert sorted(t.target_id for t in response.targets) == self.cluster.target_ids(node_id)

    async def routing(self) -> mgmtd_wire.RoutingInfo:
        response = await self.call(
            self.mgmtd_address, mgmtd_wire.GET_ROUTING_INFO, mgmtd_wire.GetRoutingInfoRequest()
        )
        assert response.routing is not None
        return response.routing

    async def routing_snapshot(self) -> mgmtd_wire.RoutingInfo:
        """The routing info without what heartbeats alone move (times, sequences, usage)."""
        routing = await self.routing()
        nodes = {
            node_id: msgspec.structs.replace(node, last_heartbeat_ms=0, heartbeat_seq=0, started_ms=0)
            for node_id, node in routing.nodes.items()
        }
        targets = {
            target_id: msgspec.structs.replace(target, chain_version_seen=0, used_bytes=0, capacity_bytes=0)
            for target_id, target in routing.targets.items()
        }
        return msgspec.structs.replace(routing, nodes=nodes, targets=targets)

    async def mgmtd_snapshot(self) -> dict[str, Any]:
        """mgmtd's routing info as it serves it, and every record of its KV engine (users
        included) but the lease."""
        assert self.mgmtd_engine is not None
        records = await _records(self.mgmtd_engine, _MGMTD_VOLATILE_PREFIXES)
        return {"routing": await self.routing_snapshot(), "records": records}

    async def meta_records(self) -> dict[bytes, bytes]:
        """Every record of the meta server's KV engine but the inode allocator's blocks."""
        assert self.meta_engine is not None
        return await _records(self.meta_engine, _META_VOLATILE_PREFIXES)

    async def meta_snapshot(self) -> dict[str, Any]:
        """meta's KV records, and the chunks on storage (a truncate that meta refuses must not
        have cut them)."""
        return {"records": await self.meta_records(), "chunks": await self.storage_chunks()}

    async def storage_chunks(self) -> dict[int, Any]:
        """Per storage node: its targets (id -> chunk count and every chunk's metadata)."""
        nodes: dict[int, Any] = {}
        for node_id in self.cluster.storage_node_ids():
            address = self.storage_address(node_id)
            space = await self.call(address, storage_wire.SPACE_INFO, storage_wire.SpaceInfoRequest())
            targets = {}
            for target in space.targets:
                dump = await self.call(
                    address,
                    storage_wire.DUMP_CHUNK_META,
                    storage_wire.DumpChunkMetaRequest(target_id=target.target_id),
                )
                targets[target.target_id] = (target.chunk_count, dump.chunks)
            nodes[node_id] = targets
        return nodes

    async def storage_snapshot(self) -> dict[str, Any]:
        """Each storage node's targets and chunks, and the routing info (targets' states)."""
        return {"nodes": await self.storage_chunks(), "routing": await self.routing_snapshot()}


async def _records(engine: Engine, volatile: tuple[bytes, ...]) -> dict[bytes, bytes]:
    """Every record of ``engine`` whose key starts with none of ``volatile``."""

    def read() -> dict[bytes, bytes]:
        pairs = run_transaction(engine, lambda txn: txn.get_range(b"", KEYSPACE_END), read_only=True)
        return {key: value for key, value in pairs if not key.startswith(volatile)}

    return await trio.to_thread.run_sync(read)


def check_clear_error(reply: Reply, where: str, expect: Collection[Code] | None) -> None:
    """``reply`` must be an ERROR with a registered code that is neither INTERNAL nor a sign of
    a hang or a dropped connection, with a message, and among ``expect`` when given."""
    assert reply.kind == FrameKind.ERROR, f"{where} was {reply.describe()}"
    code = _registered(reply.code)
    assert code is not None, f"{where}: unregistered code {reply.code}: {reply.message}"
    assert code not in _NOT_AN_ANSWER, f"{where}: {reply.describe()}"
    assert reply.message.strip(), f"{where}: {code.name} without a message"
    if expect is not None:
        names = sorted(c.name for c in expect)
        assert code in expect, f"{where}: {reply.describe()}; expected one of {names}"


def _short(value: Any, limit: int = 400) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


def _diff(before: Any, after: Any) -> str:
    """The paths at which two snapshots differ, with both values (at most 20 lines)."""
    lines: list[str] = []

    def plain(value: Any) -> Any:
        return msgspec.to_builtins(value) if isinstance(value, msgspec.Struct) else value

    def walk(path: str, left: Any, right: Any) -> None:
        left, right = plain(left), plain(right)
        if left == right or len(lines) >= 20:
            return
        if isinstance(left, dict) and isinstance(right, dict):
            for key in sorted(set(left) | set(right), key=repr):
                walk(f"{path}[{key!r}]", left.get(key), right.get(key))
        else:
            lines.append(f"  {path}: {_short(left)} -> {_short(right)}")

    walk("", before, after)
    return "\n".join(lines)
