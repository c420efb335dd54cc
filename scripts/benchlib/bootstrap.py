"""Run a script under the repository's .venv (made on first use), whatever python started it.

Standard library only: this runs before any dependency is importable.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def ensure_venv(script: str) -> None:
    venv = ROOT / ".venv"
    if Path(sys.prefix).resolve() == venv.resolve():
        return
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"{Path(script).name}: creating .venv and installing simpul into it (once) ...", file=sys.stderr)
        subprocess.check_call([sys.executable, "-m", "venv", str(venv)])
        subprocess.check_call([str(python), "-m", "pip", "install", "-q", "-e", str(ROOT)])
    os.execv(str(python), [str(python), script, *sys.argv[1:]])
