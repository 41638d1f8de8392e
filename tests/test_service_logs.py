"""Structured logs: the logfmt formatter (node and role, extra fields, quoting), the RPC server's
error lines carrying the request id, and a real storage process whose every line names its node
and role."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import msgspec
import trio

from threefs.errors import Code, ThreeFSError
from threefs.rpc import CallContext, RpcClient, RpcServer, RpcService, rpc_method
from threefs.service import LogfmtFormatter, configure_logging
from threefs.wire.common import MethodSpec, ServiceSpec

ROOT = Path(__file__).resolve().parents[1]
SECRET = "logs-test-secret"


def _record(message: str, *args: object, extra: dict | None = None) -> logging.LogRecord:
    logger = logging.getLogger("storage.ops")
    return logger.makeRecord("storage.ops", logging.WARNING, __file__, 1, message, args, None, extra=extra)


def test_every_line_carries_node_and_role_before_the_logger():
    line = LogfmtFormatter(node_id=11, role="storage").format(_record("hello %s", "x"))
    assert re.fullmatch(
        r"ts=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z level=WARNING node=11 role=storage "
        r'logger=storage\.ops msg="hello x"',
        line,
    ), line
    bare = LogfmtFormatter().format(_record("hello"))
    assert "node=" not in bare and "role=" not in bare and "level=WARNING logger=storage.ops" in bare


def test_extra_fields_follow_the_message_quoted_when_needed():
    record = _record(
        "retrying",
        extra={"request_id": 17, "attempt": 2, "code": "RPC_CONNECT_FAILED", "peer": "a b", "ok": True},
    )
    line = LogfmtFormatter(node_id=3, role="meta").format(record)
    assert line.endswith(
        'msg="retrying" request_id=17 attempt=2 code=RPC_CONNECT_FAILED peer="a b" ok=true'
    ), line
    assert "\n" not in LogfmtFormatter().format(_record("x", extra={"text": "two\nlines"}))


def test_configure_logging_installs_the_labelled_formatter():
    configure_logging("debug", node_id=5, role="mgmtd")  # conftest restores the root logger
    root = logging.getLogger()
    assert root.level == logging.DEBUG and len(root.handlers) == 1
    line = root.handlers[0].format(_record("x"))
    assert " node=5 role=mgmtd " in line


# ----------------------------------------------------------------------------- RPC server lines


class _Ping(msgspec.Struct, frozen=True):
    fail: bool = False


class _Pong(msgspec.Struct, frozen=True):
    pass


_PING = MethodSpec(service_id=250, method_id=1, name="Ping", request_type=_Ping, response_type=_Pong)
_SPEC = ServiceSpec(250, "LogTest", (_PING,), {})


class _Service(RpcService):
    spec = _SPEC

    @rpc_method(_PING)
    async def ping(self, ctx: CallContext, request: _Ping, payload: object) -> _Pong:
        if request.fail:
            raise ThreeFSError(Code.INVALID_ARG, "told to fail")
        raise RuntimeError("boom")


async def test_rpc_server_error_lines_carry_the_request_id(caplog):
    caplog.set_level(logging.DEBUG, logger="threefs.rpc.server")
    server = RpcServer(SECRET, [_Service()])
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.serve, "127.0.0.1", 0)
        async with RpcClient(SECRET) as client:
            for fail in (True, False):
                try:
                    await client.call(f"127.0.0.1:{port}", _PING, _Ping(fail=fail), timeout_s=5)
                except ThreeFSError:
                    pass
        nursery.cancel_scope.cancel()
    answered = [r for r in caplog.records if "answered INVALID_ARG" in r.getMessage()]
    unexpected = [r for r in caplog.records if "failed unexpectedly" in r.getMessage()]
    assert len(answered) == 1 and answered[0].levelno == logging.DEBUG
    assert len(unexpected) == 1 and unexpected[0].levelno == logging.ERROR
    first, second = answered[0].request_id, unexpected[0].request_id  # type: ignore[attr-defined]
    assert isinstance(first, int) and second != first
    assert answered[0].code == "INVALID_ARG"  # type: ignore[attr-defined]
    line = LogfmtFormatter().format(unexpected[0])
    assert f"request_id={second}" in line and "RuntimeError" in line


# ----------------------------------------------------------------------------- a real process


def test_a_storage_process_labels_every_log_line(tmp_path):
    (tmp_path / "secret").write_text(SECRET)
    config = tmp_path / "storage.toml"
    config.write_text(
        'cluster_id = "logs"\nnode_id = 42\nlisten_port = 0\nmgmtd_addresses = ["127.0.0.1:1"]\n'
        f'cluster_secret_file = "{tmp_path / "secret"}"\ndata_dir = "{tmp_path / "data"}"\n'
        "heartbeat_interval_s = 0.1\n[[targets]]\ntarget_id = 4201\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "THREEFS_CLUSTER_SECRET"}
    process = subprocess.Popen(
        [sys.executable, "-m", "storage.main", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env=env,
    )
    try:
        assert process.stdout.readline().decode().startswith("storage 42 listening on ")
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    lines = err.decode().splitlines()
    assert any('msg="got SIGTERM: stopping"' in line for line in lines), lines
    assert len(lines) >= 3
    for line in lines:
        assert line.startswith("ts=") and " node=42 role=storage logger=" in line, line
