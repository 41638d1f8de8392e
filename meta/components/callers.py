"""Which ``Caller`` a user-token connection may put in its requests (docs/security.md).

On a cluster-secret connection the caller is taken as given (services and trusted tools). On a
user connection, meta checks it against the token's ``Identity`` before the operation runs, so
a refused request changes nothing:

- a plain user acts only as itself: the caller's uid and gid are the user's, its groups a
  subset of the user's groups (and gid);
- an ``impersonate`` user (a FUSE daemon serving local users) may give any uid, gid and groups;
- an ``admin`` user may act as anyone, root included; only an admin user may set
  ``Caller.admin``, and only admin users may call ``ADMIN_ONLY`` methods.

Refusals are META_NOT_PERMITTED (EPERM), naming the user and what it may not do. After this
check the POSIX permission checks (``meta.components.permissions``) apply to the caller as
usual.
"""

from __future__ import annotations

from threefs.errors import Code, ThreeFSError
from threefs.rpc import Identity
from threefs.wire import meta as wire
from threefs.wire.common import MethodSpec
from threefs.wire.meta import Caller

__all__ = ["ADMIN_ONLY", "check_caller"]

# Methods for admin users only, whatever the caller says (their ops also want ``Caller.admin``).
ADMIN_ONLY = frozenset({wire.FSCK.method_id, wire.GC_LIST.method_id})


def _refuse(identity: Identity, what: str) -> ThreeFSError:
    return ThreeFSError(Code.META_NOT_PERMITTED, f"user {identity.name!r} {what}")


def check_caller(identity: Identity, spec: MethodSpec, caller: Caller) -> None:
    """Raise META_NOT_PERMITTED unless user ``identity`` may send ``caller`` to ``spec``."""
    if identity.admin:
        return
    if spec.method_id in ADMIN_ONLY:
        raise _refuse(identity, f"is not an admin user: {spec.name} needs one")
    if caller.admin:
        raise _refuse(identity, "is not an admin user and may not act with the admin flag")
    if identity.impersonate:
        return
    if caller.uid != identity.uid or caller.gid != identity.gid:
        raise _refuse(
            identity,
            f"acts as uid {identity.uid} gid {identity.gid}, not as uid {caller.uid} gid {caller.gid} "
            "(acting for others needs an impersonate token)",
        )
    extra = set(caller.groups) - identity.groups - {identity.gid}
    if extra:
        raise _refuse(identity, f"is not in group(s) {sorted(extra)}")
