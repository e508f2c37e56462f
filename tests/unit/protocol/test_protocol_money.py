"""The wire specification's value types: Money and the KINDS table (docs/protocol.md)."""

from __future__ import annotations

import pytest

from ecash_tpm.crypto.signing import CANONICAL_MAX_INT
from ecash_tpm.pki import ROLES
from ecash_tpm.protocol import KINDS, Money
from ecash_tpm.protocol.money import MoneyError, currency_exponent


def test_money_adds_and_subtracts_in_one_currency() -> None:
    a, b = Money(1234, "EUR"), Money(66, "EUR")
    assert a + b == Money(1300, "EUR")
    assert a - b == Money(1168, "EUR")
    assert b < a and b <= b


@pytest.mark.parametrize(
    ("left", "right"),
    [(Money(1, "EUR"), Money(1, "USD")), (Money(5, "TEST"), Money(5, "EUR"))],
)
def test_money_never_mixes_currencies(left: Money, right: Money) -> None:
    for op in (lambda: left + right, lambda: left - right, lambda: left < right):
        with pytest.raises(MoneyError) as info:
            op()
        assert info.value.code == "money.invalid"


@pytest.mark.parametrize(
    ("amount", "currency"),
    [(-1, "EUR"), (CANONICAL_MAX_INT + 1, "EUR"), (True, "EUR"), (1.5, "EUR"), (1, "eur")],
)
def test_money_refuses_what_no_signed_body_can_carry(amount: object, currency: str) -> None:
    with pytest.raises(MoneyError):
        Money(amount, currency)  # type: ignore[arg-type]


def test_money_checked_arithmetic_stops_at_zero_and_the_maximum() -> None:
    with pytest.raises(MoneyError):
        Money(1, "EUR") - Money(2, "EUR")
    with pytest.raises(MoneyError):
        Money(CANONICAL_MAX_INT, "EUR") + Money(1, "EUR")


@pytest.mark.parametrize(
    ("text", "currency", "minor", "shown"),
    [
        ("12.34", "EUR", 1234, "12.34 EUR"),
        ("100", "EUR", 10000, "100.00 EUR"),
        ("0.5", "EUR", 50, "0.50 EUR"),
        ("5", "JPY", 5, "5 JPY"),
        ("1.234", "KWD", 1234, "1.234 KWD"),
        ("7.1", "TEST", 710, "7.10 TEST"),
    ],
)
def test_money_parses_and_formats_with_the_currency_exponent(
    text: str, currency: str, minor: int, shown: str
) -> None:
    money = Money.parse(text, currency)
    assert money.amount == minor and str(money) == shown
    assert Money.parse(shown.split()[0], currency) == money


@pytest.mark.parametrize("text", ["1.234", "1,00", "-1", "", "1e3", " 1", "1."])
def test_money_parse_never_rounds_or_guesses(text: str) -> None:
    with pytest.raises(MoneyError):
        Money.parse(text, "EUR")
    assert currency_exponent("EUR") == 2


def test_every_signed_kind_names_a_certified_role_and_a_section() -> None:
    assert len(KINDS) >= 16
    for name, kind in KINDS.items():
        assert kind.name == name
        assert kind.signer_role in ROLES, name
        assert kind.section
        assert (
            kind.parse is not None
            or kind.verify is not None
            or name
            in {
                "deposit",
                "reserve",
                "blacklist-lift",
            }
        )
