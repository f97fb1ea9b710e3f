"""`python -m benchmarks [NAME ...]`: run every benchmark (or the named ones), print a table and save JSON
(merged into runs/bench/results.json: a benchmark that did not run keeps its previous entry)."""

from __future__ import annotations

import importlib
import json
import pkgutil
import sys
import time
from pathlib import Path

import benchmarks
from blitzmask_deploy.core.openmp import set_openmp_wait_policy

OUT = Path("runs/bench/results.json")


def main(argv: list[str]) -> int:
    names = sorted(m.name for m in pkgutil.iter_modules(benchmarks.__path__) if m.name.startswith("bench_"))
    wanted = [n if n.startswith("bench_") else f"bench_{n}" for n in argv] or names
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        print(f"error: unknown benchmark {', '.join(unknown)} (have {', '.join(names)})", file=sys.stderr)
        return 2
    set_openmp_wait_policy()  # as every blitzmask command: the figures are the CLI's
    results: dict[str, dict] = {}
    for name in wanted:
        print(f"== {name}", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        results[name] = importlib.import_module(f"benchmarks.{name}").run()
        results[name]["bench_wall_s"] = round(time.perf_counter() - t0, 2)
        for key, value in results[name].items():
            print(f"  {key:<40} {value}", file=sys.stderr)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    saved = _previous()
    saved.update(results)  # running some benchmarks keeps the others' last figures
    OUT.write_text(json.dumps(saved, indent=2))
    print(json.dumps(results, indent=2))
    print(f"saved {OUT}", file=sys.stderr)
    return 0


def _previous() -> dict:
    """The saved results, or {} when there are none or the file is not a JSON object."""
    try:
        saved = json.loads(OUT.read_text())
    except (OSError, ValueError):
        return {}
    return saved if isinstance(saved, dict) else {}


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
