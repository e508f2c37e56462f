"""Keyset fees in the signed descriptor (docs/protocol.md 4.2): encoded, committed to by the
keyset id, parsed; a descriptor without fee fields is a zero-fee keyset whose id still holds."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from ecash_tpm.crypto import blindrsa
from ecash_tpm.crypto.encoding import b64u_encode
from ecash_tpm.protocol.errors import KeysetDescriptorError
from ecash_tpm.protocol.keysets import (
    FEE_FIELDS,
    Fees,
    Keyset,
    deposit_fee,
    keyset_id_for,
    refresh_fee,
    refund_fee,
    spki,
    withdraw_fee,
)
from ecash_tpm.protocol.swap import swap_fee


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return blindrsa.generate_key(2048)


def _body(key: rsa.RSAPrivateKey, value: int = 10, **fees: int) -> dict[str, Any]:
    body: dict[str, Any] = {
        "value": value,
        "currency": "EUR",
        "withdraw_from": 100,
        "withdraw_until": 200,
        "deposit_until": 300,
        "public_key": b64u_encode(spki(key.public_key())),
        "variant": blindrsa.DEFAULT_VARIANT.name,
        **fees,
    }
    return {**body, "keyset_id": b64u_encode(keyset_id_for(body))}


def test_fees_are_parsed_and_committed_to(key: rsa.RSAPrivateKey) -> None:
    doc = _body(key, fee_withdraw=1, fee_deposit=2, fee_refresh=3, fee_refund=4)
    ks = Keyset.from_descriptor(doc)
    assert ks.fees == Fees(withdraw=1, deposit=2, refresh=3, refund=4)
    assert (ks.fee_withdraw, ks.fee_deposit, ks.fee_refresh, ks.fee_refund) == (1, 2, 3, 4)
    assert ks.descriptor() == doc  # round trip, fee fields included
    other = dict(doc, fee_deposit=1)  # the id commits to the fees
    with pytest.raises(KeysetDescriptorError) as exc:
        Keyset.from_descriptor(other)
    assert exc.value.code == "keyset.descriptor_invalid"


def test_zero_fees_are_encoded_explicitly(key: rsa.RSAPrivateKey) -> None:
    doc = _body(key, fee_withdraw=0, fee_deposit=0, fee_refresh=0, fee_refund=0)
    ks = Keyset.from_descriptor(doc)
    assert ks.fees == Fees() and ks.fee_fields
    assert set(FEE_FIELDS) <= set(ks.descriptor())


def test_descriptor_without_fees_parses_as_zero_fees_and_keeps_its_id(
    key: rsa.RSAPrivateKey,
) -> None:
    old = _body(key)  # made before fees existed (one release of grace, 4.2)
    ks = Keyset.from_descriptor(old)
    assert ks.fees == Fees() and not ks.fee_fields
    assert ks.descriptor() == old  # re-encoded without the fields: the id still holds
    assert not set(FEE_FIELDS) & set(ks.descriptor())


@pytest.mark.parametrize(
    "fees",
    [
        {"fee_withdraw": 1},  # some fee fields but not all
        {"fee_withdraw": 0, "fee_deposit": 0, "fee_refresh": 0, "fee_refund": 10},  # = value
        {"fee_withdraw": -1, "fee_deposit": 0, "fee_refresh": 0, "fee_refund": 0},
        {"fee_withdraw": True, "fee_deposit": 0, "fee_refresh": 0, "fee_refund": 0},
        {"fee_withdraw": "1", "fee_deposit": 0, "fee_refresh": 0, "fee_refund": 0},
    ],
)
def test_bad_fee_fields_are_refused(key: rsa.RSAPrivateKey, fees: dict[str, Any]) -> None:
    with pytest.raises(KeysetDescriptorError) as exc:
        Keyset.from_descriptor(_body(key, **fees))
    assert exc.value.code == "keyset.descriptor_invalid"


def test_fee_sums_are_per_coin(key: rsa.RSAPrivateKey) -> None:
    ten = Keyset.from_descriptor(
        _body(key, fee_withdraw=1, fee_deposit=2, fee_refresh=3, fee_refund=4)
    )
    free = Keyset.from_descriptor(_body(key, value=5))
    coins = [ten, ten, free]
    assert withdraw_fee(coins) == 2
    assert deposit_fee(coins) == 4
    assert refresh_fee(coins) == swap_fee(coins) == 6
    assert refund_fee(coins) == 8
    assert withdraw_fee([]) == 0
