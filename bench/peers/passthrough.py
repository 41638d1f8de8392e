"""The FUSE baseline: ``examples/passthroughfs.py`` from pyfuse3's source distribution over a local
directory, with its default options (entry/attribute timeouts 0, no writeback cache). What a Python
FUSE file system costs with no storage behind it. One change: ``passthrough_daemon.py`` runs the
example with a ``readdir`` that reads a directory once per open instead of once per call (the
example's is quadratic: a 100,000-entry listing would take about an hour); every other operation
is the example's.

The example is downloaded once into ``build/pyfuse3-sdist`` with ``pip download`` (the only
network access). As a script, from the repository root as root::

    .venv/bin/python bench/peers/passthrough.py run                 # mount, wait for Ctrl-C
    .venv/bin/python bench/peers/passthrough.py run -- fio ...      # run a command in the mount

The daemon runs in the foreground of this process; leaving the context (or Ctrl-C, SIGTERM)
unmounts it, waits for the daemon and removes the temporary directory. Nothing listens on a
socket.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.peers.common import ROOT, fuse_mount, run_cli

PYFUSE3_VERSION = "3.5.0"
SDIST_DIR = ROOT / "build" / "pyfuse3-sdist"


def passthrough_example() -> Path:
    """pyfuse3's ``examples/passthroughfs.py`` from its sdist (downloaded once, kept in build/)."""
    example = SDIST_DIR / f"pyfuse3-{PYFUSE3_VERSION}" / "examples" / "passthroughfs.py"
    if not example.exists():
        SDIST_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-binary", ":all:", "--no-deps",
             f"pyfuse3=={PYFUSE3_VERSION}", "-d", str(SDIST_DIR)],
            check=True,
        )  # fmt: skip
        shutil.unpack_archive(SDIST_DIR / f"pyfuse3-{PYFUSE3_VERSION}.tar.gz", SDIST_DIR)
    return example


def source_dir(directory: Path) -> Path:
    """The local directory that ``passthrough_mount(directory)`` mirrors."""
    return directory / "source"


@contextmanager
def passthrough_mount(directory: Path) -> Iterator[Path]:
    """Mount the passthrough example of ``directory/source`` on ``directory/mnt``; yield the mount
    point; unmount on exit (the source directory stays, inside ``directory``)."""
    source = source_dir(directory)
    source.mkdir(parents=True)
    daemon = Path(__file__).resolve().parent / "passthrough_daemon.py"
    command = [sys.executable, str(daemon), str(passthrough_example()), str(source), str(directory / "mnt")]
    with fuse_mount(command, directory / "mnt", directory / "mount.log") as mountpoint:
        yield mountpoint


if __name__ == "__main__":
    sys.exit(run_cli(__doc__.splitlines()[0], passthrough_mount))
