"""How a ``FileSystem`` buffers and pages (``FileSystemConfig``)."""

from __future__ import annotations

from threefs.config import Section
from threefs.errors import Code, ThreeFSError

__all__ = ["FileSystemConfig"]


class FileSystemConfig(Section):
    """``write_buffer_bytes``: bytes an open file gathers before it sends them to storage (one
    large write split by chunk and sent in parallel); 0 sends every write at once.
    ``list_page``: directory entries per list call. ``read_ranges_max_bytes``: the most bytes
    one ``read_ranges`` call may ask for (its replies are held in memory together)."""

    write_buffer_bytes: int = 4 << 20
    list_page: int = 1000
    read_ranges_max_bytes: int = 1 << 30

    def __post_init__(self) -> None:
        if not 0 <= self.write_buffer_bytes <= (1 << 30):
            raise ThreeFSError(Code.CONFIG_INVALID, "fs.write_buffer_bytes must be in [0, 1 GiB]")
        if not 1 <= self.list_page <= 10_000:
            raise ThreeFSError(Code.CONFIG_INVALID, "fs.list_page must be in [1, 10000]")
        if self.read_ranges_max_bytes < 1:
            raise ThreeFSError(Code.CONFIG_INVALID, "fs.read_ranges_max_bytes must be >= 1")
