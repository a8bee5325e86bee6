"""Query-side probes: exchanged names and exchanged day and month, looked up by the asking node only."""

from __future__ import annotations

from dataclasses import replace

from common.linkage.demographics import Demographics
from common.linkage.keys import LinkageKey
from common.linkage.matching import Decision, decide
from common.linkage.probes import probes, query_tokens
from common.linkage.tokens import tokens_for

KEY = LinkageKey(bytes(32 * [7]))
PERSON = Demographics(given="Joselyn", family="Dakin", birth_date="1984-10-05", postcode="2261", locality="Dapto")


def _matched(query: Demographics, indexed: Demographics) -> set[str]:
    published = {token.value_hex: token.variant for token in tokens_for(indexed, KEY)}
    return {published[token.value_hex] for token in query_tokens(query, KEY) if token.value_hex in published}


def test_probes_exchange_names_and_day_with_month() -> None:
    """A record with two names and a day of 12 or less has both probes."""
    assert probes(PERSON) == [
        replace(PERSON, given="Dakin", family="Joselyn"),
        replace(PERSON, birth_date="1984-05-10"),
    ]


def test_no_probe_when_it_would_change_nothing() -> None:
    """Equal or missing names, a day above 12, or a day equal to the month make no probe."""
    assert probes(Demographics(given="Lee", family="LEE", birth_date="1984-10-25")) == []
    assert probes(Demographics(family="Dakin", birth_date="1984-04-04")) == []
    assert probes(Demographics()) == []


def test_query_tokens_hold_the_records_own_tokens_and_no_duplicates() -> None:
    """The record's own tokens come first; probe tokens are added once each."""
    own = tokens_for(PERSON, KEY)
    query = query_tokens(PERSON, KEY)
    assert query[: len(own)] == own
    assert len({token.value_hex for token in query}) == len(query) > len(own)


def test_exchanged_names_are_found_only_through_the_probe() -> None:
    """A record whose names were exchanged at the other hospital is a MATCH with probes, not without."""
    swapped = replace(PERSON, given=PERSON.family, family=PERSON.given)
    assert decide(_matched(PERSON, swapped)) is Decision.MATCH
    without_probes = {token.value_hex for token in tokens_for(PERSON, KEY)}
    published = {token.value_hex: token.variant for token in tokens_for(swapped, KEY)}
    assert decide({published[value] for value in without_probes if value in published}) is not Decision.MATCH


def test_exchanged_day_and_month_are_found_through_the_probe() -> None:
    """A birth date written with day and month exchanged still links when the rest agrees."""
    other_date = replace(PERSON, birth_date="1984-05-10")
    assert "given+family+birth_date" in _matched(PERSON, other_date)
    assert decide(_matched(PERSON, other_date)) is Decision.MATCH
