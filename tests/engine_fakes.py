"""Fake engine executables for tests: `vllm`, `llama-server`, `ollama` and `python -m sglang...`
that accept exactly the arguments tests/data/engine_args.yaml lists (read from each engine's
source) and exit 1 with the reason otherwise. ``install(dir)`` writes them; a test puts ``dir``
first on PATH and runs a plan's paste-ready lines through bash."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import yaml

ARGS_FILE = Path(__file__).parent / "data" / "engine_args.yaml"

_FAKE = r'''#!{python}
import os, sys, yaml
spec = yaml.safe_load(open({args_file!r}))
state = {state!r}
argv = sys.argv[1:]
name = os.path.basename(sys.argv[0])

def fail(msg):
    print(f"{{name}}: {{msg}}", file=sys.stderr)
    sys.exit(1)

def check_value(flag, kind, value):
    if isinstance(kind, list):
        if value not in kind:
            fail(f"{{flag}} {{value!r}}: not one of {{kind}}")
    elif kind == "int":
        if not value.isdigit():
            fail(f"{{flag}} {{value!r}}: not an int")
    elif kind == "float":
        try:
            float(value)
        except ValueError:
            fail(f"{{flag}} {{value!r}}: not a float")

def check_flags(engine, args):
    flags = spec[engine]["flags"]
    i = 0
    while i < len(args):
        f = args[i]
        if f not in flags:
            fail(f"unknown argument {{f}}")
        if flags[f] == "switch":
            i += 1
            continue
        if i + 1 >= len(args):
            fail(f"{{f}} needs a value")
        check_value(f, flags[f], args[i + 1])
        i += 2

if name == "vllm":
    if not argv or argv[0] != "serve" or len(argv) < 2 or argv[1].startswith("-"):
        fail("usage: vllm serve MODEL [flags]")
    check_flags("vllm", argv[2:])
elif name == "llama-server":
    if "-m" not in argv:
        fail("no -m MODEL")
    check_flags("llama.cpp", argv)
elif name == "python":
    if argv[:2] != ["-m", "sglang.launch_server"]:
        fail("expected -m sglang.launch_server")
    check_flags("sglang", argv[2:])
elif name == "ollama":
    o = spec["ollama"]
    if argv == ["serve"]:
        for k, v in os.environ.items():
            if k.startswith("OLLAMA_"):
                if k not in o["env"]:
                    fail(f"unknown environment variable {{k}}")
                if v not in o.get("env_values", {{}}).get(k, [v]):
                    fail(f"{{k}}={{v}}: not one of {{o['env_values'][k]}}")
    elif len(argv) == 4 and argv[0] == "create" and argv[2] == "-f":
        lines = [l.strip() for l in open(argv[3]) if l.strip()]
        if not lines or not lines[0].startswith("FROM "):
            fail("a Modelfile starts with FROM")
        for l in lines[1:]:
            word, key, value = (l.split(None, 2) + ["", ""])[:3]
            if word != "PARAMETER" or key not in o["parameters"] or not value:
                fail(f"Modelfile line {{l!r}}")
        open(os.path.join(state, "created-" + argv[1]), "w").close()
    elif len(argv) == 2 and argv[0] == "run":
        if ":" not in argv[1] and not os.path.exists(os.path.join(state, "created-" + argv[1])):
            fail(f"model {{argv[1]!r}} not found")
    else:
        fail(f"usage: {{argv}}")
else:
    fail("not a fake engine")
'''


def install(directory: Path) -> Path:
    """Write the fakes into ``directory`` (and a state folder beside them); return ``directory``."""
    state = directory / "state"
    state.mkdir(parents=True, exist_ok=True)
    text = _FAKE.format(python=sys.executable, args_file=str(ARGS_FILE), state=str(state))
    for name in ("vllm", "llama-server", "ollama", "python"):
        p = directory / name
        p.write_text(text)
        p.chmod(0o755)
    return directory


def run_env(directory: Path) -> dict[str, str]:
    """A clean environment: the fakes first on PATH, no OLLAMA_* inherited."""
    return {"PATH": f"{directory}{os.pathsep}/usr/bin{os.pathsep}/bin", "HOME": str(directory)}
