"""POSIX permission checks for a ``Caller`` (DESIGN.md section 10).

- ``may(inode, caller, want)`` with ``want`` a mask of R=4, W=2, X=1: owner bits when the
  caller's uid owns the inode, else group bits when the inode's gid is the caller's gid or one
  of its groups, else other bits. Root (uid 0) with ``admin`` passes every check except X on a
  non-directory with no x bit at all. uid 0 without ``admin`` is an ordinary user.
- ``check(...)``: the same, raising META_PERMISSION_DENIED naming the inode and the access.
- Sticky directories: removing or renaming an entry of a sticky directory needs the caller to own
  the entry's inode or the directory (or be admin root): ``check_sticky`` (META_PERMISSION_DENIED).
- Ownership: ``check_owner`` (META_NOT_PERMITTED unless the caller owns the inode or is admin
  root), used by chmod/utime-to-a-value/set-layout.
"""

from __future__ import annotations

from threefs.errors import Code, ThreeFSError
from threefs.wire.meta import Caller, Inode, InodeType

__all__ = ["R", "W", "X", "check", "check_owner", "check_sticky", "in_group", "is_root", "may"]

R, W, X = 4, 2, 1

_STICKY = 0o1000
_ANY_EXEC = 0o111


def is_root(caller: Caller) -> bool:
    return caller.uid == 0 and caller.admin


def in_group(caller: Caller, gid: int) -> bool:
    return caller.gid == gid or gid in caller.groups


def may(inode: Inode, caller: Caller, want: int) -> bool:
    """Whether ``caller`` has every access of ``want`` (R|W|X mask) on ``inode``."""
    if is_root(caller):
        # root may search any directory but executes a file only when someone may
        return not (want & X and inode.type != InodeType.DIRECTORY and not inode.mode & _ANY_EXEC)
    if caller.uid == inode.uid:
        bits = (inode.mode >> 6) & 7
    elif in_group(caller, inode.gid):
        bits = (inode.mode >> 3) & 7
    else:
        bits = inode.mode & 7
    return bits & want == want


def _describe(want: int) -> str:
    return "".join(letter for bit, letter in ((R, "r"), (W, "w"), (X, "x")) if want & bit)


def check(inode: Inode, caller: Caller, want: int, what: str = "") -> None:
    """``may`` or META_PERMISSION_DENIED (``what`` names the object in the message)."""
    if not may(inode, caller, want):
        label = what or f"inode {inode.id}"
        raise ThreeFSError(
            Code.META_PERMISSION_DENIED,
            f"uid {caller.uid} lacks {_describe(want)} permission on {label} (mode {inode.mode:o})",
        )


def check_sticky(directory: Inode, victim: Inode, caller: Caller) -> None:
    """In a sticky directory only the owner of ``victim``, of ``directory`` or admin root may
    remove or rename ``victim``'s entry (META_NOT_PERMITTED: EPERM, as Linux answers). No-op
    without the sticky bit.
    The caller checks W|X on ``directory`` separately."""
    if not directory.mode & _STICKY or is_root(caller):
        return
    if caller.uid in (victim.uid, directory.uid):
        return
    raise ThreeFSError(
        Code.META_NOT_PERMITTED,
        f"uid {caller.uid} owns neither inode {victim.id} nor sticky directory {directory.id}",
    )


def check_owner(inode: Inode, caller: Caller) -> None:
    """META_NOT_PERMITTED unless the caller owns ``inode`` or is admin root."""
    if caller.uid != inode.uid and not is_root(caller):
        raise ThreeFSError(
            Code.META_NOT_PERMITTED, f"uid {caller.uid} does not own inode {inode.id} (owner {inode.uid})"
        )
