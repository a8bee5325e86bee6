"""A synthetic population with record identities, and a node's discloser over it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from common.privacy import Discloser, DisclosurePolicy, RecordKeyring

#: A fixed test secret (a node generates 32 random bytes at init).
TEST_SECRET = bytes(range(32))


@dataclass(frozen=True)
class Population:
    """Patients with a binary trait, a sex and an age band; ``ids[i]`` is patient i's record identity."""

    ids: tuple[str, ...]
    trait: np.ndarray
    sex: np.ndarray
    age_band: np.ndarray


def make_population(size: int, seed: int) -> Population:
    """``size`` patients with independent, balanced attributes."""
    rng = np.random.default_rng(seed)
    return Population(
        ids=tuple(f"Patient/{seed}-{i:06d}" for i in range(size)),
        trait=rng.random(size) < 0.5,
        sex=rng.integers(0, 2, size),
        age_band=rng.integers(0, 8, size),
    )


@pytest.fixture(scope="session")
def population() -> Population:
    """1,500 synthetic patients."""
    return make_population(1500, seed=11)


@pytest.fixture(scope="session")
def keyring() -> RecordKeyring:
    """Record keys under the test secret."""
    return RecordKeyring(TEST_SECRET)


@pytest.fixture(scope="session")
def discloser(keyring: RecordKeyring) -> Discloser:
    """The default policy: min cell 5, secondary suppression, cell-key noise up to 5."""
    return Discloser(DisclosurePolicy(), keyring)
