"""Admin operations: what they change, and that bad input is refused with nothing changed."""

from __future__ import annotations

import pytest
from mgmtd_helpers import FakeNode, beat, chain_states, make_chain

from mgmtd import ops
from threefs.errors import Code, ThreeFSError
from threefs.wire.mgmtd import (
    ChainSpec,
    CreateChainsRequest,
    CreateChainTableRequest,
    CreateTargetsRequest,
    GenerateChainTableRequest,
    NodeStatus,
    NodeType,
    OfflineTargetRequest,
    RemoveTargetRequest,
    RotateLastServingRequest,
    SetNodeEnabledRequest,
    SetPreferredOrderRequest,
    TargetInfo,
    UpdateChainRequest,
)


def targets(*pairs: tuple[int, int]) -> CreateTargetsRequest:
    return CreateTargetsRequest(targets=[TargetInfo(target_id=t, node_id=n) for t, n in pairs])


def chains(*specs: tuple[int, list[int]]) -> CreateChainsRequest:
    return CreateChainsRequest(chains=[ChainSpec(chain_id=c, target_ids=ids) for c, ids in specs])


async def refused(mgmtd, operation, request, code: Code, words: str) -> None:
    version = mgmtd.version
    with pytest.raises(ThreeFSError) as caught:
        await operation(mgmtd.state, request)
    assert caught.value.code == code, caught.value
    assert words in caught.value.message
    assert mgmtd.version == version


async def test_create_targets_and_chains(mgmtd, mock_clock):
    await ops.create_targets(mgmtd.state, targets((11, 1), (12, 2), (13, 3)))
    listed = ops.list_targets(mgmtd.state).targets
    assert [(t.target_id, t.public_state.name, t.chain_id) for t in listed] == [
        (11, "OFFLINE", 0),
        (12, "OFFLINE", 0),
        (13, "OFFLINE", 0),
    ]
    response = await ops.create_chains(mgmtd.state, chains((7, [12, 11])))
    assert response.routing_version == mgmtd.version
    chain = ops.list_chains(mgmtd.state).chains[0]
    assert (chain.chain_id, chain.chain_version, chain.created_ms > 0) == (7, 1, True)
    assert chain_states(mgmtd, 7) == [(12, "SERVING"), (11, "SERVING")]
    assert mgmtd.routing.targets[12].chain_id == 7


async def test_bad_targets_are_refused(mgmtd, mock_clock):
    await beat(mgmtd, [FakeNode(9, NodeType.META)])
    await ops.create_targets(mgmtd.state, targets((11, 1)))
    await refused(
        mgmtd, ops.create_targets, targets((11, 2)), Code.ALREADY_EXISTS, "target 11 already exists"
    )
    await refused(mgmtd, ops.create_targets, targets((12, 1), (12, 2)), Code.INVALID_ARG, "named twice")
    await refused(mgmtd, ops.create_targets, targets((13, 9)), Code.MGMTD_INVALID_TOPOLOGY, "META node")
    await refused(mgmtd, ops.create_targets, targets(), Code.INVALID_ARG, "no target")


async def test_bad_chains_are_refused_whole(mgmtd, mock_clock):
    await ops.create_targets(mgmtd.state, targets((11, 1), (12, 2), (21, 1), (22, 2)))
    await ops.create_chains(mgmtd.state, chains((1, [11, 12])))
    create = ops.create_chains
    await refused(mgmtd, create, chains((1, [21, 22])), Code.ALREADY_EXISTS, "chain 1 already exists")
    await refused(mgmtd, create, chains((2, [21, 99])), Code.MGMTD_TARGET_NOT_FOUND, "no target 99")
    await refused(mgmtd, create, chains((2, [21, 11])), Code.MGMTD_INVALID_TOPOLOGY, "already in chain 1")
    await refused(
        mgmtd, create, chains((2, [21, 22]), (3, [22])), Code.MGMTD_INVALID_TOPOLOGY, "already in chain 2"
    )
    await refused(mgmtd, create, chains((2, [21]), (2, [22])), Code.ALREADY_EXISTS, "chain 2 already exists")
    await refused(mgmtd, create, CreateChainsRequest(chains=[]), Code.INVALID_ARG, "no chain")
    await ops.create_targets(mgmtd.state, targets((31, 3), (32, 3)))
    await refused(mgmtd, create, chains((2, [31, 32])), Code.MGMTD_INVALID_TOPOLOGY, "both on node 3")
    assert sorted(mgmtd.routing.chains) == [1]


async def test_chain_tables_are_versioned(mgmtd, mock_clock):
    await ops.create_targets(mgmtd.state, targets((11, 1), (12, 2)))
    await ops.create_chains(mgmtd.state, chains((1, [11]), (2, [12])))
    first = await ops.create_chain_table(mgmtd.state, CreateChainTableRequest(table_id=1, chain_ids=[1]))
    second = await ops.create_chain_table(
        mgmtd.state, CreateChainTableRequest(table_id=1, chain_ids=[2, 1], description="two")
    )
    assert (first.version, second.version) == (1, 2)
    listed = ops.list_chain_tables(mgmtd.state).tables
    assert [(t.table_id, t.version, t.chain_ids) for t in listed] == [(1, 1, [1]), (1, 2, [2, 1])]
    create = ops.create_chain_table
    await refused(
        mgmtd,
        create,
        CreateChainTableRequest(table_id=2, chain_ids=[1, 5]),
        Code.MGMTD_CHAIN_NOT_FOUND,
        "[5]",
    )
    await refused(
        mgmtd, create, CreateChainTableRequest(table_id=2, chain_ids=[]), Code.INVALID_ARG, "no chains"
    )
    await refused(
        mgmtd, create, CreateChainTableRequest(table_id=2, chain_ids=[1, 1]), Code.INVALID_ARG, "twice"
    )


async def test_update_chain_add_and_remove(mgmtd, mock_clock):
    await make_chain(mgmtd, (1, 2))
    await ops.create_targets(mgmtd.state, targets((103, 3), (111, 1)))
    update = ops.update_chain_op
    version = mgmtd.routing.chains[1].chain_version
    added = await update(mgmtd.state, UpdateChainRequest(chain_id=1, target_id=103, add=True))
    assert [(t.target_id, t.public_state.name) for t in added.chain.targets][-1] == (103, "WAITING")
    assert added.chain.chain_version == version + 1
    req = UpdateChainRequest
    await refused(
        mgmtd, update, req(chain_id=1, target_id=103, add=True), Code.ALREADY_EXISTS, "already in chain"
    )
    await refused(
        mgmtd, update, req(chain_id=1, target_id=111, add=True), Code.MGMTD_INVALID_TOPOLOGY, "on node 1"
    )
    await refused(
        mgmtd, update, req(chain_id=9, target_id=111, add=True), Code.MGMTD_CHAIN_NOT_FOUND, "no chain 9"
    )
    await refused(
        mgmtd, update, req(chain_id=1, target_id=111, add=False), Code.MGMTD_TARGET_NOT_FOUND, "not in"
    )
    removed = await update(mgmtd.state, req(chain_id=1, target_id=103, add=False))
    assert [t.target_id for t in removed.chain.targets] == [101, 102]
    assert mgmtd.routing.targets[103].chain_id == 0
    await update(mgmtd.state, req(chain_id=1, target_id=102, add=False))
    await refused(
        mgmtd, update, req(chain_id=1, target_id=101, add=False), Code.MGMTD_INVALID_TOPOLOGY, "only target"
    )


async def test_the_last_serving_target_cannot_be_removed_or_offlined(mgmtd, mock_clock):
    await make_chain(mgmtd, (1, 2))
    await ops.offline_target(mgmtd.state, OfflineTargetRequest(target_id=102))
    again = await ops.offline_target(mgmtd.state, OfflineTargetRequest(target_id=102))  # no change
    assert again.target.admin_offline
    await refused(
        mgmtd,
        ops.offline_target,
        OfflineTargetRequest(target_id=101),
        Code.MGMTD_INVALID_TOPOLOGY,
        "last SERVING",
    )
    await refused(
        mgmtd,
        ops.update_chain_op,
        UpdateChainRequest(chain_id=1, target_id=101, add=False),
        Code.MGMTD_INVALID_TOPOLOGY,
        "last SERVING",
    )
    await refused(
        mgmtd,
        ops.offline_target,
        OfflineTargetRequest(target_id=5),
        Code.MGMTD_TARGET_NOT_FOUND,
        "no target 5",
    )


async def test_remove_target_only_when_offline_and_chainless(mgmtd, mock_clock):
    await make_chain(mgmtd, (1, 2))
    remove = ops.remove_target
    await refused(
        mgmtd, remove, RemoveTargetRequest(target_id=102), Code.MGMTD_INVALID_TOPOLOGY, "in chain 1"
    )
    await refused(mgmtd, remove, RemoveTargetRequest(target_id=7), Code.MGMTD_TARGET_NOT_FOUND, "no target 7")
    await ops.update_chain_op(mgmtd.state, UpdateChainRequest(chain_id=1, target_id=102, add=False))
    await remove(mgmtd.state, RemoveTargetRequest(target_id=102))
    assert 102 not in mgmtd.routing.targets


async def test_rotate_refuses_a_chain_without_lastsrv(mgmtd, mock_clock):
    await make_chain(mgmtd, (1, 2))
    await refused(
        mgmtd,
        ops.rotate_last_serving_op,
        RotateLastServingRequest(chain_id=1),
        Code.MGMTD_INVALID_TOPOLOGY,
        "no LASTSRV",
    )


async def test_preferred_order(mgmtd, mock_clock):
    await make_chain(mgmtd)
    version = mgmtd.routing.chains[1].chain_version
    response = await ops.set_preferred_order(
        mgmtd.state, SetPreferredOrderRequest(chain_id=1, target_ids=[103, 101, 102])
    )
    assert [t.target_id for t in response.chain.targets] == [103, 101, 102]
    assert response.chain.preferred_order == [103, 101, 102]
    assert response.chain.chain_version == version + 1
    await ops.set_preferred_order(
        mgmtd.state, SetPreferredOrderRequest(chain_id=1, target_ids=[103, 101, 102])
    )
    assert mgmtd.routing.chains[1].chain_version == version + 1
    prefer = ops.set_preferred_order
    bad = SetPreferredOrderRequest(chain_id=1, target_ids=[101, 102])
    await refused(mgmtd, prefer, bad, Code.INVALID_ARG, "must name each target")
    bad = SetPreferredOrderRequest(chain_id=1, target_ids=[101, 101, 102, 103])
    await refused(mgmtd, prefer, bad, Code.INVALID_ARG, "once")


async def test_nodes_and_client_sessions(mgmtd, mock_clock):
    await beat(mgmtd, [FakeNode(1), FakeNode(2, NodeType.CLIENT), FakeNode(3, NodeType.CLIENT)])
    nodes = ops.list_nodes(mgmtd.state).nodes
    assert [(n.node_id, n.node_type.name) for n in nodes] == [(1, "STORAGE"), (2, "CLIENT"), (3, "CLIENT")]
    sessions = ops.list_client_sessions(mgmtd.state).sessions
    assert [(s.node_id, s.hostname, s.status) for s in sessions] == [
        (2, "host2", NodeStatus.ACTIVE),
        (3, "host3", NodeStatus.ACTIVE),
    ]
    await refused(
        mgmtd,
        ops.set_node_enabled,
        SetNodeEnabledRequest(node_id=8, enabled=False),
        Code.MGMTD_NODE_NOT_FOUND,
        "no node 8",
    )
    version = mgmtd.version
    await ops.set_node_enabled(mgmtd.state, SetNodeEnabledRequest(node_id=2, enabled=True))  # already
    assert mgmtd.version == version


async def test_generate_chain_table_over_free_targets(mgmtd, mock_clock):
    # 4 nodes x 3 targets; chain 1 takes 11 and 21, target 12 is offlined: 9 free targets make
    # four chains of 2 and leave one spare, from the fullest node (ties: the highest node id).
    await ops.create_targets(
        mgmtd.state, targets(*[(node * 10 + t, node) for node in range(1, 5) for t in range(1, 4)])
    )
    await ops.create_chains(mgmtd.state, chains((1, [11, 21])))
    await ops.offline_target(mgmtd.state, OfflineTargetRequest(target_id=12))
    request = GenerateChainTableRequest(table_id=5, replication=2)
    response = await ops.generate_chain_table(mgmtd.state, request)
    assert (response.table_id, response.version) == (5, 1)
    assert response.chain_ids == [2, 3, 4, 5]  # ids after the last one in use
    routing = mgmtd.routing
    assert routing.chain_tables[5][0].chain_ids == response.chain_ids
    used = []
    for chain_id in response.chain_ids:
        chain = routing.chains[chain_id]
        nodes = {routing.targets[t.target_id].node_id for t in chain.targets}
        assert len(nodes) == 2 and all(t.public_state.name == "SERVING" for t in chain.targets)
        used += [t.target_id for t in chain.targets]
    assert sorted(used) == [13, 22, 23, 31, 32, 33, 41, 42]
    assert routing.targets[43].chain_id == 0  # the spare
    # The spare and a new target, both on node 4, cannot form a chain on distinct nodes.
    await ops.create_targets(mgmtd.state, targets((44, 4)))
    version = mgmtd.version
    await refused(mgmtd, ops.generate_chain_table, request, Code.MGMTD_INVALID_TOPOLOGY, "")
    assert mgmtd.version == version
    assert 0 <= response.min_pair_chains <= response.max_pair_chains <= 2
    # A target on node 3 makes a chain with a node 4 target; the other one stays a spare.
    await ops.create_targets(mgmtd.state, targets((34, 3)))
    more = await ops.generate_chain_table(mgmtd.state, GenerateChainTableRequest(table_id=6, replication=2))
    assert [sorted(t.target_id for t in mgmtd.routing.chains[c].targets) for c in more.chain_ids] == [
        [34, 43]
    ]
    assert mgmtd.routing.targets[44].chain_id == 0


async def test_generate_chain_table_refuses_unknown_nodes(mgmtd, mock_clock):
    await ops.create_targets(mgmtd.state, targets((11, 1), (21, 2)))
    request = GenerateChainTableRequest(table_id=1, replication=2, node_ids=[1, 9])
    await refused(mgmtd, ops.generate_chain_table, request, Code.MGMTD_NODE_NOT_FOUND, "[9]")


async def test_generate_chain_table_with_no_free_target_changes_nothing(mgmtd, mock_clock):
    await ops.create_targets(mgmtd.state, targets((11, 1), (21, 2)))
    await ops.create_chains(mgmtd.state, chains((1, [11, 21])))
    version = mgmtd.version
    request = GenerateChainTableRequest(table_id=1, replication=2)
    await refused(mgmtd, ops.generate_chain_table, request, Code.MGMTD_INVALID_TOPOLOGY, "no target is free")
    assert mgmtd.version == version
