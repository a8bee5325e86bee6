"""One patient's complete record at one site, deterministic for ``(seed, site, index)``.

Each patient has its own ``random.Random`` seeded from ``(seed, site, index)``, so patient ``i`` is the
same whether 10 or a million are generated. About 20 % of indexes are *network* slots; the person in
such a slot is registered, with the same probability of one half, at each site, and draws their
demographics, conditions and stable traits from a generator seeded by ``(seed, index)`` only. So a
network person at two sites is the same human with the same birth date and (mostly) the same name,
seen with the small differences of :func:`node.generator.people.perturb` and separate MRNs and
clinical histories: the ground truth for record-linkage tests is :func:`linkage_key`.
"""

from __future__ import annotations

import hashlib
import re
from functools import partial
from random import Random
from typing import Any

from common.errors import InputError
from node.generator.clinical import History
from node.generator.people import draw_person, national_id, patient_resource, perturb
from node.generator.physiology import Physiology
from node.generator.prevention import choose_allergens, immunizations
from node.generator.sampling import uuid4
from node.generator.visits import chronic_conditions

__all__ = ["NETWORK_SHARE", "check_site", "linkage_key", "patient_resources"]

_VERSION = "medfed-generator-1"
# Share of indexes that are network slots, and the chance that such a person is known at a given site.
NETWORK_SHARE = 0.2
_PRESENT = 0.5
_SITE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


def check_site(site: str) -> None:
    """Refuse a site name that cannot sit inside an identifier system URN."""
    if not _SITE.fullmatch(site):
        raise InputError(hints=("site: letters, digits, '.', '_' or '-', at most 63",))


def _network_slot(seed: int, index: int) -> bool:
    digest = hashlib.blake2b(f"{_VERSION}:slot:{seed}:{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") < NETWORK_SHARE * 2**64


def _site_rng(seed: int, site: str, index: int) -> Random:
    return Random(f"{_VERSION}:{seed}:{site}:{index}")


def linkage_key(*, seed: int, site: str, index: int) -> str | None:
    """The network person at ``(site, index)``, or None for a person known at this site only.

    Two records with the same key (same seed, same index, different sites) are the same person.
    """
    if _network_slot(seed, index) and _site_rng(seed, site, index).random() < _PRESENT:
        return f"{seed}:{index}"
    return None


def _relative(resource_type: str, resource_id: str) -> str:
    return f"{resource_type}/{resource_id}"


def _urn(resource_type: str, resource_id: str) -> str:
    return f"urn:uuid:{resource_id}"


def patient_resources(seed: int, site: str, index: int, *, urn: bool = False) -> list[dict[str, Any]]:
    """Patient ``index`` of ``site``: the Patient first, then encounters with what happened at them,
    then immunizations. References are ``urn:uuid:<id>`` when ``urn``, else ``<Type>/<id>``."""
    rng = _site_rng(seed, site, index)
    shared = _network_slot(seed, index) and rng.random() < _PRESENT
    person_rng = Random(f"{_VERSION}:person:{seed}:{index}") if shared else rng
    person = draw_person(person_rng, national_id(seed=seed, site=site, index=index, shared=shared))
    onsets = chronic_conditions(person_rng, person)
    body = Physiology(person_rng, rng, sex=person.sex, obese="E66.9" in onsets)
    allergens = choose_allergens(person_rng)
    if shared:
        perturb(rng, person)

    new_id = partial(uuid4, rng)
    ref = _urn if urn else _relative
    patient_id = new_id()
    patient = ref("Patient", patient_id)
    out = [patient_resource(person, patient_id=patient_id, site=site, index=index)]
    history = History(rng, person, body, onsets, patient=patient, new_id=new_id, ref=ref)
    out.extend(history.run(allergens))
    out.extend(immunizations(rng, person, patient, new_id))
    return out
