"""Fuzzing: random and mutated input to every parser and verifier raises only EcashError.

A verifier that leaks IndexError/struct.error/ValueError on hostile input turns into a 500 (or
worse, into a code path nobody reviewed); the contract is typed errors only.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecash_tpm.attest import (
    check_ak_public,
    check_key_attributes,
    ek_public_matches_certificate,
    load_ek_certificate,
    make_credential,
    parse_attest,
    parse_name,
    parse_pcr_selection_list,
    parse_signature,
    parse_tpm2b_public,
    parse_tpmt_public,
    unwrap_attest,
    verify_certify,
    verify_ek_certificate,
    verify_quote,
)
from ecash_tpm.errors import EcashError

DATA = Path(__file__).parents[2] / "data" / "attest"
META = json.loads((DATA / "meta.json").read_text())
NONCE = bytes.fromhex(META["nonce"])
PCRS = {int(k): bytes.fromhex(v) for k, v in META["pcrs"].items()}
ROOTS = [(DATA / "ca-root.pem").read_bytes()]
INTERMEDIATES = [(DATA / "ca-intermediate.pem").read_bytes()]


def blob(name: str) -> bytes:
    return (DATA / name).read_bytes()


PUBLICS = [
    blob(n)
    for n in (
        "ak-ecc.pub",
        "ak-ecc384.pub",
        "ak-rsa.pub",
        "ak-rsapss.pub",
        "ek-rsa.pub",
        "ek-ecc.pub",
        "daa.pub",
        "unrestricted.pub",
    )
]
ATTESTS = [blob(f"quote-{k}.msg") for k in META["quotes"]] + [blob("certify-daa.msg")]
SIGNATURES = [blob(f"quote-{k}.sig") for k in META["quotes"]] + [
    blob("certify-daa.sig"),
    blob("ecdaa.sig"),
]
CERTS = [blob("ek-rsa.nv"), blob("ek-ecc.nv")]

FUZZ = settings(
    max_examples=250,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def mutated(draw: st.DrawFn, bases: list[bytes]) -> bytes:
    """A valid blob with a few byte-level mutations (flips, size fields, cuts, insertions)."""
    data = bytearray(draw(st.sampled_from(bases)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "byte", "u16", "cut", "insert", "delete"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "byte" and data:
            data[pos] = draw(st.integers(0, 255))
        elif op == "u16" and len(data) >= 2:
            pos = min(pos, len(data) - 2)
            data[pos : pos + 2] = draw(st.integers(0, 0xFFFF)).to_bytes(2, "big")
        elif op == "cut":
            data = data[:pos]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 8))]
    return bytes(data)


def fuzz_input(bases: list[bytes]) -> st.SearchStrategy[bytes]:
    return st.one_of(st.binary(max_size=600), mutated(bases))


def only_typed_errors(fn: Callable[..., Any], *args: Any) -> Any:
    """Call ``fn``; a project error is fine, anything else fails the test."""
    try:
        return fn(*args)
    except EcashError:
        return None


@FUZZ
@given(fuzz_input(PUBLICS))
def test_public_parsers(data: bytes) -> None:
    area = only_typed_errors(parse_tpm2b_public, data)
    only_typed_errors(parse_tpmt_public, data)
    only_typed_errors(parse_tpmt_public, data[2:])
    if area is not None:
        only_typed_errors(lambda: area.name)
        only_typed_errors(area.to_crypto_key)
        assert area.marshal_tpm2b() == data
        only_typed_errors(check_ak_public, data)
        only_typed_errors(check_key_attributes, data)


@FUZZ
@given(fuzz_input(ATTESTS))
def test_attest_parsers(data: bytes) -> None:
    att = only_typed_errors(parse_attest, data)
    if att is not None:
        assert att.raw == data
    only_typed_errors(unwrap_attest, data)
    only_typed_errors(parse_pcr_selection_list, data)
    only_typed_errors(parse_name, data)


@FUZZ
@given(fuzz_input(SIGNATURES))
def test_signature_parser(data: bytes) -> None:
    sig = only_typed_errors(parse_signature, data)
    if sig is not None:
        assert sig.marshal() == data


@FUZZ
@given(
    st.sampled_from(list(META["quotes"])),
    st.integers(0, 4),
    st.data(),
)
def test_verify_quote(kind: str, which: int, data: st.DataObject) -> None:
    args: list[Any] = [
        blob(META["quotes"][kind]["ak"]),
        blob(f"quote-{kind}.msg"),
        blob(f"quote-{kind}.sig"),
        NONCE,
        PCRS,
    ]
    if which == 0:
        args[0] = data.draw(fuzz_input(PUBLICS))
    elif which == 1:
        args[1] = data.draw(fuzz_input(ATTESTS))
    elif which == 2:
        args[2] = data.draw(fuzz_input(SIGNATURES))
    elif which == 3:
        args[3] = data.draw(st.binary(max_size=80))
    else:
        args[4] = data.draw(
            st.dictionaries(
                st.one_of(st.integers(-5, 40), st.text(max_size=2)),
                st.binary(min_size=0, max_size=40),
                max_size=8,
            )
        )
    only_typed_errors(verify_quote, *args)


@FUZZ
@given(st.integers(0, 3), st.data())
def test_verify_certify(which: int, data: st.DataObject) -> None:
    args: list[Any] = [
        blob("ak-ecc.pub"),
        blob("certify-daa.msg"),
        blob("certify-daa.sig"),
        bytes.fromhex(META["certify"]["nonce"]),
        blob("daa.pub"),
    ]
    index = [0, 1, 2, 4][which]
    args[index] = data.draw(fuzz_input({0: PUBLICS, 1: ATTESTS, 2: SIGNATURES, 4: PUBLICS}[index]))
    only_typed_errors(verify_certify, *args)


@settings(FUZZ, max_examples=150)
@given(fuzz_input(CERTS), st.sampled_from(PUBLICS))
def test_ek_certificates(cert: bytes, public: bytes) -> None:
    only_typed_errors(load_ek_certificate, cert)
    only_typed_errors(verify_ek_certificate, cert, ROOTS, INTERMEDIATES)
    only_typed_errors(ek_public_matches_certificate, cert, public)


@settings(FUZZ, max_examples=100)
@given(st.sampled_from(CERTS), fuzz_input(PUBLICS))
def test_ek_public_match(cert: bytes, public: bytes) -> None:
    only_typed_errors(ek_public_matches_certificate, cert, public)


@settings(FUZZ, max_examples=150)
@given(
    fuzz_input([blob("ek-rsa.pub"), blob("ek-ecc.pub")]),
    st.one_of(st.just(blob("ak-ecc.name")), st.binary(max_size=70)),
    st.binary(max_size=70),
)
def test_make_credential(ek: bytes, name: bytes, secret: bytes) -> None:
    only_typed_errors(make_credential, ek, name, secret)
