"""`threefs admin` storage commands (query-chunk, dump-chunkmeta, create-target, remove-target
--purge) through ``main(argv)`` against a fake mgmtd and fake storage nodes served from a thread."""

from __future__ import annotations

import json

import crc32c
import msgspec
import pytest
from mgmtd_fake import SECRET, FakeMgmtd, unused_address
from storage_fake import FakeChunk, FakeStorage, ThreadedStorageCluster, storage_routing

from client.cli import main, storage_admin
from client.cli.common import SECRET_ENV
from threefs.errors import Code, ThreeFSError
from threefs.wire import mgmtd as mwire
from threefs.wire.storage import ChunkKey

OFFLINE = mwire.PublicTargetState.OFFLINE


@pytest.fixture
def cluster(monkeypatch):
    monkeypatch.setenv(SECRET_ENV, SECRET)
    routing = storage_routing()
    spare = mwire.TargetInfo(target_id=131, node_id=12, public_state=OFFLINE)  # in no chain
    routing = msgspec.structs.replace(routing, targets={**routing.targets, 131: spare})
    mgmtd = FakeMgmtd(routing)
    storage = FakeStorage(mgmtd)
    with ThreadedStorageCluster(mgmtd, storage, SECRET) as served:
        yield served


def admin(capsys, cluster, *argv: str) -> tuple[int, str, str]:
    status = main(["admin", "--mgmtd", cluster.mgmtd.address, "--timeout", "5", *argv])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return status, captured.out, captured.err


def put_chunk(
    storage: FakeStorage, target_id: int, inode: int, index: int, data: bytes, version: int = 3
) -> None:
    storage.target_chunks(target_id)[ChunkKey(inode, index)] = FakeChunk(bytearray(data), 1 << 20, 2, version)


def test_query_chunk_shows_every_replica_and_whether_they_agree(capsys, cluster):
    for target_id in (101, 111):
        put_chunk(cluster.storage, target_id, 7, 2, b"hello")
    put_chunk(cluster.storage, 101, 7, 1, b"other chunk")
    status, out, err = admin(capsys, cluster, "query-chunk", "--chain", "1", "--inode", "7", "--index", "2")
    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert "chunk 7:2 on chain 1 (version 2)" in lines[0] and "DISAGREE" in lines[0]
    assert lines[1].split() == [
        "TARGET_ID",
        "NODE_ID",
        "STATE",
        "CHAIN_VER",
        "UPDATE_VER",
        "COMMIT_VER",
        "LENGTH",
        "CRC32C",
        "DIRTY",
    ]
    rows = {line.split()[0]: line.split() for line in lines[2:]}
    crc = f"{crc32c.crc32c(b'hello'):08x}"
    assert rows["101"] == ["101", "10", "SERVING", "2", "3", "3", "5", crc, "no"]
    assert rows["111"][1:] == ["11", "SERVING", "2", "3", "3", "5", crc, "no"]
    assert rows["121"][3] == "absent"
    put_chunk(cluster.storage, 121, 7, 2, b"hello")
    status, out, _ = admin(
        capsys, cluster, "query-chunk", "--chain", "1", "--inode", "7", "--index", "2", "--json"
    )
    data = json.loads(out)
    assert data["consistent"] is True and data["chunk"] == {"inode": 7, "index": 2}
    assert [r["meta"]["length"] for r in data["replicas"]] == [5, 5, 5]
    assert data["replicas"][0]["public_state"] == "SERVING"


def test_query_chunk_reports_an_unreachable_replica_in_its_row(capsys, cluster):
    routing = cluster.mgmtd.routing
    node = msgspec.structs.replace(routing.nodes[12], addresses=[unused_address()])
    cluster.mgmtd.routing = msgspec.structs.replace(routing, nodes={**routing.nodes, 12: node})
    status, out, _ = admin(capsys, cluster, "query-chunk", "--chain", "1", "--inode", "1", "--index", "0")
    assert status == 0
    row = next(line for line in out.splitlines() if line.startswith("121"))
    assert "error RPC_CONNECT_FAILED" in row


def test_dump_chunkmeta_pages_through_a_target(capsys, cluster, monkeypatch):
    monkeypatch.setattr(storage_admin, "PAGE_SIZE", 2)
    for index in range(5):
        put_chunk(cluster.storage, 101, 9, index, b"x" * index)
    put_chunk(cluster.storage, 101, 10, 0, b"y")
    status, out, _ = admin(capsys, cluster, "dump-chunkmeta", "101", "--limit", "0")
    assert status == 0
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["INODE", "INDEX", "CHUNK_SIZE"]
    assert [tuple(line.split()[:2]) for line in lines[1:-1]] == [("9", str(i)) for i in range(5)] + [
        ("10", "0")
    ]
    assert lines[-1] == "6 chunk(s) on target 101"
    assert len(cluster.storage.methods("DumpChunkMeta")) == 3
    status, out, _ = admin(capsys, cluster, "dump-chunkmeta", "101", "--inode", "9", "--limit", "3", "--json")
    data = json.loads(out)
    assert [c["chunk"]["index"] for c in data["chunks"]] == [0, 1, 2] and data["more"] is True
    status, out, _ = admin(capsys, cluster, "dump-chunkmeta", "101", "--limit", "4")
    assert out.splitlines()[-1] == "4 chunk(s) on target 101 (more: raise --limit, or 0 for all)"


def test_create_target_declares_it_at_mgmtd_then_creates_it_on_the_node(capsys, cluster):
    address = cluster.addresses[11]
    status, out, err = admin(
        capsys, cluster, "create-target", "--node-address", address, "--target-id", "140", "--path", "/disk1"
    )
    assert (status, err) == (0, "")
    declared = cluster.mgmtd.requests[-1]
    assert isinstance(declared, mwire.CreateTargetsRequest)
    assert [(t.target_id, t.node_id) for t in declared.targets] == [(140, 11)]
    node, request = cluster.storage.created_targets[-1]
    assert (node, request.target_id, request.path) == (11, 140, "/disk1")
    assert "created target 140 on node 11" in out and "next: put it in a chain" in out


def test_create_target_accepts_an_existing_declaration_on_the_same_node_only(capsys, cluster):
    exists = ThreeFSError(Code.ALREADY_EXISTS, "target 131 already exists")
    cluster.mgmtd.failures["CreateTargets"] = [exists]
    status, _, err = admin(capsys, cluster, "create-target", "--node-id", "12", "--target-id", "131")
    assert (status, err) == (0, "")
    assert cluster.storage.created_targets[-1][0] == 12
    cluster.mgmtd.failures["CreateTargets"] = [exists]
    status, _, err = admin(capsys, cluster, "create-target", "--node-id", "10", "--target-id", "131")
    assert status == 1 and "ALREADY_EXISTS" in err
    assert len(cluster.storage.created_targets) == 1


def test_create_target_needs_a_known_node(capsys, cluster):
    status, _, err = admin(capsys, cluster, "create-target", "--target-id", "150")
    assert status == 2 and "--node-address" in err
    status, _, err = admin(
        capsys, cluster, "create-target", "--node-address", "10.9.9.9:1", "--target-id", "150"
    )
    assert status == 2 and "no node registered at 10.9.9.9:1" in err
    assert cluster.storage.created_targets == []


def test_remove_target_purge_deletes_chunks_on_the_node_then_forgets_it(capsys, cluster):
    put_chunk(cluster.storage, 131, 1, 0, b"old")
    status, out, err = admin(capsys, cluster, "remove-target", "131", "--purge")
    assert (status, err) == (0, "")
    assert cluster.storage.removed_targets == [(12, 131)]
    assert isinstance(cluster.mgmtd.requests[-1], mwire.RemoveTargetRequest)
    assert "its node deleted 1 chunk(s)" in out
    cluster.storage.failures["RemoveTarget"] = [ThreeFSError(Code.STORAGE_TARGET_NOT_FOUND)]
    status, out, _ = admin(capsys, cluster, "remove-target", "131", "--purge", "--json")
    assert status == 0 and json.loads(out)["purged_chunks"] == 0


def test_remove_target_purge_refuses_a_target_still_in_a_chain(capsys, cluster):
    status, _, err = admin(capsys, cluster, "remove-target", "101", "--purge")
    assert status == 1 and "target 101 is SERVING in chain 1" in err
    assert cluster.storage.removed_targets == [] and cluster.mgmtd.calls["RemoveTarget"] == 0
    status, _, _ = admin(capsys, cluster, "remove-target", "131")  # without --purge: mgmtd only
    assert status == 0 and cluster.storage.removed_targets == []
