"""Money conventions shared by every party: amounts are integers in minor units, and a currency
is a short upper-case code (``EUR``, ``TEST``) whose minor unit has a fixed number of decimals.
:class:`Money` is the value type with checked arithmetic. One definition, so that the bank,
merchants, the TTP and the central bank's supply reports never disagree about what a currency is."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeGuard

from ecash_tpm.crypto.signing import CANONICAL_MAX_INT
from ecash_tpm.errors import InputError

__all__ = [
    "CURRENCY_PATTERN",
    "Money",
    "MoneyError",
    "currency_exponent",
    "format_amount",
    "is_currency_code",
]

CURRENCY_PATTERN = r"^[A-Z][A-Z0-9]{2,11}$"
_CURRENCY_RE = re.compile(CURRENCY_PATTERN)
_DECIMAL_RE = re.compile(r"[0-9]{1,20}(\.[0-9]{1,6})?")


def is_currency_code(value: object) -> TypeGuard[str]:
    """True for a well-formed currency code."""
    return isinstance(value, str) and _CURRENCY_RE.match(value) is not None


class MoneyError(InputError):
    """An amount that is malformed, out of range, or mixes currencies."""

    code = "money.invalid"


#: Minor-unit exponent per ISO 4217 code; codes not listed (``TEST``, ...) have 2 decimals.
CURRENCY_EXPONENTS: Mapping[str, int] = {
    "BHD": 3,
    "CHF": 2,
    "EUR": 2,
    "GBP": 2,
    "JPY": 0,
    "KRW": 0,
    "KWD": 3,
    "USD": 2,
}
DEFAULT_EXPONENT = 2
#: The largest amount any signed body can carry (canonical encoding's integer bound).
MAX_AMOUNT = CANONICAL_MAX_INT


def currency_exponent(currency: str) -> int:
    """How many decimals the currency's minor unit has (EUR 2: 10000 minor units = 100.00)."""
    return CURRENCY_EXPONENTS.get(currency, DEFAULT_EXPONENT)


def format_amount(amount: int, currency: str, *, exponents: Mapping[str, int] | None = None) -> str:
    """``10000`` EUR -> ``100.00 EUR``: minor units shown in the currency's units, for people.

    ``exponents`` overrides the table for currencies a deployment knows better (a test currency
    counted in whole units: ``{"TEST": 0}``). A negative amount (a ledger balance) keeps its sign.
    """
    exp = exponents.get(currency) if exponents is not None else None
    if exp is None:
        exp = currency_exponent(currency)
    sign = "-" if amount < 0 else ""
    if exp <= 0:
        return f"{sign}{abs(amount)} {currency}"
    whole, frac = divmod(abs(amount), 10**exp)
    return f"{sign}{whole}.{frac:0{exp}d} {currency}"


@dataclass(frozen=True, slots=True)
class Money:
    """An amount in minor units of one currency, with checked arithmetic (GNU Taler's lesson: an
    amount type that cannot overflow or mix currencies). Amounts are never negative."""

    amount: int
    currency: str

    def __post_init__(self) -> None:
        if isinstance(self.amount, bool) or not isinstance(self.amount, int):
            raise MoneyError("amount must be an integer number of minor units")
        if not 0 <= self.amount <= MAX_AMOUNT:
            raise MoneyError("amount out of range", detail={"amount": self.amount})
        if not is_currency_code(self.currency):
            raise MoneyError("currency must be an upper-case code like EUR")

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(0, currency)

    @classmethod
    def parse(cls, text: str, currency: str) -> Money:
        """``"12.34"`` in EUR -> 1234 minor units; more decimals than the currency has is an
        error (never silently rounded)."""
        exp = currency_exponent(currency)
        if not isinstance(text, str) or not _DECIMAL_RE.fullmatch(text):
            raise MoneyError("amount must look like 12 or 12.34", detail={"text": str(text)[:40]})
        whole, _, frac = text.partition(".")
        if len(frac) > exp:
            raise MoneyError(
                f"{currency} has {exp} decimals", detail={"text": text, "decimals": exp}
            )
        return cls(int(whole) * 10**exp + int(frac.ljust(exp, "0") or "0"), currency)

    def _same(self, other: Money) -> None:
        if not isinstance(other, Money) or other.currency != self.currency:
            raise MoneyError(
                "amounts of different currencies",
                detail={"left": self.currency, "right": getattr(other, "currency", None)},
            )

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        if other.amount > self.amount:
            raise MoneyError(
                "amount would become negative",
                detail={"amount": self.amount, "minus": other.amount},
            )
        return Money(self.amount - other.amount, self.currency)

    def __lt__(self, other: Money) -> bool:
        self._same(other)
        return self.amount < other.amount

    def __le__(self, other: Money) -> bool:
        self._same(other)
        return self.amount <= other.amount

    def format(self) -> str:
        """``100.00 EUR`` for 10000 minor units of EUR."""
        return format_amount(self.amount, self.currency)

    def __str__(self) -> str:
        return self.format()
