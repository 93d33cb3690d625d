import pytest
import yaml

from tests.archs import llama_3_1_8b


@pytest.fixture(autouse=True)
def _no_real_home(tmp_path, monkeypatch):
    """Nothing here may read or write the user's real data directory."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("FITCALC_CALIBRATION", raising=False)
    monkeypatch.delenv("FITCALC_CALIBRATED", raising=False)


@pytest.fixture
def write_log(tmp_path):
    def write(text: str, name: str = "engine.log") -> str:
        p = tmp_path / name
        p.write_text(text, encoding="utf-8")
        return str(p)

    return write


@pytest.fixture
def llama_spec(tmp_path) -> str:
    """Llama-3.1-8B (tests/archs.py, from its config.json) as a spec YAML, for --model."""
    p = tmp_path / "llama-3.1-8b.yaml"
    p.write_text(yaml.safe_dump(llama_3_1_8b().model_dump(mode="json", exclude_none=True)), encoding="utf-8")
    return str(p)
