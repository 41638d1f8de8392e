"""The file system API: ``AsyncFileSystem`` / ``AsyncFile`` for trio code, ``FileSystem`` /
``File`` (synchronous, a background trio loop) for everything else. Build them with
``threefs.connect`` / ``client.connect.open_filesystem``."""

from client.fs.async_file import AsyncFile
from client.fs.async_fs import AsyncFileSystem, normalize
from client.fs.config import FileSystemConfig
from client.fs.errors import os_error
from client.fs.modes import OpenMode, parse_mode
from client.fs.stat import DirEntry, stat_result
from client.fs.sync_file import File
from client.fs.sync_fs import FileSystem

__all__ = [
    "AsyncFile",
    "AsyncFileSystem",
    "DirEntry",
    "File",
    "FileSystem",
    "FileSystemConfig",
    "OpenMode",
    "normalize",
    "os_error",
    "parse_mode",
    "stat_result",
]
