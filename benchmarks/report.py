"""Print the committed results (benchmarks/results/*.json) as the Markdown the README quotes:
``python -m benchmarks.report`` (each database's table, then measured against target)."""

import json
import sys
from pathlib import Path

from .run import RESULTS, markdown, summary


def main(paths: list[str]) -> int:
    files = [Path(p) for p in paths] or sorted(RESULTS.glob("*.json"))
    results = [json.loads(path.read_text()) for path in files if not path.name.endswith(".tmp.json")]
    results = [r for r in results if "load" in r]  # written by this version of benchmarks.run
    for result in results:
        print(markdown(result))
    if results:
        print(summary(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
