"""Money conventions shared by every party: amounts are integers in minor units, and a currency
is a short upper-case code (``EUR``, ``TEST``). One definition, so that the bank, merchants, the
TTP and the central bank's supply reports can never disagree about what a currency is."""

from __future__ import annotations

import re
from typing import TypeGuard

CURRENCY_PATTERN = r"^[A-Z][A-Z0-9]{2,11}$"
_CURRENCY_RE = re.compile(CURRENCY_PATTERN)


def is_currency_code(value: object) -> TypeGuard[str]:
    """True for a well-formed currency code."""
    return isinstance(value, str) and _CURRENCY_RE.match(value) is not None
