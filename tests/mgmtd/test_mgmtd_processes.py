"""Three real ``threefs-mgmtd`` processes sharing one sqlite file: one primary, the others name
it; SIGKILL the primary and another takes over within one lease period, with the routing info
created before; SIGTERM stops the rest cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import trio

from threefs.errors import Code, ThreeFSError
from threefs.rpc import RpcClient, RpcClientConfig
from threefs.wire import mgmtd as wire

SECRET = "process-test-secret"
LEASE_S = 1.5
SLACK_S = 1.0  # process scheduling on a busy 2-core machine, one KV transaction
ROOT = Path(__file__).resolve().parents[2]


class Process:
    def __init__(self, node_id: int, process: trio.Process, log_path: Path) -> None:
        self.node_id = node_id
        self.process = process
        self.log_path = log_path
        self.port = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def read_listening_line(self, timeout_s: float = 20.0) -> None:
        line = b""
        with trio.move_on_after(timeout_s):
            while not line.endswith(b"\n"):
                chunk = await self.process.stdout.receive_some(1)
                if not chunk:
                    break
                line += chunk
        expected = f"mgmtd {self.node_id} listening on 127.0.0.1:"
        if not line.decode().startswith(expected):
            pytest.fail(f"mgmtd {self.node_id} printed {line!r}; log:\n{self.log_path.read_text()}")
        self.port = int(line.decode().strip().rsplit(":", 1)[1])


async def start(tmp_path: Path, node_id: int) -> Process:
    config = tmp_path / f"mgmtd{node_id}.toml"
    config.write_text(
        f'cluster_id = "proc"\nnode_id = {node_id}\nlisten_port = 0\n'
        f'kv_url = "sqlite:///{tmp_path}/mgmtd.db"\nlease_s = {LEASE_S}\n'
        "heartbeat_interval_s = 0.5\nheartbeat_timeout_s = 5.0\n"
    )
    log_path = tmp_path / f"mgmtd{node_id}.log"
    env = dict(os.environ, THREEFS_CLUSTER_SECRET=SECRET)
    with log_path.open("wb") as log_file:
        process = await trio.lowlevel.open_process(
            [sys.executable, "-m", "mgmtd.main", "--config", str(config)],
            stdout=subprocess.PIPE,
            stderr=log_file,
            cwd=ROOT,
            env=env,
        )
    return Process(node_id, process, log_path)


async def primary_answers(client: RpcClient, processes: list[Process]) -> list[wire.GetPrimaryResponse]:
    answers = []
    for process in processes:
        answer, _ = await client.call(
            process.address, wire.GET_PRIMARY, wire.GetPrimaryRequest(), timeout_s=2
        )
        answers.append(answer)
    return answers


async def wait_for_one_primary(client: RpcClient, processes: list[Process], timeout_s: float) -> Process:
    """Poll until exactly one says it is primary and every other names it; returns it."""
    answers: list[wire.GetPrimaryResponse] = []
    with trio.move_on_after(timeout_s):
        while True:
            answers = await primary_answers(client, processes)
            primaries = [p for p, a in zip(processes, answers, strict=True) if a.is_primary]
            if len(primaries) == 1 and all(
                a.is_primary or a.primary_address == primaries[0].address for a in answers
            ):
                return primaries[0]
            await trio.sleep(0.02)
    pytest.fail(f"no single primary within {timeout_s} s: {answers}")


@pytest.mark.slow
async def test_three_mgmtd_processes_elect_one_primary_and_fail_over(tmp_path):
    processes = [await start(tmp_path, node_id) for node_id in (1, 2, 3)]
    try:
        for process in processes:
            await process.read_listening_line()
        async with RpcClient(SECRET, RpcClientConfig(connect_timeout_s=2)) as client:
            await check_failover(client, processes)
        for process in processes:
            if process.process.returncode is None:
                process.process.send_signal(signal.SIGTERM)
        for process in processes:
            with trio.fail_after(10):
                code = await process.process.wait()
            if process.process.returncode != -signal.SIGKILL:
                assert code == 0, process.log_path.read_text()
    finally:
        for process in processes:
            if process.process.returncode is None:
                process.process.kill()
                await process.process.wait()


async def check_failover(client: RpcClient, processes: list[Process]) -> None:
    primary = await wait_for_one_primary(client, processes, timeout_s=LEASE_S + 5)
    others = [p for p in processes if p is not primary]
    for other in others:
        with pytest.raises(ThreeFSError) as caught:
            await client.call(other.address, wire.LIST_CHAINS, wire.ListChainsRequest())
        assert caught.value.code == Code.MGMTD_NOT_PRIMARY
        assert wire.parse_not_primary(caught.value.message) == primary.address

    targets = [wire.TargetInfo(target_id=10 + n, node_id=n) for n in (1, 2)]
    await client.call(primary.address, wire.CREATE_TARGETS, wire.CreateTargetsRequest(targets=targets))
    spec = wire.ChainSpec(chain_id=1, target_ids=[11, 12])
    await client.call(primary.address, wire.CREATE_CHAINS, wire.CreateChainsRequest(chains=[spec]))
    table = wire.CreateChainTableRequest(table_id=1, chain_ids=[1])
    await client.call(primary.address, wire.CREATE_CHAIN_TABLE, table)
    reply, _ = await client.call(primary.address, wire.GET_ROUTING_INFO, wire.GetRoutingInfoRequest())
    version = reply.routing.version

    primary.process.kill()  # SIGKILL: no lease release, the successor must wait it out
    killed_at = time.monotonic()
    await primary.process.wait()
    successor = await wait_for_one_primary(client, others, timeout_s=LEASE_S + SLACK_S + 3)
    took_s = time.monotonic() - killed_at
    assert took_s <= LEASE_S + SLACK_S, f"takeover took {took_s:.2f} s"

    reply, _ = await client.call(successor.address, wire.GET_ROUTING_INFO, wire.GetRoutingInfoRequest())
    routing = reply.routing
    assert routing.version == version
    assert [t.target_id for t in routing.chains[1].targets] == [11, 12]
    assert routing.chain_tables[1][0].chain_ids == [1]
