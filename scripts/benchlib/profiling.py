"""Optional sampling profiles of running node processes with py-spy (``--profile DIR``).

py-spy is not a dependency of simpul: ``.venv/bin/pip install py-spy`` to use
it. It records collapsed stacks ("raw" format: ``frame;frame;... count``); the
summary lists the frames where the samples sit (self) and the frames most
samples pass through (total), which is what names a bottleneck.
"""
from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path


def py_spy() -> str | None:
    local = Path(sys.executable).with_name("py-spy")
    return str(local) if local.exists() else shutil.which("py-spy")


class Recorder:
    def __init__(self, out_dir: Path):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.procs: dict[str, tuple[subprocess.Popen, Path]] = {}
        self.exe = py_spy()
        if self.exe is None:
            raise SystemExit("--profile needs py-spy: .venv/bin/pip install py-spy")

    def start(self, label: str, pid: int) -> None:
        out = self.out_dir / f"{label}.txt"
        # --gil: sample only the thread holding the GIL, i.e. where a GIL-bound process spends its one core
        cmd = [self.exe, "record", "--pid", str(pid), "--format", "raw", "--rate", "200", "--output", str(out),
               "--nonblocking", "--gil"]
        self.procs[label] = (subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), out)

    def stop(self) -> dict[str, dict]:
        summaries = {}
        for label, (proc, out) in self.procs.items():
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if out.exists():
                summaries[label] = summarise(out)
        self.procs.clear()
        return summaries


def _short(frame: str) -> str:
    # py-spy frames look like "fn (path/to/file.py:123)"; keep the function and file tail
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]   # one entry per function, not per line
    parts = where.split("/")
    tail = "/".join(parts[-2:]) if len(parts) > 1 else where
    return f"{name} ({tail})"


def summarise(path: Path, top: int = 15) -> dict:
    self_c, total_c = Counter(), Counter()
    samples = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_short(f) for f in stack.split(";")]
        samples += n
        self_c[frames[-1]] += n
        for f in set(frames):
            total_c[f] += n
    pct = lambda c: [(f, round(100.0 * v / max(samples, 1), 1)) for f, v in c.most_common(top)]  # noqa: E731
    return {"samples": samples, "self": pct(self_c), "total": pct(total_c), "file": str(path)}
