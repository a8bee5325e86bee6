"""The coordinator's re-keying of published tokens."""

from __future__ import annotations

import pytest

from common.errors import ConfigError, InputError
from common.linkage.demographics import Demographics
from common.linkage.keys import LinkageKey
from common.linkage.rekey import RekeyKey, rekey_token, rekey_value
from common.linkage.tokens import tokens_for

SECRET = bytes(range(100, 132))
TOKEN = tokens_for(Demographics(given="Ann", family="Lee", birth_date="1990-02-03"), LinkageKey.generate())[0]


def test_rekeying_is_deterministic_and_keeps_variant_and_tier() -> None:
    """Equal tokens re-key to equal stored values (what a lookup needs); variant and tier are kept."""
    stored = rekey_token(SECRET, TOKEN)
    assert stored == rekey_token(RekeyKey(SECRET), TOKEN)
    assert (stored.variant, stored.tier) == (TOKEN.variant, TOKEN.tier)
    assert stored.value_hex != TOKEN.value_hex
    assert len(stored.value_hex) == 64


def test_another_coordinator_secret_gives_other_stored_values() -> None:
    """Without the coordinator's secret, nobody can recompute what its index stores."""
    assert rekey_value(SECRET, TOKEN.variant, TOKEN.value_hex) != rekey_value(bytes(32), TOKEN.variant, TOKEN.value_hex)


def test_the_variant_is_bound_into_the_stored_value() -> None:
    """The same token value under another variant name re-keys to another stored value."""
    assert rekey_value(SECRET, "a", TOKEN.value_hex) != rekey_value(SECRET, "b", TOKEN.value_hex)


def test_a_short_coordinator_secret_is_refused() -> None:
    """A secret under 32 bytes is a ConfigError."""
    with pytest.raises(ConfigError):
        RekeyKey(b"too short")


@pytest.mark.parametrize("value", ["abc", "zz" * 32, TOKEN.value_hex + "00"])
def test_something_that_is_not_a_token_is_refused(value: str) -> None:
    """Only 64 hex digits are a token."""
    with pytest.raises(InputError):
        rekey_value(SECRET, TOKEN.variant, value)


def test_the_rekey_key_prints_without_key_material() -> None:
    """RekeyKey's repr holds nothing derived from the secret."""
    assert repr(RekeyKey(SECRET)) == "RekeyKey(...)"
