"""fsck: check the whole namespace for consistency and, on request, repair it
(``threefs admin fsck``; docs/meta.md "fsck").

One transaction reads every inode, entry, session and GC job, which fits trees of a few hundred
thousand entries within the KV engine's limits; a bigger namespace needs a paged scan.
"""

from __future__ import annotations

import struct
from collections import defaultdict
from dataclasses import dataclass, field

import msgspec

from meta.ops.context import OpContext
from meta.ops.remove import queue_for_gc
from meta.store import records
from threefs.errors import Code, ThreeFSError
from threefs.kv import keys
from threefs.wire.meta import (
    ROOT_INODE,
    DirEntry,
    FsckProblem,
    FsckRequest,
    FsckResponse,
    Inode,
    InodeType,
)

__all__ = ["PROBLEM_KINDS", "fsck"]

PROBLEM_KINDS = (
    "missing_root",  # no root inode (or it is not a directory): never repaired
    "dangling_entry",  # an entry whose inode, or whose directory, is missing: removed
    "wrong_entry_type",  # an entry's type differs from its inode's: entry rewritten
    "duplicate_dir_entry",  # a second entry naming a directory: removed
    "bad_parent",  # a directory's parent/name disagree with its entry: inode fixed
    "orphan_inode",  # unreachable from the root, not queued, no session: to GC (dirs deleted)
    "wrong_nlink",  # link count differs from the entries: set right
    "dangling_session",  # a write session of a missing inode: removed
)

_ENTRY = msgspec.msgpack.Decoder(DirEntry)
_INODE = msgspec.msgpack.Decoder(Inode)


@dataclass
class _Scan:
    """Everything fsck read, and the repairs it decided on (applied at the end)."""

    inodes: dict[int, Inode]
    entries: list[tuple[int, bytes, DirEntry]]
    sessions: dict[int, list[bytes]]
    queued: set[int]
    problems: list[FsckProblem] = field(default_factory=list)
    inode_fixes: dict[int, dict[str, object]] = field(default_factory=lambda: defaultdict(dict))
    repair: bool = False

    def report(self, kind: str, **fields: object) -> None:
        self.problems.append(FsckProblem(kind=kind, repaired=self.repair, **fields))  # type: ignore[arg-type]


def fsck(ctx: OpContext, request: FsckRequest) -> FsckResponse:
    """Report (and with ``request.repair`` fix) the problems of ``PROBLEM_KINDS``. Admin only
    (META_NOT_PERMITTED). Without a root directory nothing is repaired (every inode would look
    orphaned). Problems come in a stable order: entries first, then inodes by id."""
    if not ctx.caller.admin:
        raise ThreeFSError(Code.META_NOT_PERMITTED, "fsck needs an admin identity")
    scan = _read_all(ctx)
    scan.repair = request.repair
    root = scan.inodes.get(ROOT_INODE)
    if root is None or root.type != InodeType.DIRECTORY:
        scan.repair = False
        scan.report("missing_root", inode=ROOT_INODE, detail="no root directory")
        return FsckResponse(inodes=len(scan.inodes), entries=len(scan.entries), problems=scan.problems)
    repair = request.repair
    children = _valid_children(ctx, scan, repair)
    reachable, links = _walk(ctx, scan, children, repair)
    _check_inodes(ctx, scan, children, reachable, links, repair)
    for inode_id, fixes in sorted(scan.inode_fixes.items()):
        if repair and fixes:
            records.save_inode(ctx.txn, msgspec.structs.replace(scan.inodes[inode_id], **fixes))
    for inode_id, session_keys in sorted(scan.sessions.items()):
        if inode_id not in scan.inodes:
            scan.report("dangling_session", inode=inode_id, detail="session of a missing inode")
            for key in session_keys if repair else ():
                ctx.txn.clear(key)
    return FsckResponse(inodes=len(scan.inodes), entries=len(scan.entries), problems=scan.problems)


def _read_all(ctx: OpContext) -> _Scan:
    txn = ctx.txn
    inodes: dict[int, Inode] = {}
    for _, value in txn.get_range(*keys.prefix_range(keys.Prefix.INODE.value)):
        inode = _INODE.decode(value)
        inodes[inode.id] = inode
    entries = [
        (struct.unpack_from("<Q", key, 4)[0], key[12:], _ENTRY.decode(value))
        for key, value in txn.get_range(*keys.prefix_range(keys.Prefix.DENTRY.value))
    ]
    sessions: dict[int, list[bytes]] = defaultdict(list)
    for key, _ in txn.get_range(*keys.prefix_range(keys.Prefix.INODE_SESSION.value)):
        sessions[struct.unpack_from("<Q", key, 4)[0]].append(key)
    queued = {job.inode.id for _, _, job in records.list_gc_jobs(txn)}
    return _Scan(inodes=inodes, entries=entries, sessions=dict(sessions), queued=queued)


def _valid_children(ctx: OpContext, scan: _Scan, repair: bool) -> dict[int, list[tuple[bytes, DirEntry]]]:
    """Entries whose directory and inode exist, by directory; report (and drop) the others,
    and fix entry types."""
    children: dict[int, list[tuple[bytes, DirEntry]]] = defaultdict(list)
    for parent_id, name, entry in scan.entries:
        parent = scan.inodes.get(parent_id)
        child = scan.inodes.get(entry.inode)
        if parent is None or parent.type != InodeType.DIRECTORY:
            detail = f"directory {parent_id} is missing or not a directory"
        elif child is None:
            detail = f"inode {entry.inode} is missing"
        else:
            if entry.type != child.type:
                detail = f"entry says {entry.type.name}, inode is {child.type.name}"
                scan.report("wrong_entry_type", inode=child.id, parent=parent_id, name=name, detail=detail)
                entry = DirEntry(child.id, child.type)
                if repair:
                    records.save_entry(ctx.txn, parent_id, name, entry)
            children[parent_id].append((name, entry))
            continue
        scan.report("dangling_entry", inode=entry.inode, parent=parent_id, name=name, detail=detail)
        if repair:
            records.delete_entry(ctx.txn, parent_id, name)
    return children


def _walk(
    ctx: OpContext, scan: _Scan, children: dict[int, list[tuple[bytes, DirEntry]]], repair: bool
) -> tuple[set[int], dict[int, int]]:
    """Breadth-first from the root: the reachable inodes and, per inode, the entries that count
    as its links (a directory keeps only the first entry met, which never forms a cycle; its
    other entries are duplicates)."""
    reachable = {ROOT_INODE}
    links: dict[int, int] = defaultdict(int)
    frontier = [ROOT_INODE]
    while frontier:
        next_frontier: list[int] = []
        for directory in frontier:
            for name, entry in children.get(directory, ()):
                child = scan.inodes[entry.inode]
                if child.type != InodeType.DIRECTORY:
                    reachable.add(child.id)
                    links[child.id] += 1
                    continue
                if child.id in reachable:
                    detail = "a second entry naming a directory"
                    scan.report(
                        "duplicate_dir_entry", inode=child.id, parent=directory, name=name, detail=detail
                    )
                    if repair:
                        records.delete_entry(ctx.txn, directory, name)
                    continue
                reachable.add(child.id)
                links[directory] += 1  # the child's '..'
                if (child.parent, child.name) != (directory, name):
                    detail = f"inode says {child.parent}/{child.name!r}"
                    scan.report("bad_parent", inode=child.id, parent=directory, name=name, detail=detail)
                    scan.inode_fixes[child.id].update(parent=directory, name=name)
                next_frontier.append(child.id)
        frontier = next_frontier
    return reachable, links


def _check_inodes(
    ctx: OpContext,
    scan: _Scan,
    children: dict[int, list[tuple[bytes, DirEntry]]],
    reachable: set[int],
    links: dict[int, int],
    repair: bool,
) -> None:
    for inode_id, inode in sorted(scan.inodes.items()):
        has_session = inode_id in scan.sessions
        if inode_id in reachable:
            expected = links[inode_id] + (2 if inode.type == InodeType.DIRECTORY else 0)
        elif inode_id in scan.queued:
            continue  # on its way out: the GC worker owns it
        elif has_session and inode.type == InodeType.FILE:
            expected = 0  # an unlinked file still open for writing
        else:
            detail = f"{inode.type.name} not reachable from the root"
            scan.report("orphan_inode", inode=inode_id, detail=detail)
            if repair:
                scan.inode_fixes.pop(inode_id, None)
                for name, _ in children.get(inode_id, ()):
                    records.delete_entry(ctx.txn, inode_id, name)
                queue_for_gc(ctx, msgspec.structs.replace(inode, nlink=0), "fsck: orphan")
            continue
        if inode.nlink != expected:
            scan.report("wrong_nlink", inode=inode_id, detail=f"nlink {inode.nlink}, expected {expected}")
            scan.inode_fixes[inode_id]["nlink"] = expected
