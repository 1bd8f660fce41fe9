"""Send a script's stderr (and warnings, progress bars) to the rule's log file."""

from __future__ import annotations

import sys
from typing import Any


def redirect_stderr(snakemake: Any) -> None:
    if snakemake.log:
        sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: SIM115
