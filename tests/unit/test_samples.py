"""node.samples: the sample data is found from any clone, and the shipped copy is the original."""
import json

import pytest

from node import samples
from node.errors import ConfigError


def test_the_shipped_copy_is_a_whole_sample():
    federation = json.loads((samples.BUNDLED / "federation.json").read_text(encoding="utf-8"))
    lines = (samples.BUNDLED / "complaints.jsonl").read_text(encoding="utf-8").splitlines()
    assert [n["node_id"] for n in federation["nodes"] if n.get("role") == "hub"] == ["nasional"]
    assert len([line for line in lines if line.strip()]) == 40


@pytest.mark.parametrize("name", ["federation.json", "complaints.jsonl"])
def test_the_shipped_copy_matches_the_original_where_both_are_present(name):
    if not (samples.SHARED / name).is_file():
        pytest.skip(f"no original beside this clone ({samples.SHARED}): nothing to compare")
    assert (samples.BUNDLED / name).read_bytes() == (samples.SHARED / name).read_bytes()


def test_without_the_original_the_shipped_copy_is_used(monkeypatch, tmp_path):
    monkeypatch.delenv("SIMPUL_SHARED_DATA", raising=False)
    monkeypatch.setattr(samples, "SHARED", tmp_path / "no-shared" / "data")
    assert samples.sample_dir() == samples.BUNDLED


def _sample_in(folder):
    folder.mkdir(parents=True, exist_ok=True)
    for name in samples.FILES:
        (folder / name).write_text("{}")
    return folder


def test_the_original_is_preferred_and_the_environment_beats_both(monkeypatch, tmp_path):
    monkeypatch.delenv("SIMPUL_SHARED_DATA", raising=False)
    _sample_in(tmp_path)
    monkeypatch.setattr(samples, "SHARED", tmp_path)
    assert samples.sample_dir() == tmp_path
    monkeypatch.setenv("SIMPUL_SHARED_DATA", str(_sample_in(tmp_path / "elsewhere")))
    assert samples.sample_dir() == tmp_path / "elsewhere"


def test_an_original_without_the_complaints_is_passed_over(monkeypatch, tmp_path):
    monkeypatch.delenv("SIMPUL_SHARED_DATA", raising=False)
    (tmp_path / "federation.json").write_text("{}")
    monkeypatch.setattr(samples, "SHARED", tmp_path)
    assert samples.sample_dir() == samples.BUNDLED


def test_an_environment_naming_a_folder_without_the_sample_is_a_config_error(monkeypatch, tmp_path):
    monkeypatch.setenv("SIMPUL_SHARED_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match="SIMPUL_SHARED_DATA: .*nowhere does not hold the sample"):
        samples.sample_dir()
