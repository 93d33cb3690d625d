"""Golden `--help` texts: the commands, their options and examples, as a user sees them.
Regenerate with `pytest --regen-golden` and review the diff."""

import pytest

COMMANDS = [[], ["size"], ["fit"], ["plan"], ["train"], ["verify"], ["report"], ["check"], ["reconcile"], ["gpus"],
            ["models"], ["recipes"]]


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: " ".join(c) or "fitcalc")
def test_help_is_golden(runner, app, golden, cmd):
    r = runner.invoke(app, [*cmd, "--help"], terminal_width=100, env={"COLUMNS": "100", "TERM": "dumb"})
    assert r.exit_code == 0, r.output
    golden(f"help-{'-'.join(cmd) or 'fitcalc'}.txt", r.stdout)


def test_every_command_has_examples(runner, app):
    import typer.main

    group = typer.main.get_command(app)
    for name, cmd in group.commands.items():
        assert cmd.epilog and "fitcalc" in cmd.epilog, f"`fitcalc {name}` shows no example"
        for p in cmd.params:
            if p.name not in ("help",):
                assert getattr(p, "help", None), f"`fitcalc {name}`: option {p.name} has no help"
