"""How long tests wait for a condition before they give up.

Every deadline a test gives is stretched by ``PATIENCE``: the figure written in a test is what a
quiet machine needs with room to spare, and a CI machine at a load of 20 on two cores has been
seen to need three times that. A passing test never waits for its deadline, so patience costs
only failing runs (``PROVISIOND_TEST_PATIENCE`` sets it).
"""

from __future__ import annotations

import os

PATIENCE = float(os.environ.get("PROVISIOND_TEST_PATIENCE", "3"))
