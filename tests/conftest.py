"""Suite-wide fixtures."""

import logging

import pytest


@pytest.fixture(autouse=True)
def _restore_root_logging():
    """Service entry points called in-process (``main([...])``) install their own root handler on
    the stderr of that moment (a capture that pytest later closes); put logging back after each
    test so one test's handler cannot break another's output."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
