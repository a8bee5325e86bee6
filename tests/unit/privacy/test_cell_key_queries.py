"""Cell-key noise as a researcher meets it: one record set, one answer; differencing gains little.

The attack (issue 4's acceptance test): an attacker who knows that a patient is in a cohort asks "how
many in the cohort have the trait?" and the same question of the cohort without that patient, each in
20 shapes (:mod:`tests.unit.privacy.shapes`), and takes the majority vote of the 20 differences: a
non-zero difference says "the patient has the trait". Under a node that adds fresh noise per query,
the 20 shapes would average out; here they cannot, because every shape holds the same records.
Targets: 200 patients, 100 with the trait and 100 without (chance is 50%), each isolated within a
cohort of its own (300 random patients of 1,500).
"""

from __future__ import annotations

import numpy as np

from common.privacy import Discloser, DisclosurePolicy, RecordKeyring
from tests.unit.privacy.conftest import Population
from tests.unit.privacy.shapes import SHAPES

TARGETS = 200
COHORT_SIZE = 300


def _targets(population: Population, seed: int) -> list[int]:
    rng = np.random.default_rng(seed)
    with_trait = np.flatnonzero(population.trait)
    without_trait = np.flatnonzero(~population.trait)
    chosen = list(rng.choice(with_trait, TARGETS // 2, replace=False))
    chosen += list(rng.choice(without_trait, TARGETS // 2, replace=False))
    return [int(i) for i in chosen]


def _cohort(population: Population, target: int, rng: np.random.Generator) -> frozenset[int]:
    others = rng.choice(len(population.ids), COHORT_SIZE, replace=False)
    return frozenset(int(i) for i in others) | {target}


def _attack_accuracy(discloser: Discloser, population: Population) -> float:
    """The attacker's hit rate over the targets (majority vote of the 20 shapes' differences)."""
    rng = np.random.default_rng(2024)
    right = 0
    for target in _targets(population, seed=7):
        cohort = _cohort(population, target, rng)
        without = cohort - {target}
        votes = 0
        for shape in SHAPES:
            with_value, without_value = shape(discloser, population, cohort), shape(discloser, population, without)
            assert with_value is not None
            assert without_value is not None
            votes += with_value != without_value
        guess = votes > len(SHAPES) / 2
        right += guess == bool(population.trait[target])
    return right / TARGETS


def test_five_phrasings_of_one_record_set_get_one_perturbed_value(discloser: Discloser, population: Population) -> None:
    """Count, reordered count, histogram bin, crosstab cell and crosstab margin of one record set agree."""
    rng = np.random.default_rng(5)
    perturbed = 0
    for _ in range(25):
        cohort = frozenset(int(i) for i in rng.choice(len(population.ids), COHORT_SIZE, replace=False))
        true_count = sum(bool(population.trait[i]) for i in cohort)
        answers = {shape.__name__: shape(discloser, population, cohort) for shape in SHAPES}
        assert len(set(answers.values())) == 1, answers
        released = next(iter(answers.values()))
        assert released is not None
        assert abs(released - true_count) <= discloser.policy.max_noise
        perturbed += released != true_count
    assert perturbed >= 15  # the values really are noisy (10 of 11 phases move an interior cell)


def test_a_differencing_pair_in_twenty_shapes_reveals_a_patient_at_most_60_percent_of_the_time(
    discloser: Discloser, population: Population
) -> None:
    """Over 200 targeted patients the majority-vote attacker is right at most 60% of the time (chance 50%)."""
    accuracy = _attack_accuracy(discloser, population)
    assert accuracy <= 0.60, accuracy


def test_the_same_attack_without_cell_key_noise_always_succeeds(keyring: RecordKeyring, population: Population) -> None:
    """With suppression alone the differencing pair gives every patient away: the attack above is real."""
    exact = Discloser(DisclosurePolicy(cell_key=False), keyring)
    assert _attack_accuracy(exact, population) == 1.0
