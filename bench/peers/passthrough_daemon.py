"""pyfuse3's ``examples/passthroughfs.py`` with one change: a directory is read once per open.

The example's ``readdir`` lists and ``lstat``s the whole directory again on every call and skips
to the offset; the kernel asks for a few dozen entries per call, so listing a directory costs
O(n^2): 100,000 entries would take about an hour. Here ``opendir`` hands out a handle of its own,
the first ``readdir`` of that handle reads the directory (the same ``lstat`` of each entry, the
same order by inode number) and later calls continue from the saved list; ``releasedir`` drops
it. Every other operation is the example's, unchanged.

Usage (what ``bench/peers/passthrough.py`` runs): ``passthrough_daemon.py EXAMPLE SOURCE
MOUNTPOINT [example options]``, EXAMPLE being the path of ``passthroughfs.py``.
"""

from __future__ import annotations

import bisect
import importlib.util
import itertools
import os
import sys
from typing import Any


def linear_readdir(base: type) -> type:
    """A subclass of the example's ``Operations`` that reads each open directory once."""
    import pyfuse3

    class Operations(base):  # type: ignore[valid-type, misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._handles = itertools.count(1)
            self._directories: dict[int, list[Any]] = {}  # handle -> [inode, path, inos, entries]

        async def opendir(self, inode: int, ctx: Any) -> int:
            handle = next(self._handles)
            self._directories[handle] = [inode, None, [], []]
            return handle

        async def readdir(self, fh: int, start_id: int, token: Any) -> None:
            state = self._directories[fh]
            if state[1] is None or start_id == 0:
                path = self._inode_to_path(state[0])
                entries = []
                for name in os.listdir(path):
                    attr = self._getattr(path=os.path.join(path, name))
                    entries.append((attr.st_ino, name, attr))
                entries.sort(key=lambda entry: (entry[0], entry[1]))
                state[1:] = [path, [entry[0] for entry in entries], entries]
            path, inos, entries = state[1], state[2], state[3]
            for ino, name, attr in entries[bisect.bisect_right(inos, start_id) :]:
                if not pyfuse3.readdir_reply(token, os.fsencode(name), attr, ino):
                    break
                self._add_path(attr.st_ino, os.path.join(path, name))

        async def releasedir(self, fh: int) -> None:
            self._directories.pop(fh, None)

    return Operations


def main() -> None:
    example = sys.argv[1]
    spec = importlib.util.spec_from_file_location("passthroughfs", example)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.Operations = linear_readdir(module.Operations)  # what the example's main() builds
    sys.argv = [example, *sys.argv[2:]]
    module.main()


if __name__ == "__main__":
    main()
