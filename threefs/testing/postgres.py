"""A throwaway PostgreSQL server for tests and benchmarks, from the Debian ``postgresql`` package.

``PostgresServer`` runs ``initdb`` into a temporary directory and starts ``postgres`` listening
on 127.0.0.1 only, on a free port, with its unix socket in that directory, trust authentication
and durability off (``fsync=off``): fine for tests, never for data. PostgreSQL refuses to run as
root, so as root the server runs as the ``postgres`` OS user (``runuser``), which owns the
temporary directory.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

__all__ = ["PostgresServer", "find_postgres_bin"]

_BIN_ROOT = Path("/usr/lib/postgresql")
_LOG_TAIL_BYTES = 4000


def find_postgres_bin() -> Path | None:
    """The ``bin`` directory of the newest PostgreSQL under /usr/lib/postgresql, or None."""
    candidates = []
    if _BIN_ROOT.is_dir():
        for entry in _BIN_ROOT.iterdir():
            if entry.name.isdigit() and (entry / "bin" / "initdb").exists():
                candidates.append((int(entry.name), entry / "bin"))
    return max(candidates)[1] if candidates else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresServer:
    """One PostgreSQL server in a temporary directory; ``stop()`` removes every trace of it.

    ``start()`` returns once the server accepts connections and database ``dbname`` exists;
    it raises ``RuntimeError`` carrying the server log's tail when the server cannot start
    (and cleans up). ``stop()`` is idempotent and always removes the directory.
    """

    def __init__(
        self, *, dbname: str = "threefs", bin_dir: str | Path | None = None, start_timeout_s: float = 60.0
    ) -> None:
        found = Path(bin_dir) if bin_dir is not None else find_postgres_bin()
        if found is None or not (found / "initdb").exists():
            raise RuntimeError(f"no PostgreSQL binaries found under {bin_dir or _BIN_ROOT}")
        if not dbname.isidentifier():
            raise RuntimeError(f"dbname must be a plain identifier, not {dbname!r}")
        self.bin_dir = found
        self.dbname = dbname
        self.start_timeout_s = start_timeout_s
        self.port: int | None = None
        self._tmp: Path | None = None
        self._started = False

    @property
    def dsn(self) -> str:
        """A libpq URL for database ``dbname`` as superuser ``postgres``, over TCP loopback."""
        if self.port is None:
            raise RuntimeError("the PostgreSQL server is not started")
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.dbname}"

    @property
    def log_path(self) -> Path | None:
        return self._tmp / "server.log" if self._tmp else None

    def _run(self, args: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a PostgreSQL tool, as the ``postgres`` user when we are root."""
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(
            command, check=check, capture_output=True, text=True, timeout=self.start_timeout_s, cwd="/"
        )

    def start(self) -> PostgresServer:
        """Create the cluster, start the server and the database. Returns self."""
        if self._started:
            return self
        self._tmp = Path(tempfile.mkdtemp(prefix="threefs-pg-"))
        try:
            if os.geteuid() == 0:
                user = pwd.getpwnam("postgres")
                os.chown(self._tmp, user.pw_uid, user.pw_gid)
            data = self._tmp / "data"
            self._run(
                ["initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync",
                 "--encoding=UTF8", "--locale=C", "--no-instructions"]
            )  # fmt: skip
            self._start_server(data)
            self._started = True
            self._create_database()
        except subprocess.CalledProcessError as exc:
            tail = self._log_tail()
            self.stop()
            raise RuntimeError(
                f"PostgreSQL failed: {' '.join(exc.cmd)} exited {exc.returncode}\n"
                f"{exc.stdout}{exc.stderr}\n--- server log tail ---\n{tail}"
            ) from exc
        except BaseException:
            self.stop()
            raise
        return self

    def _start_server(self, data: Path) -> None:
        options = [
            "-c listen_addresses=127.0.0.1",
            f"-c unix_socket_directories={self._tmp}",
            "-c fsync=off",
            "-c synchronous_commit=off",
            "-c full_page_writes=off",
            "-c max_connections=200",
        ]
        for attempt in range(3):  # a free port may be taken between probing and binding
            self.port = _free_port()
            wait = ["-w", "-t", str(int(self.start_timeout_s))]
            server_options = " ".join([f"-p {self.port}", *options])
            result = self._run(
                ["pg_ctl", "-D", str(data), "-l", str(self.log_path), *wait, "-o", server_options, "start"],
                check=attempt == 2,
            )
            if result.returncode == 0:
                return

    def _create_database(self) -> None:
        import psycopg

        deadline = time.monotonic() + self.start_timeout_s
        admin_dsn = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        while True:
            try:
                with psycopg.connect(admin_dsn, autocommit=True) as conn:
                    conn.execute(f'CREATE DATABASE "{self.dbname}"')
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _log_tail(self) -> str:
        path = self.log_path
        if path is None or not path.exists():
            return "(no server log)"
        return path.read_bytes()[-_LOG_TAIL_BYTES:].decode(errors="replace")

    def stop(self) -> None:
        """Stop the server at once (no checkpoint needed) and remove its directory."""
        if self._tmp is None:
            return
        data = self._tmp / "data"
        if self._started or (data / "postmaster.pid").exists():
            try:
                self._run(["pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop"], check=False)
            except subprocess.TimeoutExpired:
                self._kill_postmaster(data)
        self._started = False
        shutil.rmtree(self._tmp, ignore_errors=True)
        self._tmp = None
        self.port = None

    @staticmethod
    def _kill_postmaster(data: Path) -> None:
        try:
            pid = int((data / "postmaster.pid").read_text().split()[0])
            os.kill(pid, 9)
        except (OSError, ValueError, IndexError):
            pass

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
