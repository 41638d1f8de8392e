"""Path resolution inside a transaction: walk ``PathAt`` component by component.

Rules (see docs/meta.md): resolution starts at ``at.parent`` (or the root for an absolute path;
``parent`` 0 also means the root); each directory looked into must be one the caller may search
(x), ``..`` goes to the directory's ``parent`` (the root's is itself), ``.`` stays; symlinks met
as intermediate components are followed (a relative target from the symlink's directory, an
absolute one from the root), at most ``MAX_SYMLINK_FOLLOWS`` in one resolution (META_LOOP
beyond); a missing component is META_NOT_FOUND, a non-directory in the middle
META_NOT_DIRECTORY. An empty path with a non-zero ``parent`` names that inode, whatever its
type (``resolve`` only: inode addressing for the FUSE mount). A trailing slash (``a/``) asks
for a directory: ``resolve`` then follows a final symlink and answers META_NOT_DIRECTORY for
anything else. Every entry and inode read adds read conflicts, so a concurrent rename of a
directory on the path makes one of the two transactions retry.
"""

from __future__ import annotations

from dataclasses import dataclass

from meta.components import permissions
from meta.components.names import check_name, split_path
from meta.ops.context import OpContext
from meta.store import records
from threefs.errors import Code, ThreeFSError
from threefs.wire.meta import MAX_SYMLINK_FOLLOWS, ROOT_INODE, DirEntry, Inode, InodeType, PathAt

__all__ = ["Resolved", "is_ancestor", "lookup_child", "require_directory", "resolve", "resolve_parent"]

# Deeper than any real tree (a path of 4096 bytes has at most 2048 components); a longer
# parent chain can only be a corrupt cycle.
_MAX_DEPTH = 1 << 16


@dataclass(frozen=True)
class Resolved:
    """The result of a resolution: the directory holding the last component (``parent``), the
    last component's ``name`` (b"" when the path named ``at.parent`` itself or the root), its
    entry and inode when it exists (None otherwise; an entry whose inode is missing has
    ``inode`` None), and whether the path ended with ``/``."""

    parent: Inode
    name: bytes
    entry: DirEntry | None
    inode: Inode | None
    trailing_slash: bool = False


class _Budget:
    """Symlinks one resolution may still follow."""

    def __init__(self) -> None:
        self.left = MAX_SYMLINK_FOLLOWS

    def spend(self, link: Inode) -> None:
        if self.left <= 0:
            message = f"more than {MAX_SYMLINK_FOLLOWS} symlinks (at inode {link.id})"
            raise ThreeFSError(Code.META_LOOP, message)
        self.left -= 1


def require_directory(ctx: OpContext, inode_id: int) -> Inode:
    """Inode ``inode_id``, which must be a directory (META_NOT_FOUND / META_NOT_DIRECTORY)."""
    inode = records.require_inode(ctx.txn, inode_id)
    if inode.type != InodeType.DIRECTORY:
        raise ThreeFSError(Code.META_NOT_DIRECTORY, f"inode {inode_id} is not a directory")
    return inode


def lookup_child(ctx: OpContext, directory: Inode, name: bytes) -> Inode:
    """The inode entry ``name`` of ``directory`` names (``.``/``..`` understood, never followed),
    after checking the caller may search ``directory``. META_NOT_FOUND when there is none."""
    if directory.type != InodeType.DIRECTORY:
        raise ThreeFSError(Code.META_NOT_DIRECTORY, f"inode {directory.id} is not a directory")
    permissions.check(directory, ctx.caller, permissions.X, f"directory {directory.id}")
    if name == b".":
        return directory
    if name == b"..":
        return directory if directory.id == ROOT_INODE else require_directory(ctx, directory.parent)
    entry = records.load_entry(ctx.txn, directory.id, name)
    inode = None if entry is None else records.load_inode(ctx.txn, entry.inode)
    if inode is None:
        raise ThreeFSError(Code.META_NOT_FOUND, f"no entry {name!r} in directory {directory.id}")
    return inode


def _start(ctx: OpContext, at: PathAt, absolute: bool) -> Inode:
    return require_directory(ctx, ROOT_INODE if absolute or at.parent == 0 else at.parent)


def _follow(ctx: OpContext, directory: Inode, link: Inode, budget: _Budget) -> Inode:
    """Where symlink ``link`` (an entry of ``directory``) points, followed to the end."""
    budget.spend(link)
    if not link.target:
        raise ThreeFSError(Code.META_NOT_FOUND, f"symlink {link.id} has an empty target")
    absolute, parts = split_path(link.target)
    start = require_directory(ctx, ROOT_INODE) if absolute else directory
    return _walk(ctx, start, parts, follow_last=True, budget=budget)


def _walk_dirs(ctx: OpContext, current: Inode, parts: list[bytes], budget: _Budget) -> Inode:
    """Walk ``parts`` from ``current``, each one a directory (symlinks followed)."""
    for name in parts:
        child = lookup_child(ctx, current, name)
        if child.type == InodeType.SYMLINK:
            child = _follow(ctx, current, child, budget)
        if child.type != InodeType.DIRECTORY:
            raise ThreeFSError(Code.META_NOT_DIRECTORY, f"{name!r} (inode {child.id}) is not a directory")
        current = child
    return current


def _walk(ctx: OpContext, start: Inode, parts: list[bytes], *, follow_last: bool, budget: _Budget) -> Inode:
    if not parts:
        return start
    directory = _walk_dirs(ctx, start, parts[:-1], budget)
    child = lookup_child(ctx, directory, parts[-1])
    if child.type == InodeType.SYMLINK and follow_last:
        child = _follow(ctx, directory, child, budget)
    return child


def resolve(ctx: OpContext, at: PathAt, *, follow: bool) -> Inode:
    """The inode ``at`` names (a final symlink followed when ``follow``); META_NOT_FOUND,
    META_NOT_DIRECTORY, META_PERMISSION_DENIED, META_LOOP, or a name/path error."""
    if not at.path and at.parent != 0:
        # inode addressing (the FUSE mount): ``parent`` itself, any type, never followed
        return records.require_inode(ctx.txn, at.parent)
    absolute, parts = split_path(at.path)
    trailing = bool(parts) and at.path.endswith(b"/")
    inode = _walk(ctx, _start(ctx, at, absolute), parts, follow_last=follow or trailing, budget=_Budget())
    if trailing and inode.type != InodeType.DIRECTORY:
        raise ThreeFSError(Code.META_NOT_DIRECTORY, f"{at.path!r} ends with '/' but is not a directory")
    return inode


def resolve_parent(ctx: OpContext, at: PathAt, *, dot_code: Code = Code.META_INVALID_NAME) -> Resolved:
    """Resolve all but the last component (which must be a plain name: META_INVALID_NAME or
    META_EXISTS for ``.``/``..``/root as POSIX says for the calling op) and look the last one up
    without following it. For ops that create, remove or rename the last component.

    ``dot_code`` is the error for a last component ``.`` or ``..`` or a path naming ``at.parent``
    or the root itself (mkdir passes META_EXISTS, rmdir META_INVALID_NAME, ...); it is raised
    only after the components before it resolved. The caller's search permission on the final
    directory is checked (it is looked into); write permission is the op's business."""
    absolute, parts = split_path(at.path)
    start = _start(ctx, at, absolute)
    budget = _Budget()
    parent = _walk_dirs(ctx, start, parts[:-1], budget)
    if not parts or parts[-1] in (b".", b".."):
        raise ThreeFSError(dot_code, f"{at.path!r} does not end with a name that can be created or removed")
    name = check_name(parts[-1])
    permissions.check(parent, ctx.caller, permissions.X, f"directory {parent.id}")
    entry = records.load_entry(ctx.txn, parent.id, name)
    inode = None if entry is None else records.load_inode(ctx.txn, entry.inode)
    return Resolved(parent, name, entry, inode, at.path.endswith(b"/"))


def is_ancestor(ctx: OpContext, ancestor_id: int, inode_id: int) -> bool:
    """Whether directory ``ancestor_id`` is ``inode_id`` itself or one of its ancestors, walking
    ``Inode.parent`` from directory ``inode_id`` up to the root (rename's subtree check: a
    directory may not move under itself). Every inode on the way is read (read conflicts), so a
    concurrent move of an ancestor makes one transaction retry."""
    current = inode_id
    for _ in range(_MAX_DEPTH):
        if current == ancestor_id:
            return True
        if current in (ROOT_INODE, 0):  # 0: not a directory (files keep no parent)
            return False
        current = records.require_inode(ctx.txn, current).parent
    raise ThreeFSError(Code.INTERNAL, f"parent chain of inode {inode_id} does not reach the root")
