"""`python -m client.cli`: the `threefs` command."""

import sys

from client.cli import main

sys.exit(main())
