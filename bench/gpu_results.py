"""results.json of bench/gpu_checks.sh: every part's exit status and time, the tables its log
printed (markdown tables, as bench/train_throughput.py and bench/sat_compare.py print them;
`|`-separated rows under a header), and bench/gpu_quality.py's quality.json.

    python bench/gpu_results.py OUT [QUALITY_JSON]   # reads OUT/parts.tsv and OUT/*.log
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def tables(text: str) -> list[list[dict[str, str]]]:
    """Every markdown table in text, as rows of {header: cell}; the --- row is skipped."""
    found, block = [], []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|") and line.rstrip().endswith("|"):
            block.append([c.strip() for c in line.strip().strip("|").split("|")])
            continue
        rows = [r for r in block[1:] if not all(set(c) <= set("-: ") for c in r)]
        if block and rows:
            found.append([dict(zip(block[0], r, strict=False)) for r in rows])
        block = []
    return found


def main() -> None:
    out = Path(sys.argv[1])
    result: dict = {"date": time.strftime("%Y-%m-%d %H:%M"), "run": {}, "parts": {}}
    status = out / "parts.tsv"
    lines = status.read_text().splitlines() if status.is_file() else []
    for line in lines:
        key, value = line.split("\t", 1)
        if key == "#":  # the run's own lines: mode, device, ...
            name, _, text = value.partition("\t")
            result["run"][name] = text
            continue
        rc, seconds, limit, log = value.split("\t")
        part = {"exit": int(rc), "seconds": int(seconds), "limit_s": int(limit), "log": log}
        result["parts"][key] = part
    for log in sorted(out.glob("*.log")):
        found = tables(log.read_text(errors="replace"))
        if found:
            result.setdefault("tables", {})[log.name] = found
    quality = Path(sys.argv[2]) if len(sys.argv) > 2 else out / "quality.json"
    if quality.is_file():
        result["quality"] = json.loads(quality.read_text())
    (out / "results.json").write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
