"""The Lambda layer's locked requirements agree with pyproject's runtime pins and carry no local-only
package (the local stack's moto, samtranslator and werkzeug are the `local` extra)."""

import re
import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
PIN = re.compile(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==([^\s;\\]+)")


def _name(text: str) -> str:
    return re.sub(r"[-_.]+", "-", text).lower()


def _pins(requirements: list[str]) -> dict[str, str]:
    pins = {}
    for requirement in requirements:
        found = PIN.match(requirement)
        assert found, f"{requirement!r} is not pinned with =="
        pins[_name(found.group(1))] = found.group(2)
    return pins


def _locked() -> dict[str, tuple[str, list[str]]]:
    """Each locked package: its version and its hashes (pip-compile's format)."""
    text = (ROOT / "layers/common/requirements.txt").read_text().replace("\\\n", " ")
    locked = {}
    for entry in (line.strip() for line in text.splitlines()):
        if not entry or entry.startswith("#"):
            continue
        found = PIN.match(entry)
        assert found, f"layers/common/requirements.txt: {entry[:60]!r} is not a pinned requirement"
        locked[_name(found.group(1))] = (found.group(2), re.findall(r"--hash=sha256:([0-9a-f]{64})", entry))
    return locked


def test_the_layer_lock_holds_every_runtime_pin_of_pyproject() -> None:
    runtime = _pins(PROJECT["dependencies"])
    locked = _locked()
    for name, pinned in runtime.items():
        assert name in locked, f"{name} is a runtime dependency missing from the layer (make lock)"
        assert locked[name][0] == pinned, f"{name}: pyproject pins {pinned}, the layer {locked[name][0]}"


def test_every_locked_package_has_its_hashes() -> None:
    for name, (_, hashes) in _locked().items():
        assert hashes, f"{name} has no hash: pip would not install the layer in hash-checking mode"


def test_the_layer_carries_no_local_only_package() -> None:
    local_only = set(_pins(PROJECT["optional-dependencies"]["local"]))
    assert local_only >= {"moto", "aws-sam-translator", "werkzeug"}
    assert not local_only & set(_locked())


def test_the_venv_runs_the_versions_lambda_gets() -> None:
    # Tests run in .venv; a transitive package at another version there would test other code.
    for name, (pinned, _) in _locked().items():
        try:
            installed = version(name)
        except PackageNotFoundError:
            continue  # a platform-specific dependency of the lock that this platform does not use
        assert installed == pinned, f"{name}: the layer gets {pinned}, .venv has {installed}"
