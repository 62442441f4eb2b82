"""How benchmarks print their figures: one JSON object per line on stdout."""

from __future__ import annotations

import json
import sys
from typing import Any


def report(suite: str, name: str, value: float, unit: str, **extra: Any) -> None:
    """Print one figure as a JSON line."""
    line = {"suite": suite, "figure": name, "value": round(value, 3), "unit": unit, **extra}
    print(json.dumps(line, sort_keys=False), file=sys.stdout, flush=True)
