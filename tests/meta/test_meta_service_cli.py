"""`threefs admin` namespace commands (stat, ls, mkdir, rm, mv, ln, set-layout, gc-list, fsck)
through ``client.cli.main`` against a real cluster (mgmtd, one storage node, one meta server),
with the meta server found through mgmtd's routing info."""

from __future__ import annotations

import json

import pytest
import trio

from client.cli import main as cli_main
from client.cli.meta_admin import parse_size
from threefs.testing.cluster import LocalCluster

pytestmark = pytest.mark.slow


async def test_namespace_commands_on_a_real_cluster(tmp_path, capsys):
    async with LocalCluster(tmp_path, storage_nodes=1, replication=1) as cluster:
        base = ["admin", "--mgmtd", cluster.mgmtd_address, "--secret-file", str(cluster.secret_file)]

        async def run(*argv: str) -> tuple[int, str, str]:
            capsys.readouterr()
            status = await trio.to_thread.run_sync(cli_main, [*base, *argv])
            captured = capsys.readouterr()
            assert "Traceback" not in captured.err
            return status, captured.out, captured.err

        async def run_json(*argv: str) -> object:
            status, out, err = await run(*argv, "--json")
            assert status == 0, err
            return json.loads(out)

        assert (await run("mkdir", "-p", "/a/b/c"))[0] == 0
        status, out, err = await run("mkdir", "/a")
        assert status == 1 and "META_EXISTS" in err
        assert (await run("mkdir", "-p", "/a/b"))[0] == 0  # -p accepts an existing directory

        status, out, _ = await run("set-layout", "/a", "--chunk-size", "256K", "--stripe", "1")
        assert status == 0 and "chunk 256.0 KiB" in out, out
        status, _, err = await run("set-layout", "/a", "--table-id", "9")
        assert status == 1 and "no chain table 9" in err
        status, _, err = await run("set-layout", "/a", "--stripe", "5")  # one chain in the table
        assert status == 1 and "META_BAD_LAYOUT" in err
        status, _, err = await run("set-layout", "/a", "--chunk-size", "1K")
        assert status == 2 and "chunk_size" in err

        assert (await run("ln", "-s", "b/c", "/a/link"))[0] == 0
        entries = (await run_json("ls", "/a"))["entries"]  # type: ignore[index]
        assert [(e["name"], e["type"]) for e in entries] == [("b", "DIRECTORY"), ("link", "SYMLINK")]
        status, out, _ = await run("ls", "/a")
        assert status == 0 and "link -> b/c" in out and out.splitlines()[0].split()[0] == "MODE"

        inode = (await run_json("stat", "/a/link"))["inode"]  # type: ignore[index]
        assert inode["type"] == "DIRECTORY"  # followed
        inode = (await run_json("stat", "/a/link", "--no-follow"))["inode"]  # type: ignore[index]
        assert inode["type"] == "SYMLINK" and inode["target"] == "b/c"
        status, out, _ = await run("stat", "/a")
        assert status == 0 and "default layout: table 1" in out and "chunk 256.0 KiB" in out

        assert (await run("mv", "/a/b", "/a/d"))[0] == 0
        status, _, err = await run("mv", "/a/d", "/a/d/c/e")  # into its own subtree
        assert status == 1 and "META_" in err
        status, _, err = await run("rm", "/a/d")
        assert status == 1 and "META_IS_DIRECTORY" in err
        status, _, err = await run("rm", "-d", "/a/d")
        assert status == 1 and "META_NOT_EMPTY" in err
        status, out, _ = await run("rm", "-r", "/a/d")
        assert status == 0 and "removed /a/d" in out
        status, _, err = await run("stat", "/a/d")
        assert status == 1 and "META_NOT_FOUND" in err

        jobs = await run_json("gc-list")
        assert jobs == {"jobs": []}
        status, out, _ = await run("fsck")
        assert status == 0 and "0 problem(s)" in out, out
        report = await run_json("fsck", "--repair", "--meta", cluster.meta_addresses[0])
        assert report["problems"] == [] and report["unrepaired"] == 0  # type: ignore[index]


def test_sizes_parse_with_units():
    assert [parse_size(s) for s in ("65536", "64K", "4M", "1g")] == [65536, 65536, 4 << 20, 1 << 30]
