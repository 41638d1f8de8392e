"""Real FUSE mounts that authenticate with a user token (``token_file`` in the cluster config):
the mount acts for local users only as far as its token allows.

- an admin token: local root is cluster root, as with the cluster secret;
- a plain token (uid 1000): its own uid works (POSIX checks apply), another local uid and local
  root get EPERM;
- an impersonate token (not admin): any local uid works with its own permissions, but local
  root is refused (it would need the admin flag).

Local users run as child processes with their own uid (as in tests/fuse). Skipped where FUSE is
unavailable (no /dev/fuse, no fusermount3, not root).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
from security_cluster import as_cluster

from client.cli import main
from client.meta import MetaClient
from threefs.rpc import RpcClient
from threefs.testing.cluster import LocalCluster
from threefs.testing.mount import FuseMount
from threefs.testing.mount import fuse_unavailable as mount_unavailable
from threefs.wire.meta import Caller

pytestmark = pytest.mark.slow

CHILD_PYTHON = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin")
_CHILD = textwrap.dedent(
    """
    import errno, json, os, sys
    results = {}
    def attempt(label, fn):
        try:
            value = fn()
            results[label] = "ok" if value is None else value
        except OSError as exc:
            results[label] = errno.errorcode.get(exc.errno, str(exc.errno))
    base = sys.argv[1]
    P = lambda *names: os.path.join(base, *names)
    attempt("write", lambda: open(P(sys.argv[2]), "wb").write(b"hello"))
    attempt("read", lambda: open(P(sys.argv[2]), "rb").read().decode())
    attempt("owner", lambda: os.stat(P(sys.argv[2])).st_uid)
    print(json.dumps(results))
    """
)


def fuse_unavailable() -> str | None:
    if CHILD_PYTHON is None:
        return "no system python3 for the unprivileged children"
    return mount_unavailable()


class TokenMount(FuseMount):
    """A mount whose readiness is read from /proc/self/mounts: with a token that may not act
    for root, the test process (root) cannot even stat the mount point."""

    cwd = "/"

    def is_mounted(self) -> bool:
        return f" {self.path} fuse" in Path("/proc/self/mounts").read_text()


@pytest.fixture(scope="module")
def mount_with(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """``mount_with(name, *user_add_flags)``: add user ``name``, mount with its token."""
    reason = fuse_unavailable()
    if reason:
        pytest.skip(reason)
    directory = tmp_path_factory.mktemp("fuse-tokens")
    mounts: list[FuseMount] = []
    trio.run(make_directories, cluster)

    def mount(name: str, *flags: str) -> TokenMount:
        token = directory / name
        assert (
            main(["admin", "user-add", name, *flags, "--save-token", str(token), *as_cluster(cluster)]) == 0
        )
        config = directory / f"{name}.toml"
        config.write_text(f'mgmtd_addresses = ["{cluster.mgmtd_address}"]\ntoken_file = "{token}"\n')
        path = tempfile.mkdtemp(prefix="threefs-tok-")
        return TokenMount(cluster, config, path, registry=mounts).mount()  # type: ignore[return-value]

    try:
        yield mount
    finally:
        for mounted in mounts:
            mounted.unmount()
            shutil.rmtree(mounted.path, ignore_errors=True)
            mounted.log_path.unlink(missing_ok=True)


async def make_directories(cluster: LocalCluster) -> None:
    """``/fuse-shared`` (0777) and ``/fuse-1000`` (0755, uid and gid 1000), with the secret."""
    async with RpcClient(cluster.secret) as rpc:
        meta = MetaClient(rpc, addresses=cluster.meta_addresses, caller=Caller(uid=0, gid=0, admin=True))
        await meta.mkdir("/fuse-shared", 0o777)
        await meta.mkdir("/fuse-1000", 0o755)
        await meta.set_attr("/fuse-1000", uid=1000, gid=1000)


def run_as(uid: int, base: str, name: str) -> dict[str, object]:
    def drop() -> None:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)

    done = subprocess.run(
        [CHILD_PYTHON, "-c", _CHILD, base, name],  # type: ignore[list-item]
        preexec_fn=drop,
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def root_listdir(path: str) -> str:
    try:
        os.listdir(path)
    except OSError as exc:
        return os.strerror(exc.errno) if exc.errno else str(exc)
    return "ok"


def test_an_admin_token_mount_serves_local_root(mount_with):
    mounted = mount_with("fuse-admin", "--uid", "0", "--gid", "0", "--admin")
    target = os.path.join(mounted.path, "fuse-shared", "by-root")
    with open(target, "wb") as f:
        f.write(b"root was here")
    with open(target, "rb") as f:
        assert f.read() == b"root was here"


def test_a_plain_token_mount_serves_only_its_own_uid(mount_with):
    mounted = mount_with("fuse-1000", "--uid", "1000", "--gid", "1000")
    own = run_as(1000, os.path.join(mounted.path, "fuse-1000"), "mine")
    assert own == {"write": 5, "read": "hello", "owner": 1000}
    other = run_as(2000, os.path.join(mounted.path, "fuse-shared"), "not-mine")
    assert other["write"] == "EPERM"
    assert root_listdir(mounted.path) == os.strerror(1)  # EPERM: local root is not the token's uid


def test_an_impersonate_token_mount_serves_local_users_but_not_root(mount_with):
    mounted = mount_with("fuse-daemon", "--uid", "0", "--gid", "0", "--impersonate")
    shared = run_as(2000, os.path.join(mounted.path, "fuse-shared"), "by-2000")
    assert shared == {"write": 5, "read": "hello", "owner": 2000}
    denied = run_as(2000, os.path.join(mounted.path, "fuse-1000"), "by-2000")
    assert denied["write"] == "EACCES"  # POSIX: /fuse-1000 is 0755 and uid 1000's
    assert root_listdir(mounted.path) == os.strerror(1)  # EPERM: root needs an admin token
