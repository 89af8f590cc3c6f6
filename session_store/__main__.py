"""``python -m session_store``: the ``session-store`` command line (see :mod:`session_store.cli`)."""

import sys

from session_store.cli import main

if __name__ == "__main__":
    sys.exit(main())
