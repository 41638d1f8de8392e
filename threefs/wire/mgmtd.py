"""The mgmtd service (id 2): cluster membership, routing info, chain states, primary lease.

This module is the one definition of the cluster's routing data model (nodes, targets, chains,
chain tables) and of every mgmtd method. Structs that are persisted in the KV engine are the
same structs that cross the wire. Add fields only at the end and with a default; method ids are
never reused (retired ids go into ``RETIRED_METHOD_IDS``).

Target states (DESIGN.md section 6):

- public state, decided by mgmtd: SERVING (in the chain, answering reads/writes), LASTSRV (the
  last target that served; all replicas failed, it must come back first), SYNCING (being
  resynchronised from its predecessor), WAITING (alive again, waiting for its turn to sync),
  OFFLINE (failed or removed from service).
- local state, reported by the storage node in heartbeats: UPTODATE (its data is current: it
  has been serving, or finished a sync), ONLINE (alive, data possibly stale), OFFLINE (the disk or
  the target failed). A storage node that stops heartbeating has all its targets' local state
  taken as OFFLINE.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Annotated

import msgspec

from threefs.wire.common import MethodSpec, ServiceSpec, paired_method
from threefs.wire.envelope import USER_NAME_PATTERN
from threefs.wire.ids import ServiceId

U32 = Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1)]
U64 = Annotated[int, msgspec.Meta(ge=0)]
PositiveU32 = Annotated[int, msgspec.Meta(ge=1, le=2**32 - 1)]
Address = Annotated[str, msgspec.Meta(min_length=3, max_length=300)]  # "host:port"


class NodeType(IntEnum):
    """What a node is."""

    MGMTD = 1
    META = 2
    STORAGE = 3
    CLIENT = 4  # a FUSE mount or a library client; its "node" is its session


class NodeStatus(IntEnum):
    """mgmtd's view of a node."""

    ACTIVE = 1  # heartbeating within the timeout
    FAILED = 2  # silent past the heartbeat timeout (its storage targets count as local OFFLINE)
    DISABLED = 3  # disabled by an admin: its heartbeats are refused until it is enabled again


class PublicTargetState(IntEnum):
    """The state mgmtd gives a target in its chain. The numeric order is the chain order."""

    SERVING = 1
    LASTSRV = 2
    SYNCING = 3
    WAITING = 4
    OFFLINE = 5


class LocalTargetState(IntEnum):
    """The state a storage node reports for one of its targets."""

    UPTODATE = 1
    ONLINE = 2
    OFFLINE = 3


# ----------------------------------------------------------------------------- the data model


class NodeInfo(msgspec.Struct, kw_only=True):
    """A registered node. ``last_heartbeat_ms`` is mgmtd's wall clock when the last heartbeat
    arrived (0: never); ``started_ms`` and ``heartbeat_seq`` those of that heartbeat."""

    node_id: PositiveU32
    node_type: NodeType
    hostname: str = ""
    addresses: list[Address] = msgspec.field(default_factory=list)
    version: str = ""
    status: NodeStatus = NodeStatus.ACTIVE
    last_heartbeat_ms: U64 = 0
    heartbeat_seq: U64 = 0
    started_ms: U64 = 0


class TargetInfo(msgspec.Struct, kw_only=True):
    """A storage target (one directory on one disk of a storage node), and what mgmtd knows of
    it. ``chain_id`` is 0 while the target is in no chain."""

    target_id: PositiveU32
    node_id: PositiveU32
    chain_id: U32 = 0
    public_state: PublicTargetState = PublicTargetState.OFFLINE
    local_state: LocalTargetState = LocalTargetState.OFFLINE
    chain_version_seen: U32 = 0  # the chain version in the target's last report
    used_bytes: U64 = 0
    capacity_bytes: U64 = 0
    admin_offline: bool = False  # set by OfflineTarget; cleared when it is re-added to its chain


class ChainTarget(msgspec.Struct, frozen=True, array_like=True):
    """One replica of a chain: a target id and its public state."""

    target_id: PositiveU32
    public_state: PublicTargetState


class ChainInfo(msgspec.Struct, kw_only=True):
    """A replication chain: ordered replicas (head first), on distinct nodes.

    ``chain_version`` increases on every change of ``targets`` (order or states).
    ``preferred_order`` (target ids) orders the SERVING targets when set. ``created_ms`` starts
    the grace period during which a new chain's targets are not failed for want of a heartbeat.
    """

    chain_id: PositiveU32
    chain_version: PositiveU32 = 1
    targets: list[ChainTarget] = msgspec.field(default_factory=list)
    preferred_order: list[PositiveU32] = msgspec.field(default_factory=list)
    created_ms: U64 = 0


class ChainTable(msgspec.Struct, kw_only=True):
    """A versioned list of chains; a file layout names a table id and version."""

    table_id: PositiveU32
    version: PositiveU32
    chain_ids: list[PositiveU32]
    description: str = ""


class RoutingInfo(msgspec.Struct, kw_only=True):
    """Everything a node needs to route requests. ``version`` increases on every change of any
    part. ``chain_tables`` maps table id -> every version of that table."""

    version: U64
    cluster_id: str
    nodes: dict[int, NodeInfo] = msgspec.field(default_factory=dict)
    chain_tables: dict[int, list[ChainTable]] = msgspec.field(default_factory=dict)
    chains: dict[int, ChainInfo] = msgspec.field(default_factory=dict)
    targets: dict[int, TargetInfo] = msgspec.field(default_factory=dict)


# ----------------------------------------------------------------------------- methods


class GetPrimaryRequest(msgspec.Struct, frozen=True):
    """Any mgmtd answers, primary or not."""


class GetPrimaryResponse(msgspec.Struct, frozen=True, kw_only=True):
    """``primary_address`` is "" when no primary is known (lease expired, election pending)."""

    is_primary: bool
    primary_node_id: U32 = 0
    primary_address: str = ""
    lease_expires_ms: U64 = 0


class TargetReport(msgspec.Struct, frozen=True, kw_only=True):
    """One target's local state in a storage node's heartbeat."""

    target_id: PositiveU32
    local_state: LocalTargetState
    chain_version: U32 = 0
    used_bytes: U64 = 0
    capacity_bytes: U64 = 0


class HeartbeatRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Registers the node on its first heartbeat and refreshes it afterwards.

    ``started_ms`` is the node process's start time and ``seq`` counts its heartbeats from 1, so
    ``(started_ms, seq)`` orders every heartbeat a node id ever sends, across restarts.
    Refused (MGMTD_BAD_HEARTBEAT, with the reason) when ``cluster_id`` is not this cluster's,
    ``(started_ms, seq)`` is not greater than the last accepted pair, ``sent_ms`` differs from
    mgmtd's clock by more than the allowed skew, the node is disabled, the node id is registered
    with another node type, or a reported target belongs to another node.
    """

    cluster_id: str
    node_id: PositiveU32
    node_type: NodeType
    seq: PositiveU32
    sent_ms: U64
    started_ms: U64
    hostname: str = ""
    addresses: list[Address] = msgspec.field(default_factory=list)
    version: str = ""
    targets: list[TargetReport] = msgspec.field(default_factory=list)


class HeartbeatResponse(msgspec.Struct, frozen=True, kw_only=True):
    """``routing_version`` lets the node see that its cached routing info is stale."""

    routing_version: U64
    heartbeat_interval_ms: U32


class GetRoutingInfoRequest(msgspec.Struct, frozen=True, kw_only=True):
    """``known_version``: the caller's cached version (0: none)."""

    known_version: U64 = 0


class GetRoutingInfoResponse(msgspec.Struct, frozen=True, kw_only=True):
    """``routing`` is None when the caller's ``known_version`` is current."""

    routing: RoutingInfo | None = None


class CreateTargetsRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Admin: declare targets on storage nodes (the storage node creates the directories).
    Only ``target_id``, ``node_id`` and ``capacity_bytes`` are taken; states start OFFLINE."""

    targets: list[TargetInfo]


class CreateTargetsResponse(msgspec.Struct, frozen=True, kw_only=True):
    routing_version: U64


class ChainSpec(msgspec.Struct, frozen=True, kw_only=True):
    """Admin: a chain to create, its target ids in order (head first), on distinct nodes."""

    chain_id: PositiveU32
    target_ids: list[PositiveU32]


class CreateChainsRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Admin: new chains; their targets start SERVING and the chains get the grace period."""

    chains: list[ChainSpec]


class CreateChainsResponse(msgspec.Struct, frozen=True, kw_only=True):
    routing_version: U64


class CreateChainTableRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Admin: a new version of table ``table_id`` (version = latest + 1) over existing chains."""

    table_id: PositiveU32
    chain_ids: list[PositiveU32]
    description: str = ""


class CreateChainTableResponse(msgspec.Struct, frozen=True, kw_only=True):
    table_id: int
    version: int


class ListNodesRequest(msgspec.Struct, frozen=True, kw_only=True):
    pass


class ListNodesResponse(msgspec.Struct, frozen=True, kw_only=True):
    nodes: list[NodeInfo]


class ListTargetsRequest(msgspec.Struct, frozen=True, kw_only=True):
    pass


class ListTargetsResponse(msgspec.Struct, frozen=True, kw_only=True):
    targets: list[TargetInfo]


class ListChainsRequest(msgspec.Struct, frozen=True, kw_only=True):
    pass


class ListChainsResponse(msgspec.Struct, frozen=True, kw_only=True):
    chains: list[ChainInfo]


class ListChainTablesRequest(msgspec.Struct, frozen=True, kw_only=True):
    pass


class ListChainTablesResponse(msgspec.Struct, frozen=True, kw_only=True):
    tables: list[ChainTable]


class SetNodeEnabledRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Admin: disable (heartbeats refused, targets treated as OFFLINE) or enable a node."""

    node_id: PositiveU32
    enabled: bool


class SetNodeEnabledResponse(msgspec.Struct, frozen=True, kw_only=True):
    node: NodeInfo


class OfflineTargetRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Admin: take a target out of service (public OFFLINE) whatever its node reports, until
    it is re-added to its chain."""

    target_id: PositiveU32


class OfflineTargetResponse(msgspec.Struct, frozen=True, kw_only=True):
    target: TargetInfo


class RemoveTargetRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Admin: forget a target; it must be public OFFLINE and in no chain."""

    target_id: PositiveU32


class RemoveTargetResponse(msgspec.Struct, frozen=True, kw_only=True):
    routing_version: U64


class UpdateChainRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Admin: add a target to a chain (it joins as WAITING and is synced) or remove one (not
    allowed when it is the chain's last SERVING target)."""

    chain_id: PositiveU32
    target_id: PositiveU32
    add: bool


class UpdateChainResponse(msgspec.Struct, frozen=True, kw_only=True):
    chain: ChainInfo


class RotateLastServingRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Admin: when a chain's LASTSRV target is lost for good, make the next target the LASTSRV
    (accepting the loss of what only the old one held)."""

    chain_id: PositiveU32


class RotateLastServingResponse(msgspec.Struct, frozen=True, kw_only=True):
    chain: ChainInfo


class SetPreferredOrderRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Admin: the order of SERVING targets (head first); must name exactly the chain's targets."""

    chain_id: PositiveU32
    target_ids: list[PositiveU32]


class SetPreferredOrderResponse(msgspec.Struct, frozen=True, kw_only=True):
    chain: ChainInfo


class ClientSession(msgspec.Struct, frozen=True, kw_only=True):
    """A client (FUSE mount or library) known through its heartbeats."""

    node_id: int
    hostname: str
    addresses: list[str]
    version: str
    last_heartbeat_ms: int
    status: NodeStatus


class ListClientSessionsRequest(msgspec.Struct, frozen=True, kw_only=True):
    pass


class ListClientSessionsResponse(msgspec.Struct, frozen=True, kw_only=True):
    sessions: list[ClientSession]


class GenerateChainTableRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Admin: build chains of ``replication`` targets over the targets that are in no chain yet
    (of ``node_ids`` only, when given), balanced so every pair of nodes shares about as many
    chains, and add them as a new version of table ``table_id``. ``first_chain_id`` 0 means one
    past the highest chain id in use."""

    table_id: PositiveU32
    replication: Annotated[int, msgspec.Meta(ge=1, le=16)]
    node_ids: list[PositiveU32] = msgspec.field(default_factory=list)
    first_chain_id: U32 = 0
    description: str = ""


class GenerateChainTableResponse(msgspec.Struct, frozen=True, kw_only=True):
    """The table version made, its chains, and the node-pair balance: the fewest and most chains
    any two nodes share (both 0 for replication 1)."""

    table_id: int
    version: int
    chain_ids: list[int]
    min_pair_chains: int
    max_pair_chains: int


# ---- users (docs/security.md): kept by mgmtd, checked by every service ----------------------

UserName = Annotated[str, msgspec.Meta(pattern=USER_NAME_PATTERN)]  # see threefs.wire.envelope
UserKeyBytes = Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]
MAX_USER_GROUPS = 64


class UserInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A user as listed (never with its key). ``admin``: may call admin methods and act as any
    caller; ``impersonate``: may act for any uid/gid (a FUSE daemon serving local users), but is
    admin only with ``admin``. Times are wall-clock ms."""

    name: UserName
    uid: U32
    gid: U32
    groups: Annotated[list[U32], msgspec.Meta(max_length=MAX_USER_GROUPS)] = msgspec.field(
        default_factory=list
    )
    admin: bool = False
    impersonate: bool = False
    created_ms: int = 0
    token_set_ms: int = 0


class UserRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A user with its 32-byte key, as stored (``USER`` + name) and as UserKeys returns it."""

    info: UserInfo
    key: UserKeyBytes


class UserAddRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Admin: add a user with a new random key (ALREADY_EXISTS when the name is taken)."""

    name: UserName
    uid: U32
    gid: U32
    groups: Annotated[list[U32], msgspec.Meta(max_length=MAX_USER_GROUPS)] = msgspec.field(
        default_factory=list
    )
    admin: bool = False
    impersonate: bool = False


class UserAddResponse(msgspec.Struct, frozen=True, kw_only=True):
    """The user, and its token ``<name>:<key hex>`` (shown this once; mgmtd keeps the key)."""

    user: UserInfo
    token: str


class UserListRequest(msgspec.Struct, frozen=True, kw_only=True):
    pass


class UserListResponse(msgspec.Struct, frozen=True, kw_only=True):
    users: list[UserInfo]


class UserRemoveRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Admin: remove a user (NOT_FOUND when there is none); its token stops working."""

    name: UserName


class UserRemoveResponse(msgspec.Struct, frozen=True, kw_only=True):
    user: UserInfo


class UserSetTokenRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Admin: give a user a new random key (NOT_FOUND when there is none); the old token stops
    working."""

    name: UserName


class UserSetTokenResponse(msgspec.Struct, frozen=True, kw_only=True):
    user: UserInfo
    token: str


class UserKeysRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Services only (cluster-secret connections): every user with its key, so that meta and
    storage servers can check user tokens themselves."""


class UserKeysResponse(msgspec.Struct, frozen=True, kw_only=True):
    users: list[UserRecord]


class UserWhoAmIRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Anyone: the user this connection authenticated as (None on a cluster-secret one)."""


class UserWhoAmIResponse(msgspec.Struct, frozen=True, kw_only=True):
    user: UserInfo | None = None


def _method(method_id: int, name: str) -> MethodSpec:
    return paired_method(ServiceId.MGMTD, "Mgmtd", method_id, name, globals())


GET_PRIMARY = _method(1, "GetPrimary")
HEARTBEAT = _method(2, "Heartbeat")
GET_ROUTING_INFO = _method(3, "GetRoutingInfo")
CREATE_TARGETS = _method(4, "CreateTargets")
CREATE_CHAINS = _method(5, "CreateChains")
CREATE_CHAIN_TABLE = _method(6, "CreateChainTable")
LIST_NODES = _method(7, "ListNodes")
LIST_TARGETS = _method(8, "ListTargets")
LIST_CHAINS = _method(9, "ListChains")
LIST_CHAIN_TABLES = _method(10, "ListChainTables")
SET_NODE_ENABLED = _method(11, "SetNodeEnabled")
OFFLINE_TARGET = _method(12, "OfflineTarget")
REMOVE_TARGET = _method(13, "RemoveTarget")
UPDATE_CHAIN = _method(14, "UpdateChain")
ROTATE_LAST_SERVING = _method(15, "RotateLastServing")
SET_PREFERRED_ORDER = _method(16, "SetPreferredOrder")
LIST_CLIENT_SESSIONS = _method(17, "ListClientSessions")
GENERATE_CHAIN_TABLE = _method(18, "GenerateChainTable")
USER_ADD = _method(19, "UserAdd")
USER_LIST = _method(20, "UserList")
USER_REMOVE = _method(21, "UserRemove")
USER_SET_TOKEN = _method(22, "UserSetToken")
USER_KEYS = _method(23, "UserKeys")
USER_WHO_AM_I = _method(24, "UserWhoAmI")

RETIRED_METHOD_IDS: dict[int, str] = {}

MGMTD_SERVICE = ServiceSpec(
    ServiceId.MGMTD,
    "Mgmtd",
    (
        GET_PRIMARY,
        HEARTBEAT,
        GET_ROUTING_INFO,
        CREATE_TARGETS,
        CREATE_CHAINS,
        CREATE_CHAIN_TABLE,
        LIST_NODES,
        LIST_TARGETS,
        LIST_CHAINS,
        LIST_CHAIN_TABLES,
        SET_NODE_ENABLED,
        OFFLINE_TARGET,
        REMOVE_TARGET,
        UPDATE_CHAIN,
        ROTATE_LAST_SERVING,
        SET_PREFERRED_ORDER,
        LIST_CLIENT_SESSIONS,
        GENERATE_CHAIN_TABLE,
        USER_ADD,
        USER_LIST,
        USER_REMOVE,
        USER_SET_TOKEN,
        USER_KEYS,
        USER_WHO_AM_I,
    ),
    RETIRED_METHOD_IDS,
)

# Who may call what on a user-token connection (docs/security.md); a cluster-secret connection
# (a cluster member) may call everything. Admin methods, the listings included, need an admin
# user; USER_METHODS are open to every user; SERVICE_METHODS to cluster members only.
ADMIN_METHODS = frozenset(
    m.method_id
    for m in (
        CREATE_TARGETS,
        CREATE_CHAINS,
        CREATE_CHAIN_TABLE,
        SET_NODE_ENABLED,
        OFFLINE_TARGET,
        REMOVE_TARGET,
        UPDATE_CHAIN,
        ROTATE_LAST_SERVING,
        SET_PREFERRED_ORDER,
        GENERATE_CHAIN_TABLE,
        LIST_NODES,
        LIST_TARGETS,
        LIST_CHAINS,
        LIST_CHAIN_TABLES,
        LIST_CLIENT_SESSIONS,
        USER_ADD,
        USER_LIST,
        USER_REMOVE,
        USER_SET_TOKEN,
    )
)
USER_METHODS = frozenset(m.method_id for m in (GET_PRIMARY, GET_ROUTING_INFO, USER_WHO_AM_I))
SERVICE_METHODS = frozenset(m.method_id for m in (HEARTBEAT, USER_KEYS))

# The message of a MGMTD_NOT_PRIMARY error: "not primary; primary at HOST:PORT" or
# "not primary; no primary known". client.mgmtd parses it with ``parse_not_primary``.
NOT_PRIMARY_PREFIX = "not primary; "


def not_primary_message(primary_address: str) -> str:
    """The NOT_PRIMARY error message naming the primary ("" when none is known)."""
    if primary_address:
        return f"{NOT_PRIMARY_PREFIX}primary at {primary_address}"
    return f"{NOT_PRIMARY_PREFIX}no primary known"


def parse_not_primary(message: str) -> str:
    """The primary's address from a NOT_PRIMARY message, or "" when it names none."""
    marker = "primary at "
    index = message.find(marker)
    return message[index + len(marker) :].strip() if index >= 0 else ""
