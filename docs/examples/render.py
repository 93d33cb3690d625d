"""Regenerate the rendered examples: each spec here -> <name>.md and <name>.html beside it.

    python docs/examples/render.py              # every *.yaml spec in docs/examples/
    python docs/examples/render.py seed-sweep   # just one

Run from anywhere; the reports name their spec by its path from the repository root. A spec whose
models or GPUs are not in this checkout's catalogs is reported and skipped (exit 1), and its old
renderings are left as they are.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's fitcalc, not an installed one


def main(names: list[str]) -> int:
    from fitcalc import api
    from fitcalc.core.errors import FitcalcError
    from fitcalc.edges.report.output import write_atomic
    from fitcalc.edges.report.writers import render

    os.chdir(ROOT)
    specs = [HERE / f"{n.removesuffix('.yaml')}.yaml" for n in names] or sorted(HERE.glob("*.yaml"))
    failed = 0
    for spec in specs:
        rel = spec.relative_to(ROOT)
        try:
            rep = api.report(str(rel))
            for fmt in ("md", "html"):
                out = spec.with_suffix(f".{fmt}")
                write_atomic(out, render(rep, fmt))
                print(f"wrote {out.relative_to(ROOT)} ({len(rep.scenarios)} scenarios, {len(rep.training)} training)")
        except FitcalcError as e:
            failed += 1
            print(f"skipped {rel}: {e.one_line()}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
