"""RPC over a framed, authenticated byte stream (TCP on trio now; the transport is pluggable).

Server: ``RpcServer(secret, [service], config)``, ``port = await nursery.start(server.serve,
host, 0)``. Client: ``async with RpcClient(secret) as client: await client.call(addr, SPEC, req)``
or a typed stub such as ``DebugStub(client, addr)``; ``RpcClient(UserToken(...))`` authenticates
as a user instead (docs/security.md). See docs/rpc.md for the wire format.
"""

from threefs.rpc.client import RpcClient, ServiceStub
from threefs.rpc.config import RpcClientConfig, RpcServerConfig
from threefs.rpc.server import CallContext, RpcServer, RpcService, rpc_method
from threefs.rpc.transport import Stream, TcpTransport, Transport, format_address, parse_address
from threefs.rpc.users import (
    CachedUserDirectory,
    Identity,
    UserDirectory,
    UserKey,
    UserToken,
    format_token,
    parse_token,
)

__all__ = [
    "CachedUserDirectory",
    "CallContext",
    "Identity",
    "RpcClient",
    "RpcClientConfig",
    "RpcServer",
    "RpcServerConfig",
    "RpcService",
    "ServiceStub",
    "Stream",
    "TcpTransport",
    "Transport",
    "UserDirectory",
    "UserKey",
    "UserToken",
    "format_address",
    "format_token",
    "parse_address",
    "parse_token",
    "rpc_method",
]
