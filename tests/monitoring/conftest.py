"""The generator lives in scripts/monitoring/ (not an installed package): import it from the checkout."""

from __future__ import annotations

import sys

from server_helpers import REPO

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
