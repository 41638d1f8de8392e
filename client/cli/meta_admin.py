"""`threefs admin` commands on the namespace, through a meta server: ``stat``, ``ls``, ``mkdir``,
``rm``, ``mv``, ``ln``, ``set-layout``, ``gc-list`` and ``fsck``.

Meta servers are found in the routing info of the primary mgmtd (ACTIVE META nodes), or given
with ``--meta HOST:PORT``. The commands act as admin root (uid 0 with the admin flag), as an
administrator's tool does. Commands have the ``admin`` signature ``(mgmtd, args) -> (data,
text)``; ``fsck`` exits with status 1 when it finds problems it did not repair.
"""

from __future__ import annotations

import argparse
import os
import stat as stat_module
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import trio

from client.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    UserError,
    format_bytes,
    render_json,
    render_table,
    resolve_connection,
)
from client.meta import MetaClient, MetaClientConfig
from client.mgmtd import MgmtdClient
from client.routing import RoutingCache
from threefs.errors import ThreeFSError
from threefs.layout import Layout
from threefs.wire.meta import Caller, Inode, InodeType, RenameFlags

__all__ = ["ADMIN_ROOT", "parse_size", "register"]

ADMIN_ROOT = Caller(uid=0, gid=0, admin=True)

_TYPE_CHARS = {
    InodeType.FILE: "-",
    InodeType.DIRECTORY: "d",
    InodeType.SYMLINK: "l",
    InodeType.FIFO: "p",
    InodeType.SOCKET: "s",
    InodeType.CHAR_DEVICE: "c",
    InodeType.BLOCK_DEVICE: "b",
}


def parse_size(text: str) -> int:
    """``"1M"`` -> 1048576 (K, M, G: powers of 1024; a plain number is bytes)."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    try:
        if text[-1:].upper() in units:
            return int(text[:-1]) * units[text[-1:].upper()]
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad size {text!r}: expected e.g. 1048576, 512K or 4M") from None


def _meta(mgmtd: MgmtdClient, args: argparse.Namespace) -> MetaClient:
    config = MetaClientConfig(
        request_timeout_s=mgmtd.config.request_timeout_s,
        attempt_timeout_s=mgmtd.config.request_timeout_s,
    )
    addresses = getattr(args, "meta", None) or ()
    routing = None if addresses else RoutingCache(mgmtd)
    return MetaClient(mgmtd.rpc, routing=routing, addresses=addresses, caller=ADMIN_ROOT, config=config)


def _name(data: bytes) -> str:
    return os.fsdecode(data)


def _mode_text(inode: Inode) -> str:
    return _TYPE_CHARS.get(inode.type, "?") + stat_module.filemode(inode.mode)[1:]


def _time_text(ns: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ns / 1e9))


def _inode_data(inode: Inode) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": inode.id,
        "type": inode.type.name,
        "mode": f"{inode.mode:04o}",
        "uid": inode.uid,
        "gid": inode.gid,
        "nlink": inode.nlink,
        "length": inode.length,
        "atime_ns": inode.atime_ns,
        "mtime_ns": inode.mtime_ns,
        "ctime_ns": inode.ctime_ns,
    }
    if inode.layout is not None:
        data["layout"] = inode.layout
    if inode.dir_layout is not None:
        data["dir_layout"] = inode.dir_layout
    if inode.type == InodeType.SYMLINK:
        data["target"] = _name(inode.target)
    if inode.type == InodeType.DIRECTORY:
        data["parent"] = inode.parent
    return data


def _layout_text(layout: Layout) -> str:
    return (
        f"table {layout.table_id} v{layout.table_version}, chunk {format_bytes(layout.chunk_size)}, "
        f"stripe {layout.stripe_size} from {layout.base_index}, seed {layout.seed}"
    )


# ----------------------------------------------------------------------------- commands


async def stat(mgmtd: MgmtdClient, args: argparse.Namespace) -> tuple[Any, str]:
    inode = await _meta(mgmtd, args).stat(args.path, follow=not args.no_follow)
    lines = [
        f"  path: {args.path}",
        f" inode: {inode.id}  type: {inode.type.name}  mode: {_mode_text(inode)} ({inode.mode:04o})",
        f" owner: uid {inode.uid} gid {inode.gid}  links: {inode.nlink}  length: {inode.length}",
        f"access: {_time_text(inode.atime_ns)}  modify: {_time_text(inode.mtime_ns)}  "
        f"change: {_time_text(inode.ctime_ns)}",
    ]
    if inode.layout is not None:
        lines.append(f"layout: {_layout_text(inode.layout)}")
    if inode.dir_layout is not None:
        lines.append(f"default layout: {_layout_text(inode.dir_layout)}")
    if inode.type == InodeType.SYMLINK:
        lines.append(f"target: {_name(inode.target)}")
    return {"path": args.path, "inode": _inode_data(inode)}, "\n".join(lines)


async def ls(mgmtd: MgmtdClient, args: argparse.Namespace) -> tuple[Any, str]:
    entries = await _meta(mgmtd, args).list_all(args.path, with_attrs=True)
    headers = ["MODE", "NLINK", "UID", "GID", "LENGTH", "INODE", "NAME"]
    rows = []
    data = []
    for entry in entries:
        attrs = entry.attrs
        name = _name(entry.name)
        if attrs is None:  # removed between the listing and its attributes
            rows.append(["?", "-", "-", "-", "-", entry.inode, name])
            data.append({"name": name, "inode": entry.inode, "type": entry.type.name})
            continue
        shown = f"{name} -> {_name(attrs.target)}" if attrs.type == InodeType.SYMLINK else name
        rows.append([_mode_text(attrs), attrs.nlink, attrs.uid, attrs.gid, attrs.length, entry.inode, shown])
        data.append({"name": name, **_inode_data(attrs)})
    return {"path": args.path, "entries": data}, render_table(headers, rows)


async def mkdir(mgmtd: MgmtdClient, args: argparse.Namespace) -> tuple[Any, str]:
    inode = await _meta(mgmtd, args).mkdir(args.path, args.mode, recursive=args.parents)
    return {
        "path": args.path,
        "inode": _inode_data(inode),
    }, f"created directory {args.path} (inode {inode.id})"


async def rm(mgmtd: MgmtdClient, args: argparse.Namespace) -> tuple[Any, str]:
    meta = _meta(mgmtd, args)
    if args.recursive:
        response = await meta.remove(args.path, recursive=True)
    elif args.dir:
        response = await meta.rmdir(args.path)
    else:
        response = await meta.unlink(args.path)
    text = f"removed {args.path}; {response.queued_for_gc} file(s) queued for GC"
    return {"path": args.path, "queued_for_gc": response.queued_for_gc}, text


async def mv(mgmtd: MgmtdClient, args: argparse.Namespace) -> tuple[Any, str]:
    flags = (RenameFlags.NOREPLACE if args.no_replace else 0) | (RenameFlags.EXCHANGE if args.exchange else 0)
    response = await _meta(mgmtd, args).rename(args.src, args.dst, flags=flags)
    verb = "exchanged" if args.exchange else "renamed"
    text = f"{verb} {args.src} and {args.dst}" if args.exchange else f"{verb} {args.src} to {args.dst}"
    if response.replaced is not None and not args.exchange:
        text += f" (replaced inode {response.replaced.id})"
    data = {
        "src": args.src,
        "dst": args.dst,
        "inode": response.inode.id,
        "replaced": response.replaced.id if response.replaced is not None else None,
    }
    return data, text


async def ln(mgmtd: MgmtdClient, args: argparse.Namespace) -> tuple[Any, str]:
    meta = _meta(mgmtd, args)
    if args.symbolic:
        inode = await meta.symlink(args.link, args.target)
        text = f"{args.link} -> {args.target} (inode {inode.id})"
    else:
        inode = await meta.hard_link(args.target, args.link)
        text = f"linked {args.link} to inode {inode.id} ({inode.nlink} links)"
    return {"link": args.link, "target": args.target, "inode": _inode_data(inode)}, text


async def set_layout(mgmtd: MgmtdClient, args: argparse.Namespace) -> tuple[Any, str]:
    version = args.table_version
    if not version:
        tables = [t for t in await mgmtd.list_chain_tables() if t.table_id == args.table_id]
        if not tables:
            raise UserError(f"no chain table {args.table_id} at mgmtd", EXIT_FAILED)
        version = max(t.version for t in tables)
    try:
        layout = Layout(
            table_id=args.table_id,
            table_version=version,
            chunk_size=args.chunk_size,
            stripe_size=args.stripe,
            base_index=args.base_index,
        )
    except ThreeFSError as exc:
        raise UserError(exc.message, EXIT_USAGE, exc.code) from None
    await _meta(mgmtd, args).set_layout(args.path, layout)
    return {"path": args.path, "layout": layout}, f"{args.path}: new files get {_layout_text(layout)}"


async def gc_list(mgmtd: MgmtdClient, args: argparse.Namespace) -> tuple[Any, str]:
    response = await _meta(mgmtd, args).gc_list(args.limit)
    now = time.time_ns()
    headers = ["INODE", "LENGTH", "QUEUED", "DUE_IN", "REASON"]
    rows = []
    data = []
    for job, due_ns in zip(response.jobs, response.due_ns, strict=True):
        due = "now" if due_ns <= now else f"{(due_ns - now) / 1e9:.1f}s"
        rows.append([job.inode.id, job.inode.length, _time_text(job.queued_ns), due, job.reason or "-"])
        data.append(
            {"inode": job.inode.id, "length": job.inode.length, "queued_ns": job.queued_ns, "due_ns": due_ns}
        )
    return {"jobs": data}, render_table(headers, rows) if rows else "the GC queue is empty"


async def fsck(mgmtd: MgmtdClient, args: argparse.Namespace) -> tuple[Any, str]:
    report = await _meta(mgmtd, args).fsck(repair=args.repair)
    problems = [
        {
            "kind": p.kind,
            "inode": p.inode,
            "parent": p.parent,
            "name": _name(p.name),
            "detail": p.detail,
            "repaired": p.repaired,
        }
        for p in report.problems
    ]
    left = sum(not p.repaired for p in report.problems)
    lines = [f"checked {report.inodes} inode(s) and {report.entries} entr(y/ies): {len(problems)} problem(s)"]
    if problems:
        headers = ["KIND", "INODE", "PARENT", "NAME", "REPAIRED", "DETAIL"]
        rows = [
            [p["kind"], p["inode"] or "-", p["parent"] or "-", p["name"] or "-", p["repaired"], p["detail"]]
            for p in problems
        ]
        lines.append(render_table(headers, rows))
    data = {"inodes": report.inodes, "entries": report.entries, "problems": problems, "unrepaired": left}
    return data, "\n".join(lines)


# ----------------------------------------------------------------------------- wiring


def _run_fsck(args: argparse.Namespace) -> int:
    """Like ``admin.run_command``, with exit status 1 when problems are left unrepaired."""
    connection = resolve_connection(args)

    async def session() -> tuple[Any, str]:
        async with MgmtdClient(connection.addresses, connection.secret, config=connection.config) as mgmtd:
            return await fsck(mgmtd, args)

    data, text = trio.run(session)
    print(render_json(data) if args.json else text)
    return EXIT_FAILED if data["unrepaired"] else EXIT_OK


def register(add: Callable[[str, Any, str], argparse.ArgumentParser]) -> None:
    """Add the namespace commands through ``admin.register``'s ``add(name, command, help)``."""

    def command(name: str, function: Any, help_text: str) -> argparse.ArgumentParser:
        parser = add(name, function, help_text)
        parser.add_argument(
            "--meta", action="append", metavar="HOST:PORT", help="a meta server (default: from routing)"
        )
        return parser

    parser = command("stat", stat, "show an inode's attributes")
    parser.add_argument("path", metavar="PATH")
    parser.add_argument("--no-follow", action="store_true", help="do not follow a final symlink")

    parser = command("ls", ls, "list a directory with attributes")
    parser.add_argument("path", metavar="PATH", nargs="?", default="/")

    parser = command("mkdir", mkdir, "create a directory")
    parser.add_argument("path", metavar="PATH")
    parser.add_argument("-p", "--parents", action="store_true", help="create parents; accept an existing one")
    parser.add_argument("--mode", type=partial(int, base=8), default=0o755, help="permission bits (octal)")

    parser = command("rm", rm, "remove a file (or an empty directory with -d, a whole tree with -r)")
    parser.add_argument("path", metavar="PATH")
    parser.add_argument("-r", "--recursive", action="store_true", help="the whole tree, in one transaction")
    parser.add_argument("-d", "--dir", action="store_true", help="remove an empty directory")

    parser = command("mv", mv, "rename (atomically; replaces a file or an empty directory)")
    parser.add_argument("src", metavar="SRC")
    parser.add_argument("dst", metavar="DST")
    switch = parser.add_mutually_exclusive_group()
    switch.add_argument("--no-replace", action="store_true", help="fail if DST exists")
    switch.add_argument("--exchange", action="store_true", help="swap SRC and DST atomically")

    parser = command("ln", ln, "make a hard link (or a symlink with -s)")
    parser.add_argument("target", metavar="TARGET")
    parser.add_argument("link", metavar="LINK")
    parser.add_argument("-s", "--symbolic", action="store_true", help="a symbolic link holding TARGET")

    parser = command("set-layout", set_layout, "set a directory's default layout for new files")
    parser.add_argument("path", metavar="DIR")
    parser.add_argument("--table-id", type=int, default=1, metavar="N", help="chain table (default 1)")
    parser.add_argument("--table-version", type=int, default=0, metavar="V", help="default: the latest")
    parser.add_argument("--chunk-size", type=parse_size, default=1 << 20, metavar="SIZE", help="e.g. 4M")
    parser.add_argument("--stripe", type=int, default=1, metavar="N", help="chains a file spreads over")
    parser.add_argument("--base-index", type=int, default=0, metavar="I", help="first table position")

    parser = command("gc-list", gc_list, "list removed files waiting for their chunks to be deleted")
    parser.add_argument("--limit", type=int, default=1000, metavar="N")

    parser = command("fsck", fsck, "check the namespace (exit 1 when problems are left)")
    parser.add_argument("--repair", action="store_true", help="fix what is found")
    parser.set_defaults(run=_run_fsck)
