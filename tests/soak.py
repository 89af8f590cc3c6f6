"""Sizes for the long-running suites: a bounded sample in the default test run, the long variant under soak.

``nox -s soak`` sets ``SESSION_STORE_SOAK=1``. Tests that scale (sweeps, load, properties) take their sizes from
:func:`scaled`; tests that only make sense as long runs carry ``@pytest.mark.soak`` and are skipped otherwise
(the skip reason names the session that runs them).
"""

from __future__ import annotations

import os

SOAK_ENV = "SESSION_STORE_SOAK"
SOAK = os.environ.get(SOAK_ENV) == "1"


def scaled(default_run: int, soak: int) -> int:
    """``soak`` under ``nox -s soak``, ``default_run`` in the ordinary test run."""
    return soak if SOAK else default_run
