"""Run `fitcalc reconcile` on the real engine logs of benchmarks/reference_logs (index.yaml) and
print how far fitcalc is from what each log states: per engine and figure kind, the median and the
worst absolute error, separately for the logs an engine model may be fitted on (split: fit) and the
held-out ones; and how many logs reconcile with nothing, with `--gpu` alone, or only with the
`--model`/`--set` the post states. A benchmark, not a test: it prints figures, it asserts nothing.

    python benchmarks/reconcile_reference_logs.py              # summary tables (markdown)
    python benchmarks/reconcile_reference_logs.py --per-log    # also each log, figure by figure
    python benchmarks/reconcile_reference_logs.py --write      # replace the section in docs/validation.md

Each log is reconciled with what the log or its post states: the card the post names (`gpu:`/
`device:` in the index), the model it names and the `settings:` it states; the errors are those of
that run. Apart from it, the log is reconciled with nothing, then with the card alone: the first of
these that reconciles is counted (a reconcile that runs on defaults it had to assume still counts).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fitcalc import api  # noqa: E402
from fitcalc.core.errors import FitcalcError  # noqa: E402
from fitcalc.core.spec import Device  # noqa: E402
from fitcalc.core.units import format_bytes  # noqa: E402

LOGS = ROOT / "benchmarks" / "reference_logs"
DOC = ROOT / "docs" / "validation.md"
BEGIN, END = "<!-- engine-logs:begin -->", "<!-- engine-logs:end -->"
LEVELS = ("nothing", "--gpu alone", "--gpu, --model and the post's --set")

# fitcalc row ids -> the figure kinds of the summary (compare.FIGURE_TERMS names the ids).
KINDS = {"weights.*": "weights", "kv.*": "KV buffers", "kv.full": "KV buffers", "kv.sliding": "KV buffers",
         "kv_capacity_bytes": "KV capacity (bytes)", "kv_capacity_tokens": "KV capacity (tokens)",
         "act.compute_buffer": "compute buffers / activations", "act.*": "compute buffers / activations",
         "act.host_output": "output buffer", "overhead.cuda_graphs": "graph memory",
         "overhead.non_torch": "overheads", "weights.*+act.*": "overheads"}


def load_index() -> list[dict]:
    return yaml.safe_load((LOGS / "index.yaml").read_text(encoding="utf-8"))["logs"]


def _device(entry: dict) -> Device | None:
    if not entry.get("device"):
        return None
    d = dict(entry["device"])
    d.pop("source", None)
    return Device(**d)


def _model(entry: dict) -> str:
    model = entry["model"]
    return str(LOGS / model) if model.endswith(".yaml") else model


def attempts(entry: dict) -> list[dict]:
    """The reconcile calls tried in order: the log alone, + the card, + the model and settings."""
    log = str(LOGS / entry["file"])
    card = {"gpu": entry.get("gpu"), "device": _device(entry)}
    return [{"log": log},
            {"log": log, **card},
            {"log": log, **card, "model": _model(entry), "overrides": entry.get("settings")}]


def reconcile_entry(entry: dict):
    """(level, result, error): the result with every flag the log or post states (what the error
    table is made of), and the fewest of them reconcile needs (the first attempt that reconciles)."""
    tries = attempts(entry)
    try:
        result, error = api.reconcile(**tries[-1]), None
    except FitcalcError as e:
        return None, None, str(e)
    for level, kwargs in enumerate(tries[:-1]):
        if level == 1 and not (kwargs.get("gpu") or kwargs.get("device")):
            continue
        try:
            api.reconcile(**kwargs)
            return level, result, error
        except FitcalcError:
            continue
    return len(tries) - 1, result, error


def errors_of(result) -> list[tuple[str, float]]:
    """(figure kind, |residual| in %) of each row fitcalc predicts (engine estimates left out)."""
    out = []
    for row in result.rows:
        if row.engine_estimate or row.diff_pct is None or row.id not in KINDS:
            continue
        out.append((KINDS[row.id], abs(row.diff_pct)))
    return out


def collect(index: list[dict]) -> tuple[list[dict], dict]:
    runs, table = [], {}
    for entry in index:
        level, result, error = reconcile_entry(entry)
        runs.append({"entry": entry, "level": level, "result": result, "error": error})
        if result is None:
            continue
        for kind, err in errors_of(result):
            table.setdefault((entry["split"], entry["engine"], kind), []).append((err, entry["id"]))
    return runs, table


def summary(runs: list[dict], table: dict) -> list[str]:
    out = ["| split | engine | figure | n | median abs. error | worst (log) |", "| --- | --- | --- | --- | --- | --- |"]
    for (split, engine, kind) in sorted(table):
        errs = table[(split, engine, kind)]
        worst = max(errs)
        out.append(f"| {split} | {engine} | {kind} | {len(errs)} | {statistics.median(e for e, _ in errs):.1f} % | "
                   f"{worst[0]:.1f} % ({worst[1]}) |")
    counts = [sum(1 for r in runs if r["level"] == i) for i in range(len(LEVELS))]
    failed = [r for r in runs if r["level"] is None]
    out += ["", f"{len(runs)} logs: {counts[0] + counts[1]} reconcile with --gpu alone or nothing ("
            + ", ".join(f"{n} with {what}" for n, what in zip(counts, LEVELS)) + f"); {len(failed)} not reconciled."]
    out += [f"- not reconciled: {r['entry']['id']}: {r['error']}" for r in failed]
    return out


def _amount(row, which: str) -> str:
    if row.unit == "tokens":
        v = row.logged_tokens if which == "logged" else row.predicted_tokens
        return "—" if v is None else f"{v:,} tokens"
    v = row.logged_bytes if which == "logged" else row.predicted_bytes
    return "—" if v is None else f"{format_bytes(v, 'iec', 2)} ({v:,} B)"


def _residual(row) -> str:
    if row.diff is None:
        return "not modelled"
    amount = f"{row.diff:+,} tokens" if row.unit == "tokens" else (
        ("+" if row.diff >= 0 else "−") + format_bytes(abs(row.diff), "iec", 2))
    pct = f"{row.diff_pct:+.1f}%" if row.diff_pct is not None else ""
    return f"{amount} ({pct})" + (", within print rounding" if row.within_rounding else "")


def per_log(run: dict) -> list[str]:
    entry, r = run["entry"], run["result"]
    out = [f"### {entry['title']}", "", f"Source: {entry['source']} ({entry['kind']}, {entry['split']})."]
    if r is None:
        return out + ["", f"Not reconciled: {run['error']}", ""]
    out[-1] += (f" Reconciles with {LEVELS[run['level']]}; shown with every stated flag. fitcalc: engine profile `{r.engine_profile}`, model "
                f"`{r.model}`, recipe `{r.recipe}`, {r.device}, context {r.context:,}, batch {r.batch}, TP {r.tp}, "
                f"KV {r.kv_dtype}.")
    out += ["", "| figure | device | logged | fitcalc | residual | fitcalc term |", "| --- | --- | --- | --- | --- | --- |"]
    for row in r.rows:
        mark = " †" if not row.calibratable and row.id else ""
        dev = row.device or ("per GPU" if r.engine == "vllm" else "—")
        out.append(f"| {row.label}{mark} | {dev} | {_amount(row, 'logged')} | {_amount(row, 'predicted')} | "
                   f"{_residual(row)} | `{row.id or '—'}` |")
    extra = [f"assumed: {a}" for a in r.assumptions] + [f"warning: {w}" for w in r.warnings] + r.notes
    return out + ([""] + [f"- {x}" for x in extra] if extra else []) + [""]


def section(with_logs: bool = True) -> str:
    runs, table = collect(load_index())
    out = [BEGIN, "## Engine logs", "",
           "Generated by `python benchmarks/reconcile_reference_logs.py --write` from the logs in",
           "`benchmarks/reference_logs/` (sources in its `index.yaml`). Error = |fitcalc − logged| in percent",
           "of the logged figure, for each figure fitcalc predicts (Ollama's own estimates left out).", ""]
    out += summary(runs, table) + [""]
    if with_logs:
        for run in runs:
            out += per_log(run)
    out.append(END)
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help=f"replace the section in {DOC.relative_to(ROOT)}")
    ap.add_argument("--per-log", action="store_true", help="print each log figure by figure too")
    args = ap.parse_args()
    text = section(with_logs=args.per_log or args.write)
    if not args.write:
        sys.stdout.write(text)
        return
    doc = DOC.read_text(encoding="utf-8") if DOC.exists() else "# Validation\n\n"
    if BEGIN in doc and END in doc:
        head, rest = doc.split(BEGIN, 1)
        tail = rest.split(END, 1)[1].lstrip("\n")
        doc = head + text + ("\n" + tail if tail else "")
    else:
        doc = doc.rstrip("\n") + "\n\n" + text
    DOC.write_text(doc, encoding="utf-8")
    print(f"wrote {DOC.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
