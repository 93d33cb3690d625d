"""What grew or shrank since a previous report: hand-made old and new numbers."""

import pytest

from fitcalc.core.errors import InputError
from fitcalc.core.estimate.terms import make_term
from fitcalc.core.report.baseline import compare, delta_line, diff_lines
from tests.report.test_checks import fit, scenario

GiB = 2**30


def with_terms(name: str, terms: dict[str, int], available: int = 24 * GiB, max_context: int | None = 65536):
    f = fit(sum(terms.values()), available, max_context)
    f = f.model_copy(update={"terms": [make_term(i, i, b) for i, b in terms.items()]})
    return scenario(name, f)


def old_doc(*rows):
    return {"scenarios": [{"name": n, "required_bytes": sum(t.values()), "max_context": mc, "verdict": v,
                           "terms": [{"id": i, "bytes": b} for i, b in t.items()]} for n, t, mc, v in rows]}


def test_shrink_new_term_and_verdict_change():
    old = old_doc(("a", {"weights.experts": 10 * GiB, "kv.full": GiB}, 65536, "fits"),
                  ("b", {"weights.experts": 30 * GiB}, None, "does not fit"),
                  ("gone", {"weights.experts": GiB}, 1024, "fits"))
    new = [with_terms("a", {"weights.experts": 9 * GiB, "kv.full": GiB, "act.logits": GiB // 2}),
           with_terms("b", {"weights.experts": 20 * GiB}),
           with_terms("same", {"weights.experts": GiB})]
    d = compare(old, new)
    assert [x.scenario for x in d.shrank] == ["a", "b"] and d.grew == []
    a = d.changed[0]
    # 10 + 1 GiB before, 9 + 1 + 0.5 GiB after: -0.5 GiB; experts -1 GiB, logits +0.5 GiB (absent before)
    assert a.delta_bytes == -(GiB // 2)
    assert [(t.id, t.old_bytes, t.new_bytes) for t in a.terms] == [
        ("weights.experts", 10 * GiB, 9 * GiB), ("act.logits", 0, GiB // 2)]
    assert delta_line(a) == ("shrank a: required 11.00 GiB -> 10.50 GiB (-512.00 MiB, -4.55%); "
                             "weights.experts -1.00 GiB; act.logits +512.00 MiB")
    assert "verdict does not fit -> fits" in delta_line(d.changed[1])
    assert "max context none -> 65,536" in delta_line(d.changed[1])
    assert d.new == ["same"] and d.gone == ["gone"] and d.unchanged == 0
    assert diff_lines(d, "old.json")[0] == ("baseline old.json: 0 grew, 2 shrank, 0 changed in context or verdict "
                                            "only, 0 unchanged, 1 new, 1 gone")


def test_unchanged_scenarios_are_counted_not_listed():
    old = old_doc(("a", {"weights.experts": GiB}, 65536, "fits"))
    d = compare(old, [with_terms("a", {"weights.experts": GiB})])
    assert d.changed == [] and d.unchanged == 1


@pytest.mark.parametrize("doc", [[], {"scenarios": "x"}, {"scenarios": [{"name": "a"}]}, {"other": 1}])
def test_a_baseline_that_is_not_a_report(doc):
    with pytest.raises(InputError, match="baseline"):
        compare(doc, [])
