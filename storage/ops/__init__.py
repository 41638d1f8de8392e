"""The storage operations, one per module; ``storage.service`` calls them."""

from storage.ops.query import dump_chunk_meta, query_last_chunk, space_info
from storage.ops.read import batch_read
from storage.ops.remove_chunks import remove_chunks
from storage.ops.sync import sync_done, sync_start
from storage.ops.targets import create_target, remove_target
from storage.ops.update import update_chunk

__all__ = [
    "batch_read",
    "create_target",
    "dump_chunk_meta",
    "query_last_chunk",
    "remove_chunks",
    "remove_target",
    "space_info",
    "sync_done",
    "sync_start",
    "update_chunk",
]
