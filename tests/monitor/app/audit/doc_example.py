"""Run the worked example of a documentation page exactly as written (its fenced ``bash``
block after the ``<!-- worked-example`` marker), with the project's ``amplimon`` on PATH."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[4]


def worked_example(doc: str) -> str:
    text = (ROOT / "docs" / doc).read_text(encoding="utf-8")
    after = text.split("<!-- worked-example", 1)[1]
    block = after.split("```bash\n", 1)[1].split("\n```", 1)[0]
    return block


def offline_prefix() -> list[str]:
    """``unshare --net`` (a fresh network namespace: no network at all) where it works —
    root with util-linux — else nothing."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or not shutil.which("unshare"):
        return []
    probe = subprocess.run(["unshare", "--net", "true"], capture_output=True, check=False)
    return ["unshare", "--net"] if probe.returncode == 0 else []


def run_worked_example(
    doc: str, cwd: Path, timeout: float = 300, *, offline: bool = False
) -> subprocess.CompletedProcess:
    """Run the block with bash (``set -euo pipefail``); with ``offline``, inside a network
    namespace when one can be made (``done.args[0] == "unshare"`` tells)."""
    script = "set -euo pipefail\n" + worked_example(doc) + "\n"
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("AMPLIMON_DB", None)
    env.pop("AMPLIMON_CONFIG", None)
    prefix = offline_prefix() if offline else []
    done = subprocess.run(
        [*prefix, "bash", "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"{doc} example failed:\n{done.stdout}\n{done.stderr}"
    return done
