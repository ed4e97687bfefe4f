"""Reproducible installs: every dependency is locked with hashes, and the bounds in
``pyproject.toml`` are the locked (tested) releases, not older ones nobody ran."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^\s\\;]+)", re.M)


def pins(path: Path) -> dict[str, Version]:
    return {canonicalize_name(n): Version(v) for n, v in PIN.findall(path.read_text())}


def declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        reqs.extend(extra)
    return [Requirement(r) for r in reqs]


def test_every_locked_requirement_carries_hashes() -> None:
    for lock in (ROOT / "requirements.lock", ROOT / "deploy" / "requirements-runtime.lock"):
        blocks = re.split(r"\n(?=[A-Za-z0-9])", lock.read_text().split("\n", 2)[2])
        for block in blocks:
            if block.strip():
                assert "--hash=sha256:" in block, f"{lock.name}: no hash in {block.split()[0]}"


def test_every_declared_dependency_is_locked_and_its_lower_bound_is_the_tested_release() -> None:
    locked = pins(ROOT / "requirements.lock")
    for req in declared():
        name = canonicalize_name(req.name)
        assert name in locked, f"{req.name} is declared but not in requirements.lock"
        version = locked[name]
        assert req.specifier.contains(version, prereleases=True), (
            f"{req.name}: locked {version} is outside {req.specifier}"
        )
        lower = [Version(s.version) for s in req.specifier if s.operator == ">="]
        assert lower, f"{req.name}: no lower bound"
        # the bound names the locked release line: a bound older than what the lock tests
        # would claim support nobody has checked
        assert lower[0].release[:2] == version.release[:2], (
            f"{req.name}: lower bound {lower[0]} but the tested release is {version}"
        )


def test_runtime_lock_is_the_same_resolution_as_the_full_lock() -> None:
    full = pins(ROOT / "requirements.lock")
    runtime = pins(ROOT / "deploy" / "requirements-runtime.lock")
    assert runtime, "empty runtime lock"
    for name, version in runtime.items():
        assert full.get(name) == version, f"{name}: runtime {version} vs full {full.get(name)}"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for dep in project["dependencies"]:
        assert canonicalize_name(Requirement(dep).name) in runtime


def test_the_build_tools_are_locked_too() -> None:
    locked = pins(ROOT / "requirements.lock")
    for tool in ("pip", "setuptools", "wheel"):
        assert tool in locked, f"{tool} is not locked: make install would take today's release"


def test_install_paths_use_the_locks() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "--require-hashes --no-deps -r requirements.lock" in makefile
    assert "--no-build-isolation" in makefile  # the build backend comes from the lock as well
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    assert "--require-hashes" in dockerfile and "requirements-runtime.lock" in dockerfile
