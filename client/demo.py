"""`make run`: start a local cluster with ``threefs up --mount`` and use it.

Starts (or restarts) the cluster under ``--data-dir`` (default ``/tmp/threefs-demo/data``) with
``threefs.local.up``, mounted at ``--mount`` (default ``/tmp/threefs-demo/mnt``); writes a few
files through the mount with plain ``os`` calls, lists them and reads them back; reads the same
files through the library (``threefs.connect``), writes one more there and reads it through the
mount. The cluster stays up; the demo ends by printing how to use and stop it. ``--no-mount``
(or a machine without FUSE) skips the mount half. Exits non-zero if any check fails.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path

import threefs
from threefs.local import LaunchError, UpOptions, up

DEMO_ROOT = Path("/tmp/threefs-demo")
FILES = {"small.txt": 13, "one-chunk.bin": 1 << 20, "several-chunks.bin": (5 << 20) + 12345}


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise SystemExit(f"demo: FAILED: {what}")


def _content(name: str, size: int) -> bytes:
    """Deterministic bytes, different per file (so a mix-up is caught)."""
    seed = hashlib.sha256(name.encode()).digest()
    return (seed * (size // len(seed) + 1))[:size] if size > 64 else b"hello threefs"[:size]


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _through_mount(mountpoint: Path) -> None:
    directory = mountpoint / "demo"
    directory.mkdir(exist_ok=True)
    for name, size in FILES.items():
        started = time.perf_counter()
        (directory / name).write_bytes(_content(name, size))
        print(f"  mount: wrote {name} ({size} bytes) in {time.perf_counter() - started:.2f} s")
    listed = sorted(os.listdir(directory))
    _check(set(FILES) <= set(listed), f"listing {directory} gave {listed}")
    print(f"  mount: ls {directory} -> {listed}")
    for name in FILES:
        data = (directory / name).read_bytes()
        _check(data == _content(name, FILES[name]), f"{name} read back through the mount differs")
        print(f"  mount: read {name} back, sha256 {_digest(data)}... matches")


def _through_library(cluster_config: Path, mountpoint: Path | None) -> None:
    with threefs.connect(cluster_config) as fs:
        if mountpoint is None:  # no mount: the library writes the files itself
            fs.makedirs("/demo", exist_ok=True)
            for name, size in FILES.items():
                fs.write_bytes(f"/demo/{name}", _content(name, size))
        listed = sorted(fs.listdir("/demo"))
        _check(set(FILES) <= set(listed), f"the library lists /demo as {listed}")
        print(f"  library: listdir('/demo') -> {listed}")
        for name, size in FILES.items():
            data = fs.read_bytes(f"/demo/{name}")
            _check(data == _content(name, size), f"{name} read through the library differs")
            print(f"  library: read {name}, sha256 {_digest(data)}... matches")
        payload = _content("from-library", 3 << 20)
        fs.write_bytes("/demo/from-library.bin", payload)
        print("  library: wrote /demo/from-library.bin (3 MiB)")
    if mountpoint is not None:
        data = (mountpoint / "demo" / "from-library.bin").read_bytes()
        _check(data == payload, "from-library.bin read through the mount differs")
        print("  mount: read from-library.bin back, matches (close-to-open across clients)")


def _fuse_available() -> bool:
    return Path("/dev/fuse").exists()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="threefs demo: a local cluster, used through FUSE and the library"
    )
    parser.add_argument("--data-dir", type=Path, default=DEMO_ROOT / "data")
    parser.add_argument("--mount", type=Path, default=DEMO_ROOT / "mnt")
    parser.add_argument("--no-mount", action="store_true", help="use the library only")
    parser.add_argument("--storage-nodes", type=int, default=None)
    args = parser.parse_args(argv)
    mountpoint: Path | None = None if args.no_mount else args.mount.absolute()
    if mountpoint is not None and not _fuse_available():
        print("demo: /dev/fuse is missing: running without the mount (library only)")
        mountpoint = None
    started = time.perf_counter()
    try:
        cluster = up(
            args.data_dir,
            UpOptions(storage_nodes=args.storage_nodes, mount=mountpoint),
            lambda message: print(f"  up: {message}", flush=True),
        )
    except LaunchError as exc:
        print(f"demo: FAILED: threefs up: {exc.message}", file=sys.stderr)
        return 1
    print(f"demo: cluster up in {time.perf_counter() - started:.1f} s")
    if mountpoint is not None:
        _through_mount(mountpoint)
    _through_library(cluster.cluster_config, mountpoint)
    print("demo: all checks passed\n")
    print("The cluster keeps running. Use it:")
    if mountpoint is not None:
        print(f"  ls -l {mountpoint}/demo                      # any program, through FUSE")
    threefs_command = Path(sys.executable).parent / "threefs"  # on PATH once the venv is active
    print(f"  {threefs_command} status --data-dir {cluster.path}")
    connect = f"import threefs; print(threefs.connect('{cluster.cluster_config}').listdir('/demo'))"
    print(f'  {sys.executable} -c "{connect}"')
    print("Stop it (unmounts first; data is kept, threefs up starts it again):")
    print(f"  {threefs_command} down --data-dir {cluster.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
