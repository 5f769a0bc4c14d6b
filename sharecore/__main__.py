"""`python -m sharecore ...`: see sharecore/cli.py."""

import sys

from sharecore.cli import main

sys.exit(main())
