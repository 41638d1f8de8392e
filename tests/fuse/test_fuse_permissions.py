"""Permission checks as non-root users on an ``allow_other`` mount: a child process with its own
uid, gid and supplementary groups makes plain os calls; meta decides with that identity."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap

import pytest

pytestmark = pytest.mark.slow

ALICE, BOB, STAFF = 1000, 1001, 2000
# The child runs a stdlib-only script with the system interpreter: the test's own may live
# where other users cannot execute it (a venv under /root).
CHILD_PYTHON = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin")

_RUNNER = textwrap.dedent(
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
    """
)


def run_as(uid: int, gid: int, body: str, base: str, groups: tuple[int, ...] = ()) -> dict[str, object]:
    """Run ``body`` (statements calling ``attempt(label, fn)``) as ``uid``/``gid``/``groups``."""

    def drop() -> None:
        os.setgroups(list(groups))
        os.setgid(gid)
        os.setuid(uid)

    if CHILD_PYTHON is None:
        pytest.skip("no system python3 for the unprivileged child")
    script = _RUNNER + textwrap.dedent(body) + "\nprint(json.dumps(results))\n"
    done = subprocess.run(
        [CHILD_PYTHON, "-c", script, base],
        preexec_fn=drop,
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_owner_group_other_bits(mounted) -> None:
    base = mounted.path
    for name, mode in (("private", 0o600), ("group", 0o640), ("public", 0o644)):
        with open(os.path.join(base, name), "wb") as f:
            f.write(b"secret")
        os.chown(os.path.join(base, name), ALICE, STAFF)
        os.chmod(os.path.join(base, name), mode)
    body = """
    for name in ("private", "group", "public"):
        attempt("read " + name, lambda: open(P(name), "rb").read().decode())
    attempt("write public", lambda: open(P("public"), "ab").close())
    attempt("access r public", lambda: os.access(P("public"), os.R_OK))
    attempt("access w public", lambda: os.access(P("public"), os.W_OK))
    attempt("create in root", lambda: open(P("mine"), "wb").close())
    """
    alice = run_as(ALICE, ALICE, body, base)
    assert alice["read private"] == alice["read group"] == alice["read public"] == "secret"
    assert alice["write public"] == "ok"
    assert alice["create in root"] == "EACCES"  # root directory is 0755 root
    bob = run_as(BOB, BOB, body, base)
    assert bob["read private"] == bob["read group"] == "EACCES"
    assert bob["read public"] == "secret"
    assert bob["write public"] == "EACCES"
    assert (bob["access r public"], bob["access w public"]) == (True, False)
    staff_bob = run_as(BOB, BOB, body, base, groups=(STAFF,))  # group through supplementary groups
    assert staff_bob["read group"] == "secret"
    assert staff_bob["read private"] == "EACCES"


def test_new_files_belong_to_the_caller(mounted) -> None:
    shared = os.path.join(mounted.path, "shared")
    os.mkdir(shared)
    os.chmod(shared, 0o777)
    body = """
    attempt("create", lambda: open(P("shared", "a"), "wb").write(b"hi") and None)
    attempt("mkdir", lambda: os.mkdir(P("shared", "d")))
    attempt("stat", lambda: [os.stat(P("shared", "a")).st_uid, os.stat(P("shared", "a")).st_gid])
    attempt("chmod own", lambda: os.chmod(P("shared", "a"), 0o600))
    attempt("chown to root", lambda: os.chown(P("shared", "a"), 0, 0))
    attempt("setxattr own", lambda: os.setxattr(P("shared", "a"), "user.k", b"v"))
    attempt("trusted", lambda: os.setxattr(P("shared", "a"), "trusted.k", b"v"))
    """
    result = run_as(ALICE, STAFF, body, mounted.path)
    assert result["create"] == result["mkdir"] == result["chmod own"] == result["setxattr own"] == "ok"
    assert result["stat"] == [ALICE, STAFF]
    assert result["chown to root"] == "EPERM"
    assert result["trusted"] == "EPERM"
    assert os.stat(os.path.join(shared, "d")).st_uid == ALICE


def test_chmod_utime_and_truncate_of_others_files(mounted) -> None:
    path = os.path.join(mounted.path, "f")
    with open(path, "wb") as f:
        f.write(b"0123456789")
    os.chmod(path, 0o666)
    body = """
    attempt("chmod", lambda: os.chmod(P("f"), 0o777))
    attempt("utime value", lambda: os.utime(P("f"), (1, 1)))
    attempt("utime now", lambda: os.utime(P("f")))
    attempt("truncate", lambda: os.truncate(P("f"), 3))
    attempt("getxattr", lambda: os.getxattr(P("f"), "user.none"))
    """
    result = run_as(BOB, BOB, body, mounted.path)
    assert result["chmod"] == "EPERM"
    assert result["utime value"] == "EPERM"
    assert result["utime now"] == "ok"  # write permission suffices for "now"
    assert result["truncate"] == "ok"
    assert result["getxattr"] == "ENODATA"
    assert os.stat(path).st_size == 3


def test_sticky_directory(mounted) -> None:
    tmp = os.path.join(mounted.path, "tmp")
    os.mkdir(tmp)
    os.chmod(tmp, 0o1777)
    run_as(ALICE, ALICE, 'attempt("create", lambda: open(P("tmp", "alice"), "wb").close())', mounted.path)
    body = """
    attempt("remove alice's", lambda: os.unlink(P("tmp", "alice")))
    attempt("rename alice's", lambda: os.rename(P("tmp", "alice"), P("tmp", "moved")))
    attempt("create own", lambda: open(P("tmp", "bob"), "wb").close())
    attempt("remove own", lambda: os.unlink(P("tmp", "bob")))
    """
    result = run_as(BOB, BOB, body, mounted.path)
    assert result["remove alice's"] == "EPERM"
    assert result["rename alice's"] == "EPERM"
    assert result["create own"] == result["remove own"] == "ok"
    assert os.path.exists(os.path.join(tmp, "alice"))


def test_sticky_refusal_is_eperm(mounted) -> None:
    tmp = os.path.join(mounted.path, "tmp")
    os.mkdir(tmp)
    os.chmod(tmp, 0o1777)
    run_as(ALICE, ALICE, 'attempt("create", lambda: open(P("tmp", "alice"), "wb").close())', mounted.path)
    result = run_as(BOB, BOB, 'attempt("remove", lambda: os.unlink(P("tmp", "alice")))', mounted.path)
    assert result["remove"] == "EPERM"


def test_search_permission_on_directories(mounted) -> None:
    closed = os.path.join(mounted.path, "closed")
    os.mkdir(closed, 0o700)
    with open(os.path.join(closed, "inside"), "wb") as f:
        f.write(b"x")
    os.chmod(os.path.join(closed, "inside"), 0o644)
    body = """
    attempt("list", lambda: os.listdir(P("closed")))
    attempt("stat inside", lambda: os.stat(P("closed", "inside")).st_size)
    attempt("list root", lambda: sorted(os.listdir(P())))
    """
    result = run_as(ALICE, ALICE, body, mounted.path)
    assert result["list"] == "EACCES"
    assert result["stat inside"] == "EACCES"
    assert result["list root"] == ["closed"]
