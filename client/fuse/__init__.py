"""client.fuse: the FUSE daemon (a leaf: nothing imports it), pyfuse3 + trio over the meta and
storage clients. ``threefs mount`` (``client.cli.mount``) starts it; see docs/fuse.md.

- ``options``: ``-o`` mount options parsed into ``MountOptions`` (timeouts, writeback, buffer);
- ``handlers``: the boundary where errors become errno (``fuse_handler``);
- ``attrs``: inodes to ``EntryAttributes``, the caller's identity, the access check;
- ``files``: open files (write buffer, length tracking) and directory handles;
- ``ops``: the pyfuse3 ``Operations``;
- ``daemon``: connecting to the cluster, mounting, serving, unmounting.
"""

from client.fuse.daemon import run_mount
from client.fuse.ops import ThreeFSOperations
from client.fuse.options import MountOptions, parse_mount_options

__all__ = ["MountOptions", "ThreeFSOperations", "parse_mount_options", "run_mount"]
