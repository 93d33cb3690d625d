"""`fitcalc check --junit OUT.xml`: assertions as JUnit XML test cases, for CI systems. EDGE.

One ``<testsuite>`` per assertion source (``assert``, each named scenario's, each check) and one
``<testcase>`` per (scenario, assertion): ``classname`` is the source, ``name`` the scenario and the
assertion. A failed assertion carries ``<failure>``; one that could not be evaluated carries
``<error>`` (the number is not available), so CI shows it as broken rather than green.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from fitcalc.core.report.result import Report


# Characters XML 1.0 does not allow anywhere, not even escaped (its Char production): C0 controls
# other than tab, newline and carriage return, lone surrogates, U+FFFE and U+FFFF. ElementTree
# writes them as they are, and a CI's XML parser then rejects the whole file (issue #17).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml_safe(text: str) -> str:
    """``text`` with each character XML cannot hold written as ``\\xNN`` / ``\\uNNNN`` (visible, reversible)."""
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 256 else f"\\u{ord(m.group()):04x}",
                        text)


def render_junit(report: Report, extra_output: list[str] | None = None) -> str:
    root = ET.Element("testsuites", name="fitcalc check")
    suites: dict[str, ET.Element] = {}
    counts: dict[str, dict[str, int]] = {}
    for a in report.assertions:
        suite = suites.get(a.source)
        if suite is None:
            suite = suites[a.source] = ET.SubElement(root, "testsuite", name=a.source)
            counts[a.source] = {"tests": 0, "failures": 0, "errors": 0}
        c = counts[a.source]
        c["tests"] += 1
        case = ET.SubElement(suite, "testcase", classname=a.source, name=f"{a.scenario}: {a.assertion}", time="0")
        if a.status == "fail":
            c["failures"] += 1
            ET.SubElement(case, "failure", message=a.message, type=a.assertion).text = a.line()
        elif a.status == "unavailable":
            c["errors"] += 1
            ET.SubElement(case, "error", message=a.message, type="not available").text = a.line()
        else:
            ET.SubElement(case, "system-out").text = a.message
    total = {"tests": 0, "failures": 0, "errors": 0}
    for name, suite in suites.items():
        for k, v in counts[name].items():
            suite.set(k, str(v))
            total[k] += v
    for k, v in total.items():
        root.set(k, str(v))
    if extra_output and suites:  # e.g. the baseline's lines; JUnit puts system-out after a suite's cases
        ET.SubElement(next(iter(suites.values())), "system-out").text = "\n".join(extra_output)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + _xml_safe(ET.tostring(root, encoding="unicode")) + "\n"
