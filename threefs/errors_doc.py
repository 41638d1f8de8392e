"""Renders ``docs/errors.md`` from the error registry, or checks that it is current.

``python -m threefs.errors_doc --write docs/errors.md`` regenerates the page; ``--check`` exits 1
when the page differs from the registry (the test command runs it, so a new code without a doc
update fails CI).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from threefs.errors import render_markdown


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Render or check docs/errors.md.")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--write", metavar="PATH", help="write the page to PATH")
    group.add_argument("--check", metavar="PATH", help="fail if PATH differs from the registry")
    args = parser.parse_args(argv)
    text = render_markdown()
    if args.write:
        Path(args.write).write_text(text)
        return 0
    path = Path(args.check)
    if not path.exists() or path.read_text() != text:
        print(
            f"{path} is stale: run `make docs` (python -m threefs.errors_doc --write {path})", file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
