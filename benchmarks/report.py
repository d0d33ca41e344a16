"""Print the committed results (benchmarks/results/*.json) as the Markdown tables the README
quotes: ``python -m benchmarks.report``."""

import json
import sys
from pathlib import Path

from .run import RESULTS, table


def main(paths: list[str]) -> int:
    files = [Path(p) for p in paths] or sorted(RESULTS.glob("*.json"))
    for path in files:
        if path.name.endswith(".tmp.json"):
            continue
        result = json.loads(path.read_text())
        print(f"**{result['database']}** ({result['date']}, commit {result['commit']}, "
              f"{result['seconds']:.0f} s in all)\n")
        print(table(result))
        missed = [name for name, target in result["targets"].items() if not target["met"]]
        print(f"\nTargets missed: {', '.join(missed) if missed else 'none'}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
