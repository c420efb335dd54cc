"""Where the sample federation and complaints are read from.

The project's sample (the hub, four districts and forty complaints in
Indonesian, each with its expected routing) lives in ``../shared/data`` next
to the repository. A copy ships in ``node/sample_data``, so that the demo, the
benchmarks and the tests also run from a clone or an installed package that
has no ``../shared`` beside it: a CI machine's fresh clone, for one. Without
the fallback, every test that reads the sample skipped itself there, and the
suite still passed. ``SIMPUL_SHARED_DATA`` names another folder of the same
shape; one without the sample is an error here, so that nothing that reads
the sample (the demo, the bench, the tests) has to check for it again.
tests/unit/test_samples.py checks that the copy matches the original wherever
both are present.
"""
from __future__ import annotations

import os
from pathlib import Path

from node.errors import ConfigError

FILES = ("federation.json", "complaints.jsonl")
BUNDLED = Path(__file__).resolve().parent / "sample_data"
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _whole(folder: Path) -> bool:
    return all((folder / name).is_file() for name in FILES)


def sample_dir() -> Path:
    """$SIMPUL_SHARED_DATA, else ../shared/data next to the repository, else the bundled copy."""
    named = os.environ.get("SIMPUL_SHARED_DATA")
    if named:
        if not _whole(Path(named)):
            raise ConfigError(f"SIMPUL_SHARED_DATA: {named} does not hold the sample ({' and '.join(FILES)})")
        return Path(named)
    return SHARED if _whole(SHARED) else BUNDLED
