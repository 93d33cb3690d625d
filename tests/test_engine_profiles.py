"""Engine profiles: every constant in a profile is covered by one of its sources."""

import pytest

from fitcalc.edges.catalog import engine_ids, load_engine

# Fields that are names or switches of the file itself, not numbers taken from outside.
NOT_CONSTANTS = {"schema_version", "id", "display_name", "version", "aliases", "description", "sources", "flags",
                 "flag_values", "gguf_native",
                "settings"}  # settings: the names of the knobs a user may --set


def leaves(data, prefix=""):
    if isinstance(data, dict):
        for k, v in data.items():
            yield from leaves(v, f"{prefix}.{k}" if prefix else k)
    else:
        yield prefix


@pytest.mark.parametrize("engine_id", engine_ids())
def test_every_constant_has_a_source(engine_id):
    import yaml

    from fitcalc.edges.catalog import data_dir

    raw = yaml.safe_load((data_dir("engine_profiles") / f"{engine_id}.yaml").read_text())
    covered = {f for s in raw["sources"] for f in s.get("fields", [])}
    missing = []
    for path in leaves({k: v for k, v in raw.items() if k not in NOT_CONSTANTS}):
        if path.endswith("_name"):  # how the engine spells a knob, not a value
            continue
        parts = path.split(".")
        if not any(".".join(parts[:i]) in covered for i in range(1, len(parts) + 1)):
            missing.append(path)
    assert not missing, f"{engine_id}: no source covers {missing}"


@pytest.mark.parametrize("engine_id", engine_ids())
def test_profiles_load(engine_id):
    e = load_engine(engine_id)
    assert e.id == engine_id
