"""Query-side probes: the other ways the asking node's record may have been written elsewhere.

Two mistakes are common enough in registration to be worth a second look: the given and family names
exchanged (forms that ask for "name" and "surname" in either order, Chinese names written family
name first), and the day and month of birth exchanged (``03/05`` read as the 3rd of May or the 5th of
March). A probe is the asking node's record with one such exchange undone, tokenised like any record.

Probes are computed only by the node that asks, only for its lookup: they are never published into
the index, so the index holds each patient's record as written, and only a lookup pays for the extra
hypotheses. The coordinator sees the probe tokens mixed with the record's own, without knowing which
is which.
"""

from __future__ import annotations

from dataclasses import replace

from common.linkage.demographics import Demographics
from common.linkage.keys import LinkageKey
from common.linkage.normalise import name_key, parse_date, swap_day_month
from common.linkage.tokens import Token, VariantKeys, tokens_for

__all__ = ["probes", "query_tokens"]


def probes(demographics: Demographics) -> list[Demographics]:
    """The extra records to look up besides ``demographics``: names exchanged, day and month exchanged.

    A probe is made only when it differs from the record: both names present and different, a full
    birth date whose day is 12 or less and differs from the month.
    """
    extra: list[Demographics] = []
    given, family = demographics.given, demographics.family
    if given and family and name_key(given) != name_key(family, family=True):
        extra.append(replace(demographics, given=family, family=given))
    birth = parse_date(demographics.birth_date)
    swapped = swap_day_month(birth) if birth is not None else None
    if swapped is not None:
        extra.append(replace(demographics, birth_date=swapped.iso()))
    return extra


def query_tokens(demographics: Demographics, key: LinkageKey | VariantKeys) -> list[Token]:
    """The tokens a node sends to look ``demographics`` up: the record's own, then its probes' new ones."""
    seen: set[tuple[str, str]] = set()
    tokens: list[Token] = []
    for record in (demographics, *probes(demographics)):
        for token in tokens_for(record, key):
            if (token.variant, token.value_hex) not in seen:
                seen.add((token.variant, token.value_hex))
                tokens.append(token)
    return tokens
