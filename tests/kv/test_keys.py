"""The key prefix table and key builders."""

from __future__ import annotations

import struct

import pytest

from threefs.errors import Code, ThreeFSError
from threefs.kv import keys
from threefs.kv.keys import Prefix, prefix_range


def test_prefixes_are_unique_and_exactly_four_bytes() -> None:
    values = [prefix.value for prefix in Prefix]
    assert all(isinstance(value, bytes) and len(value) == 4 for value in values)
    assert len(set(values)) == len(values)
    design = {b"INOD", b"DENT", b"INOS", b"IDEM", b"NODE", b"CHAN", b"CTBL", b"TGT_", b"LEAS", b"CONF"}
    assert design <= set(values)
    # No prefix is a prefix of another's range: with equal lengths, distinct means disjoint.
    for prefix in Prefix:
        begin, end = prefix_range(prefix.value)
        assert [other for other in values if begin <= other < end] == [prefix.value]


def test_inode_keys_are_little_endian_and_round_trip() -> None:
    assert keys.inode_key(1) == b"INOD" + b"\x01" + b"\x00" * 7
    for inode_id in (0, 1, 0x0102030405060708, 2**64 - 1):
        key = keys.inode_key(inode_id)
        assert len(key) == 12 and keys.parse_inode_key(key) == inode_id
    with pytest.raises(ThreeFSError):
        keys.parse_inode_key(keys.node_key(1))


def test_dir_entries_of_one_directory_form_one_range() -> None:
    parent = keys.dentry_prefix(7)
    begin, end = prefix_range(parent)
    inside = [keys.dentry_key(7, name) for name in (b"", b"a", b"\xff\xff", b"z" * 255)]
    outside = [keys.dentry_key(6, b"a"), keys.dentry_key(8, b""), keys.dentry_key(7 + 256, b"a")]
    assert all(begin <= key < end for key in inside)
    assert not any(begin <= key < end for key in outside)


def test_ordered_ids_are_big_endian() -> None:
    for build in (keys.node_key, keys.chain_key, keys.target_key):
        assert build(1) < build(255) < build(256) < build(70000)
    assert keys.chain_table_key(1, 2) < keys.chain_table_key(1, 10) < keys.chain_table_key(2, 0)
    assert keys.gc_queue_key(5, 2**63) < keys.gc_queue_key(6, 0)
    assert keys.idempotency_key(b"c" * 16, 2) < keys.idempotency_key(b"c" * 16, 256)
    assert keys.chain_table_key(3, 4) == b"CTBL" + struct.pack(">II", 3, 4)


def test_other_builders() -> None:
    assert keys.lease_key() == b"LEAS"
    assert keys.config_key("meta") == b"CONFmeta"
    assert keys.user_key(b"digest") == b"USERdigest"
    assert keys.inode_session_key(1, b"s").startswith(keys.inode_session_prefix(1))
    assert keys.INODE_ALLOCATOR_KEY == b"IALC" and keys.CLUSTER_KEY == b"CLUS"


@pytest.mark.parametrize(
    "build",
    [
        lambda: keys.inode_key(-1),
        lambda: keys.inode_key(2**64),
        lambda: keys.inode_key("1"),
        lambda: keys.node_key(2**32),
        lambda: keys.dentry_key(1, "name"),
        lambda: keys.idempotency_key(b"short", 1),
        lambda: keys.config_key(""),
        lambda: prefix_range("INOD"),
    ],
)
def test_bad_arguments_are_invalid(build) -> None:
    with pytest.raises(ThreeFSError) as excinfo:
        build()
    assert excinfo.value.code == Code.INVALID_ARG


def test_prefix_range() -> None:
    assert prefix_range(b"INOD") == (b"INOD", b"INOE")
    assert prefix_range(b"a\xff") == (b"a\xff", b"b")
    assert prefix_range(b"a\xfe\xff\xff") == (b"a\xfe\xff\xff", b"a\xff")
    assert prefix_range(b"") == (b"", b"\xff")
    for bad in (b"\xff", b"\xff\xff"):
        with pytest.raises(ThreeFSError) as excinfo:
            prefix_range(bad)
        assert excinfo.value.code == Code.INVALID_ARG
