"""Write docs/report-spec.schema.json from the pydantic model of a report spec.

tests/report/test_spec.py::test_schema_in_docs_is_current fails when the file is out of date.

    python scripts/export_report_schema.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's fitcalc, not an installed one


def main() -> None:
    from fitcalc.core.report.spec import report_spec_schema

    out = ROOT / "docs" / "report-spec.schema.json"
    out.write_text(json.dumps(report_spec_schema(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
