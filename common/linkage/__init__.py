"""Privacy-preserving record linkage: the token recipe that nodes and the coordinator agree on.

A node turns each patient's demographics into keyed tokens; the coordinator stores them re-keyed and
answers "where else is this patient known?" without ever seeing a name, a date of birth or the key.

- :mod:`~common.linkage.normalise` — names (NFKC, case, accents, Chinese forms and pinyin), dates,
  sex, postcodes, address parts;
- :mod:`~common.linkage.national_id` — China's resident ID number (checked), other national ids;
- :mod:`~common.linkage.demographics` — :class:`Demographics`, built from a FHIR ``Patient``;
- :mod:`~common.linkage.features` — the normalised features and the evidence each one carries;
- :mod:`~common.linkage.tokens` — the variant recipe, tiers and :func:`tokens_for`;
- :mod:`~common.linkage.probes` — query-side probes (names exchanged, day and month exchanged);
- :mod:`~common.linkage.keys` — custody of the network linkage key (file, environment, a KMS);
- :mod:`~common.linkage.rekey` — the coordinator's re-keying of what it stores;
- :mod:`~common.linkage.matching` — the MATCH / POSSIBLE decision of a lookup.

Everything here is pure computation: no I/O except the key files of :mod:`~common.linkage.keys`.
"""

from common.linkage.demographics import Demographics, from_fhir_patient
from common.linkage.keys import (
    EnvKeyProvider,
    FileKeyProvider,
    KeyRotation,
    LinkageKey,
    LinkageKeyProvider,
    generate_key_file,
    rotate_key_file,
)
from common.linkage.matching import DEFAULT_RULE, Decision, LinkResult, MatchRule, decide, evidence, link_results
from common.linkage.probes import probes, query_tokens
from common.linkage.rekey import RekeyKey, rekey_token, rekey_value
from common.linkage.tokens import RECIPE_VERSION, VARIANTS, Tier, Token, Variant, VariantKeys, tokens_for

__all__ = [
    "DEFAULT_RULE",
    "RECIPE_VERSION",
    "VARIANTS",
    "Decision",
    "Demographics",
    "EnvKeyProvider",
    "FileKeyProvider",
    "KeyRotation",
    "LinkResult",
    "LinkageKey",
    "LinkageKeyProvider",
    "MatchRule",
    "RekeyKey",
    "Tier",
    "Token",
    "Variant",
    "VariantKeys",
    "decide",
    "evidence",
    "from_fhir_patient",
    "generate_key_file",
    "link_results",
    "probes",
    "query_tokens",
    "rekey_token",
    "rekey_value",
    "rotate_key_file",
    "tokens_for",
]
