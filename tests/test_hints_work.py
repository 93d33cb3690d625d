"""Every hint works when followed (issue #16, point 3): each case runs the command a new user typed,
takes the value or option the error line suggests, runs the command again with it, and expects a
plain answer (exit 0). The suggested value is read from the printed line, not from the code."""

import re

import pytest

# (the command as typed, the option whose value the hint replaces, the hint's pattern that yields
# the new value; None = the hint adds an option rather than replacing one)
CASES = [
    # count written after the name: 4090:2 works, 2:4090 does not
    (["fit", "gpt-oss-20b", "--gpu", "4090x2"], "--gpu", r"write --gpu (\S+)"),
    (["fit", "gpt-oss-20b", "--gpu", "8xh100"], "--gpu", r"write --gpu (\S+)"),
    # "4060ti" looks like a size with an unknown unit; it is a card
    (["fit", "gpt-oss-20b", "--gpu", "4060ti"], "--gpu", r"write --gpu (\S+);"),
    (["fit", "gpt-oss-20b", "--gpu", "rtx 4009"], "--gpu", r"write --gpu (\S+);"),
    # a card's label: the card the hint names, then each raw-budget spelling it offers
    (["fit", "gpt-oss-20b", "--gpu", "80GB"], "--gpu", r"write --gpu (\S+) for the card"),
    (["fit", "gpt-oss-20b", "--gpu", "80GB"], "--gpu", r"raw budget as --gpu (\S+) "),
    (["fit", "gpt-oss-20b", "--gpu", "80GB"], "--gpu", r"or --gpu (\S+) \(80x2\^30"),
    (["plan", "gpt-oss-20b", "--gpu", "24GB:2"], "--gpu", r"write --gpu (\S+) for the card"),
    # an engine that does not exist: the hint lists the ones that do (no `fitcalc engines`)
    (["fit", "gpt-oss-20b", "--gpu", "rtx-4090", "--engine", "lmstudio"], "--engine", r"one of: ([^,)]+)"),
    # a Hub id one typo from a bundled one: the bundled id, before any network request
    (["size", "openai/gpt-oss-21b"], 1, r"did you mean: ([^,?]+)"),
]


def _followed(args: list[str], where, value: str) -> list[str]:
    out = list(args)
    if isinstance(where, int):
        out[where] = value
    else:
        out[out.index(where) + 1] = value
    return out


@pytest.mark.parametrize("args,where,pattern", CASES, ids=lambda x: x if isinstance(x, str) else None)
def test_hint_followed_gives_an_answer(runner, app, args, where, pattern, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # nothing here may need the network
    first = runner.invoke(app, args, terminal_width=200)
    assert first.exit_code == 1, first.output
    line = first.stderr.strip()
    assert line.count("\n") == 0 and line.startswith("error: "), line
    m = re.search(pattern, line)
    assert m, line
    again = runner.invoke(app, _followed(args, where, m.group(1).strip()), terminal_width=200)
    assert again.exit_code == 0, (line, again.output)


def test_hub_near_miss_names_the_way_to_read_it_as_typed(runner, app, monkeypatch, tmp_path):
    # the hint's --source hub goes to the Hub (here: offline, an empty cache), not to the bundled spec
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    r = runner.invoke(app, ["size", "openai/gpt-oss-21b"])
    assert "add --source hub" in r.stderr
    r = runner.invoke(app, ["size", "openai/gpt-oss-21b", "--source", "hub"])
    assert r.exit_code == 1 and "offline" in r.stderr and "did you mean" not in r.stderr
