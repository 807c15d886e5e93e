"""``python -m bot`` runs the ``reclambot`` command."""

import sys

from bot.cli import main

sys.exit(main())
