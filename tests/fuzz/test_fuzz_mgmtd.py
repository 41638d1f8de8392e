"""Fuzz every mgmtd method over real sockets with invalid requests (``FuzzCluster.exercise``:
a clear error, the process alive and answering, the routing info unchanged).

- ``test_invalid_requests``: for each method with fields, well-typed requests that must be
  refused: unknown node / target / chain / table ids, ids and lists that break the topology
  rules (a target already in a chain, two on one node, a wrong preferred order), stale or
  foreign heartbeats (wrong cluster, clock skew, an old ``(started_ms, seq)``, a wrong node
  type, targets of another node), and integers out of their range (0 where ids start at 1,
  2**32 and 2**64 - 1 in u32 fields, negative numbers), oversized addresses; users: a taken
  name, unknown names, names no user can have, ids and group lists out of range.
- ``test_bodies_that_do_not_decode``: for every method, bodies that do not match the struct
  (no map, a missing field, a field of the wrong type or out of range): RPC_INVALID_BODY.
- ``test_routing_info_for_any_known_version``: GetRoutingInfo's ``known_version`` is a cache
  hint: a stale or future one answers the whole routing info, never an error.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import msgspec
import pytest
from fuzz_bodies import invalid_bodies
from fuzz_cluster import FUZZ, FuzzCluster, encode_body
from hypothesis import given
from hypothesis import strategies as st

from threefs.errors import Code
from threefs.wire import mgmtd as wire
from threefs.wire.common import MethodSpec
from threefs.wire.envelope import USER_NAME_PATTERN

pytestmark = pytest.mark.slow


INVALID_BODY = {Code.RPC_INVALID_BODY}
U32_TOO_BIG = st.sampled_from([2**32, 2**40, 2**63, 2**64 - 1])
NOT_POSITIVE_U32 = st.sampled_from([0, -1, -(2**63)]) | U32_TOO_BIG
NEGATIVE = st.sampled_from([-1, -(2**31), -(2**63)])


@dataclass(frozen=True)
class Case:
    """One invalid request and the codes that are right for it."""

    what: str
    request: msgspec.Struct
    expect: frozenset[Code]


def case(what: str, request: msgspec.Struct, *codes: Code) -> Case:
    return Case(what, request, frozenset(codes))


@dataclass(frozen=True)
class World:
    """What the cluster holds, read once: registered nodes (id -> type), targets (id -> node,
    chain), chains (id -> target ids), chain tables, and nodes' last ``started_ms``."""

    cluster_id: str
    nodes: dict[int, wire.NodeType]
    started_ms: dict[int, int]
    targets: dict[int, tuple[int, int]]
    chains: dict[int, list[int]]
    tables: dict[int, int]
    users: frozenset[str]

    def unknown(self, known: object) -> st.SearchStrategy[int]:
        return (st.sampled_from([2, 3, 99, 4242, 2**31, 2**32 - 1]) | st.integers(1, 2**32 - 1)).filter(
            lambda n: n not in known  # type: ignore[operator]
        )

    @property
    def unknown_nodes(self) -> st.SearchStrategy[int]:
        # a node id a target names counts as known to GenerateChainTable
        owners = {node for node, _ in self.targets.values()}
        return self.unknown(set(self.nodes) | owners)

    @property
    def unknown_targets(self) -> st.SearchStrategy[int]:
        return self.unknown(self.targets)

    @property
    def unknown_chains(self) -> st.SearchStrategy[int]:
        return self.unknown(self.chains)


@pytest.fixture(scope="module")
def world(cluster: FuzzCluster) -> World:
    add = wire.UserAddRequest(name="fuzz-user", uid=1000, gid=1000)
    cluster.run(cluster.call, cluster.mgmtd_address, wire.USER_ADD, add)
    users = cluster.run(cluster.call, cluster.mgmtd_address, wire.USER_LIST, wire.UserListRequest()).users
    routing = cluster.run(cluster.routing)
    assert len(routing.chains) == 2 and len(routing.targets) == 4, routing
    return World(
        cluster_id=routing.cluster_id,
        nodes={n.node_id: n.node_type for n in routing.nodes.values()},
        started_ms={n.node_id: n.started_ms for n in routing.nodes.values()},
        targets={t.target_id: (t.node_id, t.chain_id) for t in routing.targets.values()},
        chains={c.chain_id: [t.target_id for t in c.targets] for c in routing.chains.values()},
        tables={table_id: versions[-1].version for table_id, versions in routing.chain_tables.items()},
        users=frozenset(user.name for user in users),
    )


# ----------------------------------------------------------------------------- per method


@st.composite
def heartbeats(draw: st.DrawFn, world: World) -> Case:
    now_ms = int(time.time() * 1000)
    storage = [n for n, kind in world.nodes.items() if kind == wire.NodeType.STORAGE]
    fields = {
        "cluster_id": world.cluster_id,
        "node_id": draw(world.unknown_nodes),
        "node_type": draw(st.sampled_from(list(wire.NodeType))),
        "seq": draw(st.integers(1, 2**32 - 1)),
        "sent_ms": now_ms,
        "started_ms": now_ms,
        "hostname": draw(st.text(max_size=20)),
    }
    kind = draw(
        st.sampled_from(
            [
                "cluster",
                "skew",
                "type",
                "stale",
                "targets of a non-storage node",
                "foreign target",
                "target twice",
                "range",
                "address",
            ]
        )
    )
    bad = Code.MGMTD_BAD_HEARTBEAT
    if kind == "cluster":
        fields["cluster_id"] = draw(st.text(max_size=40).filter(lambda c: c != world.cluster_id))
        fields["node_id"] = draw(st.sampled_from(sorted(world.nodes)) | world.unknown_nodes)
        return case(kind, wire.HeartbeatRequest(**fields), bad)
    if kind == "skew":
        skew = draw(st.integers(31_000, 10**12))
        fields["sent_ms"] = draw(st.sampled_from([0, 1, 2**64 - 1, max(now_ms - skew, 0), now_ms + skew]))
        return case(kind, wire.HeartbeatRequest(**fields), bad)
    if kind == "type":
        node = draw(st.sampled_from(sorted(world.nodes)))
        fields["node_id"] = node
        fields["node_type"] = draw(st.sampled_from([t for t in wire.NodeType if t != world.nodes[node]]))
        return case(kind, wire.HeartbeatRequest(**fields), bad)
    if kind == "stale":
        node = draw(st.sampled_from(sorted(world.nodes)))
        last = world.started_ms[node]
        fields.update(node_id=node, node_type=world.nodes[node], started_ms=draw(st.integers(0, last)))
        if fields["started_ms"] == last:
            fields["seq"] = 1  # the node has beaten more than once since it started
        return case(kind, wire.HeartbeatRequest(**fields), bad)
    report = wire.TargetReport(
        target_id=draw(world.unknown_targets), local_state=wire.LocalTargetState.ONLINE
    )
    if kind == "targets of a non-storage node":
        fields["node_type"] = draw(st.sampled_from([t for t in wire.NodeType if t != wire.NodeType.STORAGE]))
        return case(kind, wire.HeartbeatRequest(**fields, targets=[report]), bad)
    if kind == "foreign target":
        fields["node_type"] = wire.NodeType.STORAGE
        target = draw(st.sampled_from(sorted(world.targets)))
        foreign = wire.TargetReport(target_id=target, local_state=wire.LocalTargetState.UPTODATE)
        return case(kind, wire.HeartbeatRequest(**fields, targets=[report, foreign]), bad)
    if kind == "target twice":
        fields["node_type"] = wire.NodeType.STORAGE
        fields["node_id"] = draw(st.sampled_from(storage) | world.unknown_nodes)
        if fields["node_id"] in world.nodes:
            fields["started_ms"] = now_ms + 1000  # after the node's last heartbeat: not stale
        return case(kind, wire.HeartbeatRequest(**fields, targets=[report, report]), bad)
    if kind == "range":
        name = draw(st.sampled_from(["node_id", "seq", "node_type", "sent_ms", "started_ms"]))
        fields[name] = draw(NEGATIVE if name in ("sent_ms", "started_ms") else NOT_POSITIVE_U32)
        return case(f"{name}={fields[name]}", wire.HeartbeatRequest(**fields), *INVALID_BODY)
    address = draw(st.text(max_size=2) | st.text(min_size=301, max_size=400))
    return case("address", wire.HeartbeatRequest(**fields, addresses=["127.0.0.1:1", address]), *INVALID_BODY)


@st.composite
def create_targets(draw: st.DrawFn, world: World) -> Case:
    new_ids = draw(st.lists(st.integers(5000, 5999), max_size=3, unique=True))
    fresh = [wire.TargetInfo(target_id=t, node_id=draw(st.sampled_from([11, 12, 77]))) for t in new_ids]
    kind = draw(st.sampled_from(["empty", "exists", "twice", "node type", "range"]))
    if kind == "empty":
        return case(kind, wire.CreateTargetsRequest(targets=[]), Code.INVALID_ARG)
    if kind == "exists":
        bad = wire.TargetInfo(target_id=draw(st.sampled_from(sorted(world.targets))), node_id=11)
        code = Code.ALREADY_EXISTS
    elif kind == "twice":
        target = draw(st.integers(6000, 6999))
        bad = wire.TargetInfo(target_id=target, node_id=11)
        fresh.append(bad)
        code = Code.INVALID_ARG
    elif kind == "node type":
        other = [n for n, kind in world.nodes.items() if kind != wire.NodeType.STORAGE]
        bad = wire.TargetInfo(target_id=draw(st.integers(7000, 7999)), node_id=draw(st.sampled_from(other)))
        code = Code.MGMTD_INVALID_TOPOLOGY
    else:
        name = draw(st.sampled_from(["target_id", "node_id", "chain_id", "used_bytes"]))
        value = draw(
            NEGATIVE if name == "used_bytes" else NOT_POSITIVE_U32.filter(lambda v: v or name != "chain_id")
        )
        bad = wire.TargetInfo(**{"target_id": 8000, "node_id": 11, name: value})
        code = Code.RPC_INVALID_BODY
    position = draw(st.integers(0, len(fresh)))
    targets = [*fresh[:position], bad, *fresh[position:]]
    return case(kind, wire.CreateTargetsRequest(targets=targets), code)


@st.composite
def create_chains(draw: st.DrawFn, world: World) -> Case:
    """Every target is in a chain already, so no chain of known targets can be made."""

    @st.composite
    def bad_spec(draw: st.DrawFn) -> tuple[wire.ChainSpec, Code]:
        kind = draw(st.sampled_from(["exists", "no targets", "unknown target", "target in a chain", "range"]))
        chain_id = draw(world.unknown_chains)
        known = st.sampled_from(sorted(world.targets))
        if kind == "exists":
            chain_id, code = draw(st.sampled_from(sorted(world.chains))), Code.ALREADY_EXISTS
            targets = draw(st.lists(known | world.unknown_targets, max_size=3))
        elif kind == "no targets":
            targets, code = [], Code.INVALID_ARG
        elif kind == "unknown target":
            targets, code = [draw(world.unknown_targets)], Code.MGMTD_TARGET_NOT_FOUND
        elif kind == "target in a chain":
            targets, code = draw(st.lists(known, min_size=1, max_size=3)), Code.MGMTD_INVALID_TOPOLOGY
        else:
            chain_id, targets, code = draw(NOT_POSITIVE_U32), [1101], Code.RPC_INVALID_BODY
        return wire.ChainSpec(chain_id=chain_id, target_ids=targets), code

    specs = draw(st.lists(bad_spec(), max_size=3))
    if not specs:
        return case("empty", wire.CreateChainsRequest(chains=[]), Code.INVALID_ARG)
    codes = {code for _, code in specs}
    if Code.RPC_INVALID_BODY in codes:
        codes = {Code.RPC_INVALID_BODY}
    return case("bad chains", wire.CreateChainsRequest(chains=[spec for spec, _ in specs]), *codes)


@st.composite
def create_chain_table(draw: st.DrawFn, world: World) -> Case:
    table_id = draw(st.sampled_from(sorted(world.tables)) | st.integers(2, 2**32 - 1))
    known = sorted(world.chains)
    kind = draw(st.sampled_from(["empty", "twice", "unknown chain", "range"]))
    if kind == "empty":
        return case(kind, wire.CreateChainTableRequest(table_id=table_id, chain_ids=[]), Code.INVALID_ARG)
    if kind == "twice":
        chain = draw(st.sampled_from(known))
        chains = draw(st.permutations([*known, chain]))
        return case(kind, wire.CreateChainTableRequest(table_id=table_id, chain_ids=chains), Code.INVALID_ARG)
    if kind == "unknown chain":
        chains = draw(st.permutations([*known, draw(world.unknown_chains)]))
        request = wire.CreateChainTableRequest(table_id=table_id, chain_ids=chains)
        return case(kind, request, Code.MGMTD_CHAIN_NOT_FOUND)
    request = wire.CreateChainTableRequest(table_id=draw(NOT_POSITIVE_U32), chain_ids=known)
    return case(kind, request, *INVALID_BODY)


@st.composite
def set_node_enabled(draw: st.DrawFn, world: World) -> Case:
    enabled = draw(st.booleans())
    if draw(st.booleans()):
        request = wire.SetNodeEnabledRequest(node_id=draw(NOT_POSITIVE_U32), enabled=enabled)
        return case("range", request, *INVALID_BODY)
    request = wire.SetNodeEnabledRequest(node_id=draw(world.unknown(world.nodes)), enabled=enabled)
    return case("unknown node", request, Code.MGMTD_NODE_NOT_FOUND)


@st.composite
def offline_target(draw: st.DrawFn, world: World) -> Case:
    if draw(st.booleans()):
        return case("range", wire.OfflineTargetRequest(target_id=draw(NOT_POSITIVE_U32)), *INVALID_BODY)
    request = wire.OfflineTargetRequest(target_id=draw(world.unknown_targets))
    return case("unknown target", request, Code.MGMTD_TARGET_NOT_FOUND)


@st.composite
def remove_target(draw: st.DrawFn, world: World) -> Case:
    kind = draw(st.sampled_from(["range", "unknown", "in a chain"]))
    if kind == "range":
        return case(kind, wire.RemoveTargetRequest(target_id=draw(NOT_POSITIVE_U32)), *INVALID_BODY)
    if kind == "unknown":
        request = wire.RemoveTargetRequest(target_id=draw(world.unknown_targets))
        return case(kind, request, Code.MGMTD_TARGET_NOT_FOUND)
    request = wire.RemoveTargetRequest(target_id=draw(st.sampled_from(sorted(world.targets))))
    return case(kind, request, Code.MGMTD_INVALID_TOPOLOGY)


@st.composite
def update_chain(draw: st.DrawFn, world: World) -> Case:
    chain = draw(st.sampled_from(sorted(world.chains)))
    members = world.chains[chain]
    others = [t for t in world.targets if t not in members]
    kind = draw(
        st.sampled_from(
            ["unknown chain", "add unknown", "add member", "add other's", "remove non-member", "range"]
        )
    )
    if kind == "unknown chain":
        target = draw(st.sampled_from(sorted(world.targets)) | world.unknown_targets)
        request = wire.UpdateChainRequest(
            chain_id=draw(world.unknown_chains), target_id=target, add=draw(st.booleans())
        )
        return case(kind, request, Code.MGMTD_CHAIN_NOT_FOUND)
    if kind == "add unknown":
        request = wire.UpdateChainRequest(chain_id=chain, target_id=draw(world.unknown_targets), add=True)
        return case(kind, request, Code.MGMTD_TARGET_NOT_FOUND)
    if kind == "add member":
        request = wire.UpdateChainRequest(chain_id=chain, target_id=draw(st.sampled_from(members)), add=True)
        return case(kind, request, Code.ALREADY_EXISTS)
    if kind == "add other's":
        request = wire.UpdateChainRequest(chain_id=chain, target_id=draw(st.sampled_from(others)), add=True)
        return case(kind, request, Code.MGMTD_INVALID_TOPOLOGY)
    if kind == "remove non-member":
        target = draw(st.sampled_from(others) | world.unknown_targets)
        request = wire.UpdateChainRequest(chain_id=chain, target_id=target, add=False)
        return case(kind, request, Code.MGMTD_TARGET_NOT_FOUND)
    field = draw(st.sampled_from(["chain_id", "target_id"]))
    values = {"chain_id": chain, "target_id": members[0], field: draw(NOT_POSITIVE_U32)}
    return case(kind, wire.UpdateChainRequest(**values, add=draw(st.booleans())), *INVALID_BODY)


@st.composite
def rotate_last_serving(draw: st.DrawFn, world: World) -> Case:
    kind = draw(st.sampled_from(["range", "unknown", "all serving"]))
    if kind == "range":
        return case(kind, wire.RotateLastServingRequest(chain_id=draw(NOT_POSITIVE_U32)), *INVALID_BODY)
    if kind == "unknown":
        request = wire.RotateLastServingRequest(chain_id=draw(world.unknown_chains))
        return case(kind, request, Code.MGMTD_CHAIN_NOT_FOUND)
    request = wire.RotateLastServingRequest(chain_id=draw(st.sampled_from(sorted(world.chains))))
    return case(kind, request, Code.MGMTD_INVALID_TOPOLOGY)


@st.composite
def set_preferred_order(draw: st.DrawFn, world: World) -> Case:
    chain = draw(st.sampled_from(sorted(world.chains)))
    members = world.chains[chain]
    kind = draw(st.sampled_from(["unknown chain", "missing", "extra", "twice", "range"]))
    if kind == "unknown chain":
        request = wire.SetPreferredOrderRequest(chain_id=draw(world.unknown_chains), target_ids=members)
        return case(kind, request, Code.MGMTD_CHAIN_NOT_FOUND)
    if kind == "missing":
        order = draw(st.permutations(members))[1:]
    elif kind == "extra":
        extra = draw(st.sampled_from([t for t in world.targets if t not in members]) | world.unknown_targets)
        order = draw(st.permutations([*members, extra]))
    elif kind == "twice":
        order = draw(st.permutations([*members, draw(st.sampled_from(members))]))
    else:
        order = [*members[:-1], draw(NOT_POSITIVE_U32)]
        return case(kind, wire.SetPreferredOrderRequest(chain_id=chain, target_ids=order), *INVALID_BODY)
    return case(kind, wire.SetPreferredOrderRequest(chain_id=chain, target_ids=order), Code.INVALID_ARG)


@st.composite
def generate_chain_table(draw: st.DrawFn, world: World) -> Case:
    table_id = draw(st.sampled_from(sorted(world.tables)) | st.integers(2, 2**32 - 1))
    replication = draw(st.integers(1, 16))
    kind = draw(st.sampled_from(["unknown node", "no free target", "range"]))
    if kind == "unknown node":
        nodes = draw(st.lists(st.sampled_from(sorted(world.nodes)), max_size=2)) + [draw(world.unknown_nodes)]
        request = wire.GenerateChainTableRequest(table_id=table_id, replication=replication, node_ids=nodes)
        return case(kind, request, Code.MGMTD_NODE_NOT_FOUND)
    if kind == "no free target":
        nodes = draw(st.lists(st.sampled_from(sorted(world.nodes)), max_size=3))
        request = wire.GenerateChainTableRequest(table_id=table_id, replication=replication, node_ids=nodes)
        return case(kind, request, Code.MGMTD_INVALID_TOPOLOGY)
    field = draw(st.sampled_from(["replication", "table_id", "first_chain_id"]))
    values = {"table_id": table_id, "replication": replication}
    values[field] = draw(
        st.sampled_from([0, 17, -1, 2**64 - 1])
        if field == "replication"
        else NOT_POSITIVE_U32.filter(lambda v: v or field != "first_chain_id")
    )
    return case(kind, wire.GenerateChainTableRequest(**values), *INVALID_BODY)


@st.composite
def get_routing_info(draw: st.DrawFn, world: World) -> Case:
    return case("negative", wire.GetRoutingInfoRequest(known_version=draw(NEGATIVE)), *INVALID_BODY)


def valid_user_name(name: str) -> bool:
    return re.fullmatch(USER_NAME_PATTERN, name) is not None


bad_user_names = (
    st.sampled_from(["", ".hidden", "-dash", "a:b", "a b", "a/b", "a\x00", "\u00fc", "x" * 65])
    | st.text(max_size=80)
).filter(lambda name: not valid_user_name(name))


@st.composite
def user_adds(draw: st.DrawFn, world: World) -> Case:
    kind = draw(st.sampled_from(["taken", "bad name", "range", "groups"]))
    fields: dict[str, object] = {"name": draw(st.sampled_from(sorted(world.users))), "uid": 1, "gid": 1}
    if kind == "taken":
        fields.update(uid=draw(st.integers(0, 2**32 - 1)), admin=draw(st.booleans()))
        return case(kind, wire.UserAddRequest(**fields), Code.ALREADY_EXISTS)
    if kind == "bad name":
        fields["name"] = draw(bad_user_names)
    elif kind == "range":
        fields[draw(st.sampled_from(["uid", "gid"]))] = draw(NEGATIVE | U32_TOO_BIG)
    else:
        fields["groups"] = draw(st.sampled_from([[1] * 65, [2**32], [-1], list(range(100))]))
    return case(kind, wire.UserAddRequest(**fields), *INVALID_BODY)


def user_names(world: World) -> st.SearchStrategy[tuple[str, frozenset[Code]]]:
    """A name no user has (NOT_FOUND) or no user can have (RPC_INVALID_BODY)."""
    unknown = st.from_regex(USER_NAME_PATTERN, fullmatch=True).filter(lambda name: name not in world.users)
    return st.tuples(unknown, st.just(frozenset({Code.NOT_FOUND}))) | st.tuples(
        bad_user_names, st.just(INVALID_BODY)
    )


@st.composite
def user_removes(draw: st.DrawFn, world: World) -> Case:
    name, codes = draw(user_names(world))
    return Case("user", wire.UserRemoveRequest(name=name), frozenset(codes))


@st.composite
def user_set_tokens(draw: st.DrawFn, world: World) -> Case:
    name, codes = draw(user_names(world))
    return Case("user", wire.UserSetTokenRequest(name=name), frozenset(codes))


INVALID = {
    wire.HEARTBEAT: heartbeats,
    wire.GET_ROUTING_INFO: get_routing_info,
    wire.CREATE_TARGETS: create_targets,
    wire.CREATE_CHAINS: create_chains,
    wire.CREATE_CHAIN_TABLE: create_chain_table,
    wire.SET_NODE_ENABLED: set_node_enabled,
    wire.OFFLINE_TARGET: offline_target,
    wire.REMOVE_TARGET: remove_target,
    wire.UPDATE_CHAIN: update_chain,
    wire.ROTATE_LAST_SERVING: rotate_last_serving,
    wire.SET_PREFERRED_ORDER: set_preferred_order,
    wire.GENERATE_CHAIN_TABLE: generate_chain_table,
    wire.USER_ADD: user_adds,
    wire.USER_REMOVE: user_removes,
    wire.USER_SET_TOKEN: user_set_tokens,
}
# Methods without fields: every well-typed request is valid; only their bodies are fuzzed.
NO_FIELDS = {
    wire.GET_PRIMARY,
    wire.LIST_NODES,
    wire.LIST_TARGETS,
    wire.LIST_CHAINS,
    wire.LIST_CHAIN_TABLES,
    wire.LIST_CLIENT_SESSIONS,
    wire.USER_LIST,
    wire.USER_KEYS,
    wire.USER_WHO_AM_I,
}

# A valid request of every method, every optional field set: the shapes bodies are broken from.
EXAMPLES: dict[MethodSpec, msgspec.Struct] = {
    wire.GET_PRIMARY: wire.GetPrimaryRequest(),
    wire.HEARTBEAT: wire.HeartbeatRequest(
        cluster_id="local",
        node_id=11,
        node_type=wire.NodeType.STORAGE,
        seq=5,
        sent_ms=1,
        started_ms=1,
        hostname="h",
        addresses=["127.0.0.1:1"],
        version="v",
        targets=[
            wire.TargetReport(target_id=1101, local_state=wire.LocalTargetState.ONLINE, chain_version=1)
        ],
    ),
    wire.GET_ROUTING_INFO: wire.GetRoutingInfoRequest(known_version=3),
    wire.CREATE_TARGETS: wire.CreateTargetsRequest(targets=[wire.TargetInfo(target_id=9, node_id=11)]),
    wire.CREATE_CHAINS: wire.CreateChainsRequest(
        chains=[wire.ChainSpec(chain_id=9, target_ids=[1101, 1201])]
    ),
    wire.CREATE_CHAIN_TABLE: wire.CreateChainTableRequest(table_id=1, chain_ids=[1, 2], description="d"),
    wire.LIST_NODES: wire.ListNodesRequest(),
    wire.LIST_TARGETS: wire.ListTargetsRequest(),
    wire.LIST_CHAINS: wire.ListChainsRequest(),
    wire.LIST_CHAIN_TABLES: wire.ListChainTablesRequest(),
    wire.SET_NODE_ENABLED: wire.SetNodeEnabledRequest(node_id=11, enabled=True),
    wire.OFFLINE_TARGET: wire.OfflineTargetRequest(target_id=1101),
    wire.REMOVE_TARGET: wire.RemoveTargetRequest(target_id=1101),
    wire.UPDATE_CHAIN: wire.UpdateChainRequest(chain_id=1, target_id=1101, add=True),
    wire.ROTATE_LAST_SERVING: wire.RotateLastServingRequest(chain_id=1),
    wire.SET_PREFERRED_ORDER: wire.SetPreferredOrderRequest(chain_id=1, target_ids=[1101, 1201]),
    wire.LIST_CLIENT_SESSIONS: wire.ListClientSessionsRequest(),
    wire.GENERATE_CHAIN_TABLE: wire.GenerateChainTableRequest(
        table_id=1, replication=2, node_ids=[11], first_chain_id=5, description="d"
    ),
    wire.USER_ADD: wire.UserAddRequest(name="u", uid=1, gid=2, groups=[3], admin=True, impersonate=True),
    wire.USER_LIST: wire.UserListRequest(),
    wire.USER_REMOVE: wire.UserRemoveRequest(name="u"),
    wire.USER_SET_TOKEN: wire.UserSetTokenRequest(name="u"),
    wire.USER_KEYS: wire.UserKeysRequest(),
    wire.USER_WHO_AM_I: wire.UserWhoAmIRequest(),
}


def test_every_method_is_fuzzed():
    """A method added to the service must get an example (and invalid requests, if it has
    fields), or this fails."""
    methods = set(wire.MGMTD_SERVICE.methods)
    assert set(EXAMPLES) == methods
    assert set(INVALID) | NO_FIELDS == methods and not set(INVALID) & NO_FIELDS
    for spec in methods:
        assert type(EXAMPLES[spec]) is spec.request_type
        assert bool(msgspec.structs.fields(spec.request_type)) == (spec not in NO_FIELDS), spec.name


@pytest.mark.parametrize("spec", sorted(INVALID, key=lambda s: s.method_id), ids=lambda s: s.name)
@FUZZ
@given(data=st.data())
def test_invalid_requests(cluster: FuzzCluster, world: World, spec: MethodSpec, data: st.DataObject):
    item = data.draw(INVALID[spec](world), label="case")
    cluster.exercise(
        "mgmtd", cluster.mgmtd_address, spec, encode_body(item.request), expect=item.expect, what=item.what
    )


@pytest.mark.parametrize("spec", sorted(EXAMPLES, key=lambda s: s.method_id), ids=lambda s: s.name)
@FUZZ
@given(data=st.data())
def test_bodies_that_do_not_decode(cluster: FuzzCluster, spec: MethodSpec, data: st.DataObject):
    body = data.draw(invalid_bodies(spec, EXAMPLES[spec]), label="body")
    cluster.exercise("mgmtd", cluster.mgmtd_address, spec, body, expect=INVALID_BODY)


@FUZZ
@given(known_version=st.none() | st.integers(0, 2**64 - 1))
def test_routing_info_for_any_known_version(cluster: FuzzCluster, known_version: int | None):
    """``known_version`` None stands for the current version."""
    current = cluster.run(cluster.routing).version
    known_version = current if known_version is None else known_version
    request = wire.GetRoutingInfoRequest(known_version=known_version)
    reply = cluster.exercise_answer(
        "mgmtd", cluster.mgmtd_address, wire.GET_ROUTING_INFO, encode_body(request)
    )
    assert reply.response is not None, reply.describe()
    if known_version == current:
        assert reply.response.routing is None
    else:
        assert reply.response.routing is not None and reply.response.routing.version == current
