"""`make setup` installs requirements.lock; requirements.txt says what kdscale needs. They must agree."""

from __future__ import annotations

import re

from conftest import REPO


def pins(name: str) -> dict[str, str]:
    """package -> version of every `name==version` line (comments and extras dropped)."""
    found = {}
    for line in (REPO / name).read_text().splitlines():
        m = re.match(r"^\s*([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==([^\s#;]+)", line)
        if m:
            found[re.sub(r"[-_.]+", "-", m.group(1)).lower()] = m.group(2)
    return found


def test_the_lock_has_every_pin_of_requirements_at_its_version():
    wanted, locked = pins("requirements.txt"), pins("requirements.lock")
    assert wanted, "requirements.txt pins nothing"
    drift = {name: (version, locked.get(name)) for name, version in wanted.items() if locked.get(name) != version}
    assert not drift, f"requirements.txt and requirements.lock differ {drift}: run `make lock`"


def test_the_lock_pins_every_package_and_keeps_no_local_build_tag():
    lines = [l for l in (REPO / "requirements.lock").read_text().splitlines() if l and not l.startswith("#")]
    assert all("==" in l for l in lines), [l for l in lines if "==" not in l]
    assert not [l for l in lines if "+" in l], "a local tag (+cpu) would replace a CUDA torch installed first"
    assert "kdscale" not in pins("requirements.lock")  # installed editable from the checkout, not pinned
