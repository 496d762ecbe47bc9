"""``python -m saga_tui``."""

import sys

from saga_tui.cli import main

sys.exit(main())
