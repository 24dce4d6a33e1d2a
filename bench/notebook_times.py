"""Per-notebook execution times from the JUnit XML of an nbval run.

    python bench/notebook_times.py [bench/out/nbval.xml]

Prints one JSON line per notebook ({"notebook", "seconds", "cells", "failed"}) and a summary
line against the 60 s per-notebook budget of the `ci` profile, and writes them all to
bench/out/notebook_times.json. Budgets are watched here, never asserted in a test.
"""
from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

BUDGET_SECONDS = 60


def notebook_of(case: ET.Element) -> str:
    """nbval names a cell's test case after its notebook: 'chapters/01_x.ipynb::Cell 3'."""
    file = case.get("file") or case.get("classname", "").replace(".", "/")
    return file.split("::")[0]


def main(path: str = "bench/out/nbval.xml") -> int:
    if not Path(path).exists():
        print(json.dumps({"bench": "notebook_times", "error": f"{path} not found"}))
        return 0
    per = defaultdict(lambda: {"seconds": 0.0, "cells": 0, "failed": 0})
    for case in ET.parse(path).getroot().iter("testcase"):
        row = per[notebook_of(case)]
        row["seconds"] += float(case.get("time", 0))
        row["cells"] += 1
        row["failed"] += any(c.tag in ("failure", "error") for c in case)
    lines = [{"notebook": nb, **{k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()}}
             for nb, row in sorted(per.items())]
    lines.append({"bench": "notebook_times", "budget_seconds": BUDGET_SECONDS,
                  "total_seconds": round(sum(r["seconds"] for r in per.values()), 1),
                  "max_seconds": round(max((r["seconds"] for r in per.values()), default=0.0), 1),
                  "over_budget": [nb for nb, r in per.items() if r["seconds"] > BUDGET_SECONDS]})
    for line in lines:
        print(json.dumps(line))
    out = Path(path).with_name("notebook_times.json")
    out.write_text(json.dumps(lines, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
