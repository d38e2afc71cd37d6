"""``python -m ddastate.cli``: the same as the ``ddastate`` command."""

import sys

from ddastate.cli import main

sys.exit(main())
