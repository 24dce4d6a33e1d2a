"""Per-notebook execution times from the JUnit XML of an nbval run.

    python bench/notebook_times.py [bench/out/nbval.xml]

nbval reports one test case per cell; this sums them per notebook (the first cell's time includes
starting the kernel). Prints one JSON line per notebook ({"notebook", "seconds", "cells",
"failed"}) and a summary line against the `ci` profile's 60 s per-notebook budget, and writes
them all to notebook_times.json beside the XML. Budgets are watched here, never asserted in tests.
Missing XML (nbval did not run) is reported, not an error.
"""
from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

BUDGET_SECONDS = 60


def notebook_of(case: ET.Element) -> str:
    """The notebook a cell's test case came from.

    With `-o junit_family=xunit1` nbval's cases carry file="chapters/01_x.ipynb"; the default
    (xunit2) has only classname="chapters.01_x.ipynb", which is mapped back to a path.
    """
    if case.get("file"):
        return case.get("file")
    stem = case.get("classname", "").removesuffix(".ipynb")
    return stem.replace(".", "/") + ".ipynb"


def main(path: str = "bench/out/nbval.xml") -> int:
    if not Path(path).exists():
        print(json.dumps({"bench": "notebook_times", "error": f"{path} not found"}))
        return 0
    per = defaultdict(lambda: {"seconds": 0.0, "cells": 0, "failed": 0})
    for case in ET.parse(path).getroot().iter("testcase"):
        row = per[notebook_of(case)]
        row["seconds"] += float(case.get("time", 0))
        row["cells"] += 1
        row["failed"] += any(child.tag in ("failure", "error") for child in case)
    lines = [{"notebook": nb, "seconds": round(r["seconds"], 2), "cells": r["cells"],
              "failed": r["failed"]} for nb, r in sorted(per.items())]
    seconds = [r["seconds"] for r in per.values()]
    lines.append({"bench": "notebook_times",
                  "total_seconds": round(sum(seconds), 1),
                  "max_seconds": round(max(seconds, default=0.0), 1),
                  "budget_seconds": BUDGET_SECONDS,
                  "over_budget": sorted(nb for nb, r in per.items() if r["seconds"] > BUDGET_SECONDS)})
    for line in lines:
        print(json.dumps(line))
    Path(path).with_name("notebook_times.json").write_text(json.dumps(lines, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
