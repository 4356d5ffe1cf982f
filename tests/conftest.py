"""Fixtures every tier shares."""

from __future__ import annotations

import pytest

from sweeps import SweepManifest, build_sweep_manifest


@pytest.fixture
def sweep_manifest() -> SweepManifest:
    """`sweep_manifest(name, **spec)`: a tiny real sweep (see `build_sweep_manifest`)."""
    return build_sweep_manifest
