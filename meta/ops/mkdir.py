"""mkdir and mkdir -p. A new directory copies its parent's default layout (``dir_layout``), so
files created under it inherit the layout that was in force where the tree was made; a setgid
parent passes on its gid and the setgid bit."""

from __future__ import annotations

from meta.components.inodes import check_can_create, link_new, new_inode
from meta.components.names import split_path
from meta.components.resolve import Resolved, lookup_child, require_directory, resolve, resolve_parent
from meta.ops.context import OpContext
from meta.store import records
from threefs.errors import Code, ThreeFSError
from threefs.wire.meta import ROOT_INODE, Inode, InodeType, MkdirRequest, MkdirResponse, PathAt

__all__ = ["mkdir"]


def _create(ctx: OpContext, resolved: Resolved, mode: int) -> Inode:
    check_can_create(ctx, resolved)
    inode = new_inode(ctx, resolved.parent, InodeType.DIRECTORY, mode, resolved.name)
    link_new(ctx, resolved.parent, resolved.name, inode)
    return inode


def _mkdir_parents(ctx: OpContext, request: MkdirRequest) -> Inode:
    """mkdir -p: walk the path, creating each missing directory (intermediate ones with mode
    ``request.mode | 0o300`` as coreutils does, so the walk can go on); an existing directory
    (or a symlink to one) anywhere, the last component included, is accepted. A non-directory
    on the way is META_NOT_DIRECTORY, as the last component META_EXISTS."""
    absolute, parts = split_path(request.at.path)
    current = require_directory(ctx, ROOT_INODE if absolute or request.at.parent == 0 else request.at.parent)
    for index, name in enumerate(parts):
        last = index == len(parts) - 1
        if name in (b".", b".."):
            current = lookup_child(ctx, current, name)
            continue
        try:
            child = lookup_child(ctx, current, name)
        except ThreeFSError as exc:
            if exc.code != Code.META_NOT_FOUND:
                raise
            entry = records.load_entry(ctx.txn, current.id, name)
            mode = request.mode if last else request.mode | 0o300
            current = _create(ctx, Resolved(current, name, entry, None), mode)
            continue
        if child.type == InodeType.SYMLINK:
            # follow it (and its chain) the way a path walk does
            child = resolve(ctx, PathAt(current.id, name + b"/"), follow=True)
        if child.type != InodeType.DIRECTORY:
            code = Code.META_EXISTS if last else Code.META_NOT_DIRECTORY
            raise ThreeFSError(code, f"{name!r} (inode {child.id}) exists and is not a directory")
        current = child
    return current


def mkdir(ctx: OpContext, request: MkdirRequest) -> MkdirResponse:
    """Create directory ``request.at`` (``recursive``: and its missing parents, accepting an
    existing one). Errors: META_EXISTS (also for ``.``, ``..`` and the root), META_NOT_FOUND
    (a missing parent without ``recursive``), META_PERMISSION_DENIED, name/path errors."""
    if request.recursive:
        return MkdirResponse(inode=_mkdir_parents(ctx, request))
    resolved = resolve_parent(ctx, request.at, dot_code=Code.META_EXISTS)
    return MkdirResponse(inode=_create(ctx, resolved, request.mode))
