"""`threefs admin` commands that talk to storage nodes: inspect chunk metadata (``query-chunk``,
``dump-chunkmeta``), create a target (``create-target``) and purge a removed one
(``remove-target --purge``).

Storage nodes are found through the routing info of the primary mgmtd; each storage RPC is one
attempt with the mgmtd client's attempt timeout (these commands are run by hand, and a change is
never sent twice). Commands have the ``admin`` signature ``(mgmtd, args) -> (data, text)``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import msgspec
import trio

from client.cli.common import EXIT_FAILED, EXIT_USAGE, UserError, render_table
from client.mgmtd import MgmtdClient
from client.routing import RoutingView
from threefs.errors import Code, ThreeFSError
from threefs.rpc import format_address, parse_address
from threefs.wire import mgmtd as mwire
from threefs.wire import storage as wire

__all__ = ["create_target", "dump_chunkmeta", "purge_target", "query_chunk", "register"]

DEFAULT_DUMP_LIMIT = 1000
PAGE_SIZE = 1000


async def _routing(mgmtd: MgmtdClient) -> RoutingView:
    routing = await mgmtd.get_routing_info()
    if routing is None:  # only when a known version is passed, which we never do
        raise ThreeFSError(Code.INTERNAL, "mgmtd sent no routing info")
    return RoutingView(routing)


async def _call(mgmtd: MgmtdClient, address: str, spec: Any, request: msgspec.Struct) -> Any:
    response, _ = await mgmtd.rpc.call(address, spec, request, timeout_s=mgmtd.config.attempt_timeout_s)
    return response


def _normalize(address: str) -> str:
    try:
        return format_address(parse_address(address))
    except ThreeFSError as exc:
        raise UserError(f"--node-address: {exc.message}", EXIT_USAGE) from None


# ----------------------------------------------------------------------------- chunk metadata

_META_HEADERS = ["CHAIN_VER", "UPDATE_VER", "COMMIT_VER", "LENGTH", "CRC32C", "DIRTY"]


def _meta_cells(meta: wire.ChunkMetaInfo) -> list[object]:
    dirty = "yes" if meta.dirty or meta.update_version != meta.commit_version else "no"
    return [
        meta.chain_version,
        meta.update_version,
        meta.commit_version,
        meta.length,
        f"{meta.crc32c:08x}",
        dirty,
    ]


async def _replica_meta(
    mgmtd: MgmtdClient, view: RoutingView, target_id: int, chunk: wire.ChunkKey
) -> wire.ChunkMetaInfo | None:
    """The chunk's metadata on one target (None when the target lacks it)."""
    address = view.node_address(view.target(target_id).node_id)
    after = wire.ChunkKey(chunk.inode, chunk.index - 1) if chunk.index else None
    request = wire.DumpChunkMetaRequest(target_id=target_id, inode=chunk.inode, after=after, limit=1)
    response = await _call(mgmtd, address, wire.DUMP_CHUNK_META, request)
    found = [meta for meta in response.chunks if meta.chunk == chunk]
    return found[0] if found else None


async def query_chunk(mgmtd: MgmtdClient, args: argparse.Namespace) -> tuple[Any, str]:
    """Every replica's metadata of one chunk (asked of all replicas, whatever their state)."""
    view = await _routing(mgmtd)
    chain = view.chain(args.chain)
    chunk = wire.ChunkKey(args.inode, args.index)
    replicas: list[dict[str, Any]] = [
        {"target_id": r.target_id, "public_state": r.public_state, "meta": None, "error": ""}
        for r in chain.targets
    ]

    async def ask(entry: dict[str, Any]) -> None:
        try:
            entry["node_id"] = view.target(entry["target_id"]).node_id
            entry["meta"] = await _replica_meta(mgmtd, view, entry["target_id"], chunk)
        except ThreeFSError as exc:
            entry["error"] = f"{exc.code.name}: {exc.message}"

    async with trio.open_nursery() as nursery:
        for entry in replicas:
            nursery.start_soon(ask, entry)
    serving = [
        (e["meta"].commit_version, e["meta"].length, e["meta"].crc32c) if e["meta"] else None
        for e in replicas
        if e["public_state"] == mwire.PublicTargetState.SERVING and not e["error"]
    ]
    consistent = len(set(serving)) <= 1
    headers = ["TARGET_ID", "NODE_ID", "STATE", *_META_HEADERS]
    rows = []
    for e in replicas:
        cells: list[object]
        if e["error"]:
            cells = [f"error {e['error']}"]
        elif e["meta"] is None:
            cells = ["absent"]
        else:
            cells = _meta_cells(e["meta"])
        rows.append([e["target_id"], e.get("node_id", "-"), e["public_state"].name, *cells])
        rows[-1].extend([""] * (len(headers) - len(rows[-1])))
    title = (
        f"chunk {chunk.inode}:{chunk.index} on chain {chain.chain_id} (version {chain.chain_version}); "
        f"serving replicas {'agree' if consistent else 'DISAGREE'}"
    )
    data = {
        "chain_id": chain.chain_id,
        "chain_version": chain.chain_version,
        "chunk": chunk,
        "consistent": consistent,
        "replicas": replicas,
    }
    return data, title + "\n" + render_table(headers, rows)


async def dump_chunkmeta(mgmtd: MgmtdClient, args: argparse.Namespace) -> tuple[Any, str]:
    """The chunk metadata a target holds, paged (``--limit`` 0: all of it)."""
    if args.limit < 0:
        raise UserError("--limit must be >= 0", EXIT_USAGE)
    view = await _routing(mgmtd)
    address = _normalize(args.node_address) if args.node_address else None
    if address is None:
        address = view.node_address(view.target(args.target_id).node_id)
    chunks: list[wire.ChunkMetaInfo] = []
    after: wire.ChunkKey | None = None
    more = True
    while more and (args.limit == 0 or len(chunks) < args.limit):
        page = PAGE_SIZE if args.limit == 0 else min(PAGE_SIZE, args.limit - len(chunks))
        request = wire.DumpChunkMetaRequest(
            target_id=args.target_id, inode=args.inode, after=after, limit=page
        )
        response = await _call(mgmtd, address, wire.DUMP_CHUNK_META, request)
        chunks.extend(response.chunks)
        more = response.more and bool(response.chunks)
        if response.chunks:
            after = response.chunks[-1].chunk
    headers = ["INODE", "INDEX", "CHUNK_SIZE", *_META_HEADERS]
    rows = [[m.chunk.inode, m.chunk.index, m.chunk_size, *_meta_cells(m)] for m in chunks]
    text = render_table(headers, rows)
    text += f"\n{len(chunks)} chunk(s) on target {args.target_id}"
    if more:
        text += " (more: raise --limit, or 0 for all)"
    return {"target_id": args.target_id, "chunks": chunks, "more": more}, text


# ----------------------------------------------------------------------------- targets


def _node_of(view: RoutingView, address: str | None, node_id: int | None) -> tuple[int, str]:
    """``(node_id, address)`` of a storage node from either, the other looked up in routing."""
    if node_id is not None:
        return node_id, address if address is not None else view.node_address(node_id)
    for node in view.routing.nodes.values():
        if address in node.addresses:
            return node.node_id, address
    raise UserError(
        f"no node registered at {address}: give --node-id (the node may not have heartbeated yet)", EXIT_USAGE
    )


async def create_target(mgmtd: MgmtdClient, args: argparse.Namespace) -> tuple[Any, str]:
    """Declare the target at mgmtd (unless ``--skip-mgmtd``; an existing declaration on the same
    node is accepted, so a failed run can be repeated), then create it on the storage node."""
    if args.node_address is None and args.node_id is None:
        raise UserError("give --node-address HOST:PORT or --node-id N", EXIT_USAGE)
    view = await _routing(mgmtd)
    address = _normalize(args.node_address) if args.node_address else None
    node_id, address = _node_of(view, address, args.node_id)
    version = view.version
    if not args.skip_mgmtd:
        target = mwire.TargetInfo(
            target_id=args.target_id, node_id=node_id, capacity_bytes=args.capacity_bytes
        )
        try:
            version = await mgmtd.create_targets([target])
        except ThreeFSError as exc:
            known = view.routing.targets.get(args.target_id)
            if exc.code != Code.ALREADY_EXISTS or known is None or known.node_id != node_id:
                raise
    request = wire.CreateTargetRequest(target_id=args.target_id, path=args.path)
    response = await _call(mgmtd, address, wire.CREATE_TARGET, request)
    text = (
        f"created target {response.target_id} on node {node_id} ({address}) at {response.path}; "
        f"routing version {version}\nnext: put it in a chain (gen-chain-table, create-chains or update-chain)"
    )
    data = {
        "target_id": response.target_id,
        "node_id": node_id,
        "path": response.path,
        "routing_version": version,
    }
    return data, text


async def purge_target(mgmtd: MgmtdClient, target_id: int, node_address: str | None) -> int:
    """Delete a target's chunks on its storage node (RemoveTarget) before mgmtd forgets it; it
    must already be OFFLINE and in no chain. Returns the chunks removed (0 when the node no
    longer has the target, as after an interrupted earlier run)."""
    view = await _routing(mgmtd)
    target = view.target(target_id)
    if target.public_state != mwire.PublicTargetState.OFFLINE or target.chain_id:
        raise UserError(
            f"target {target_id} is {target.public_state.name}"
            + (f" in chain {target.chain_id}" if target.chain_id else "")
            + ": take it out of its chain (update-chain ... remove) and offline first",
            EXIT_FAILED,
        )
    address = _normalize(node_address) if node_address else view.node_address(target.node_id)
    try:
        response = await _call(
            mgmtd, address, wire.REMOVE_TARGET, wire.RemoveTargetRequest(target_id=target_id)
        )
    except ThreeFSError as exc:
        if exc.code != Code.STORAGE_TARGET_NOT_FOUND:
            raise
        return 0
    return response.removed_chunks


def register(add: Callable[[str, Any, str], argparse.ArgumentParser]) -> None:
    """Add the storage commands through ``admin.register``'s ``add(name, command, help)``."""
    parser = add("query-chunk", query_chunk, "show one chunk's metadata on every replica of its chain")
    parser.add_argument("--chain", type=int, required=True, metavar="ID", help="the chain holding the chunk")
    parser.add_argument("--inode", type=int, required=True, metavar="N")
    parser.add_argument("--index", type=int, required=True, metavar="I", help="the chunk index in the file")

    parser = add("dump-chunkmeta", dump_chunkmeta, "list the chunk metadata of a storage target")
    parser.add_argument("target_id", type=int, metavar="TARGET_ID")
    parser.add_argument("--inode", type=int, metavar="N", help="only this file's chunks")
    parser.add_argument(
        "--limit", type=int, default=DEFAULT_DUMP_LIMIT, metavar="N", help="at most N chunks (0: all)"
    )
    parser.add_argument("--node-address", metavar="HOST:PORT", help="ask this node (default: from routing)")

    parser = add("create-target", create_target, "declare a target at mgmtd and create it on its node")
    parser.add_argument("--target-id", type=int, required=True, metavar="N")
    parser.add_argument("--node-address", metavar="HOST:PORT", help="the storage node's address")
    parser.add_argument("--node-id", type=int, metavar="N", help="the storage node's id")
    parser.add_argument("--path", default="", help="directory for the target (default: the node's data dir)")
    parser.add_argument("--capacity-bytes", type=int, default=0, metavar="B", help="declared capacity")
    parser.add_argument(
        "--skip-mgmtd", action="store_true", help="only create it on the node (already declared at mgmtd)"
    )
