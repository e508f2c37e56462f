"""The wallet's checks against tagging (issue 10, #6 and #7), one test per refusal code:
the credential must be under the central-bank-certified epoch key (docs/protocol.md 3.6), and
every keyset the bank offers must be on the central bank's list of its keysets (4.1)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from ecash_tpm.centralbank.ca import CentralBankCA
from ecash_tpm.centralbank.certify import certify_issuer_epoch, certify_keyset_list
from ecash_tpm.crypto import blindrsa
from ecash_tpm.crypto.bn256 import G
from ecash_tpm.crypto.encoding import b64u_encode
from ecash_tpm.crypto.groupsig import (
    IssuerSecret,
    issue_credential,
    prove_credential_key,
)
from ecash_tpm.crypto.signing import PartyKey, sign_object
from ecash_tpm.crypto.softdaa import SoftwareDaaSigner
from ecash_tpm.errors import EcashError
from ecash_tpm.pki import cert_pem
from ecash_tpm.protocol.api.issuer import IssuerInfo, JoinFinishResponse
from ecash_tpm.protocol.certified import CertifiedKeysetList
from ecash_tpm.protocol.keysets import (
    KEYSET_DESCRIPTOR_KIND,
    BankKeysets,
    Keyset,
    keyset_id_for,
    spki,
)
from ecash_tpm.protocol.payments import book_from_bank_keysets
from ecash_tpm.wallet.join import check_credential_key
from ecash_tpm.wallet.store import WalletStore
from ecash_tpm.wallet.withdraw import check_certified_keysets

NOW = int(dt.datetime.now(dt.UTC).timestamp())
#: Certificates start before NOW: the suite may reach these tests minutes after import.
START = dt.datetime.fromtimestamp(NOW - 86400, dt.UTC)


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CentralBankCA]:
    with CentralBankCA.create(tmp_path_factory.mktemp("cb") / "ca", now=START) as c:
        yield c


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CentralBankCA]:
    with CentralBankCA.create(tmp_path_factory.mktemp("cb2") / "ca", now=START) as c:
        yield c


def _code(call: Any) -> str:
    with pytest.raises(EcashError) as exc:
        call()
    return exc.value.code


# --- attack 6: the credential key proof and the certified epoch key ---------------------------


def _join_answer(
    ca: CentralBankCA, *, issue_with: IssuerSecret, certified: IssuerSecret, epoch: int
) -> tuple[JoinFinishResponse, IssuerInfo, Any]:
    cred, cred_proof = issue_credential(issue_with, SoftwareDaaSigner().public_point)
    try:
        cert = certify_issuer_epoch(ca, "issuer", epoch, certified.public)
    except EcashError:  # already certified in this module's CA
        from ecash_tpm.centralbank.certify import issuer_epoch_certificate

        cert = issuer_epoch_certificate(ca, "issuer", epoch)
    answer = JoinFinishResponse(
        member_id="m1",
        epoch=epoch,
        credential=cred.to_dict(),
        credential_proof=cred_proof.to_dict(),
        credential_key_proof=prove_credential_key(issue_with, cred).to_dict(),
        epoch_certificate=cert,
    )
    info = IssuerInfo.model_validate(
        {
            "epoch": epoch,
            "issuer_public": issue_with.public.to_dict(),  # the issuer's own claim
            "pcr_selection": {"pcrs": [0]},
            "opener_public": G.encode(),
        }
    )
    return answer, info, cred


def test_honest_credential_is_accepted_against_the_certified_key(ca: CentralBankCA) -> None:
    secret = IssuerSecret.generate()
    answer, info, cred = _join_answer(ca, issue_with=secret, certified=secret, epoch=1)
    assert check_credential_key(answer, info, cred, ca.root_certificate) == secret.public
    assert check_credential_key(answer, info, cred, None) == secret.public


def test_credential_under_a_per_member_key_is_refused(ca: CentralBankCA) -> None:
    honest, tag = IssuerSecret.generate(), IssuerSecret.generate()
    answer, info, cred = _join_answer(ca, issue_with=tag, certified=honest, epoch=2)
    # the issuer's own info names the tag key: only the central bank's certificate catches it
    code = _code(lambda: check_credential_key(answer, info, cred, ca.root_certificate))
    assert code == "daa.credential_key_proof_invalid"


def test_missing_proof_or_certificate_is_refused(ca: CentralBankCA) -> None:
    secret = IssuerSecret.generate()
    answer, info, cred = _join_answer(ca, issue_with=secret, certified=secret, epoch=3)
    no_proof = answer.model_copy(update={"credential_key_proof": None})
    assert _code(lambda: check_credential_key(no_proof, info, cred, None)) == (
        "daa.credential_key_proof_missing"
    )
    no_cert = answer.model_copy(update={"epoch_certificate": None})
    root = ca.root_certificate
    assert _code(lambda: check_credential_key(no_cert, info, cred, root)) == (
        "issuer_epoch.missing"
    )


def test_certificate_of_another_root_or_epoch_is_refused(
    ca: CentralBankCA, other_ca: CentralBankCA
) -> None:
    secret = IssuerSecret.generate()
    answer, info, cred = _join_answer(other_ca, issue_with=secret, certified=secret, epoch=4)
    root = ca.root_certificate
    assert _code(lambda: check_credential_key(answer, info, cred, root)) == ("issuer_epoch.invalid")
    answer, info, cred = _join_answer(ca, issue_with=secret, certified=secret, epoch=5)
    other = answer.model_copy(update={"epoch": 6})
    assert _code(lambda: check_credential_key(other, info, cred, root)) == ("issuer_epoch.mismatch")
    # another issuer's certified key (the wallet joined the issuer its TLS link pinned)
    assert check_credential_key(answer, info, cred, root, "issuer") == secret.public
    assert _code(lambda: check_credential_key(answer, info, cred, root, "issuer-2")) == (
        "issuer_epoch.mismatch"
    )


# --- attack 7: the certified keyset list --------------------------------------------------------


@pytest.fixture(scope="module")
def bank(ca: CentralBankCA) -> tuple[PartyKey, x509.Certificate]:
    key = PartyKey.generate()
    return key, ca.certify("bank", "bank", key.public_key, not_before=START)


def _descriptor(key: PartyKey, value: int) -> dict[str, Any]:
    body: dict[str, Any] = {
        "value": value,
        "currency": "EUR",
        "withdraw_from": NOW - 60,
        "withdraw_until": NOW + 3600,
        "deposit_until": NOW + 7200,
        "public_key": b64u_encode(spki(blindrsa.generate_key(2048).public_key())),
        "variant": blindrsa.DEFAULT_VARIANT.name,
    }
    body["keyset_id"] = b64u_encode(keyset_id_for(body))
    return sign_object(key, KEYSET_DESCRIPTOR_KIND, body)


def _offer(
    bank: tuple[PartyKey, x509.Certificate], signed: list[dict[str, Any]], listed: Any
) -> BankKeysets:
    key, cert = bank
    return BankKeysets(
        cert, [Keyset.from_signed(d, key.public_key) for d in signed], signed, keyset_list=listed
    )


@pytest.fixture(scope="module")
def keysets(
    ca: CentralBankCA, bank: tuple[PartyKey, x509.Certificate]
) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """Two certified descriptors, the list, and one tagging descriptor not on it."""
    certified = [_descriptor(bank[0], 1), _descriptor(bank[0], 2)]
    listed = certify_keyset_list(ca, cert_pem(bank[1]), certified)
    return certified, listed, _descriptor(bank[0], 4)


def test_certified_keysets_are_accepted(ca: CentralBankCA, bank: Any, keysets: Any) -> None:
    certified, listed, _tag = keysets
    raw = _offer(bank, certified, listed)
    book = book_from_bank_keysets(raw, ca.root_certificate, bank_name="bank", now=NOW)
    got = check_certified_keysets(raw, book, ca.root_certificate, now=NOW)
    assert got.bank == "bank" and len(got.keyset_ids) == 2


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("extra keyset", "keyset_list.keyset_not_certified"),
        ("withheld keyset", "keyset_list.keyset_withheld"),
        ("no list", "keyset_list.missing"),
        ("other root", "keyset_list.invalid"),
    ],
)
def test_uncertified_offers_are_refused(
    ca: CentralBankCA,
    other_ca: CentralBankCA,
    bank: Any,
    keysets: Any,
    case: str,
    code: str,
) -> None:
    certified, listed, tag = keysets
    offered = {"extra keyset": certified + [tag], "withheld keyset": certified[:1]}.get(
        case, certified
    )
    doc = {"extra keyset": listed, "withheld keyset": listed, "no list": None}.get(case)
    if case == "other root":
        doc = other_ca.sign_object(listed["kind"], listed["body"])
    raw = _offer(bank, offered, doc)
    book = book_from_bank_keysets(raw, ca.root_certificate, bank_name="bank", now=NOW)
    assert _code(lambda: check_certified_keysets(raw, book, ca.root_certificate, now=NOW)) == code


def test_a_list_for_another_bank_is_refused(ca: CentralBankCA, keysets: Any) -> None:
    _certified, listed, _tag = keysets
    with pytest.raises(EcashError) as exc:
        CertifiedKeysetList.from_signed(listed, ca.root_certificate, bank_name="otherbank")
    assert exc.value.code == "keyset_list.invalid"


def test_wallet_refuses_an_older_list_than_it_has_seen(
    ca: CentralBankCA, bank: Any, keysets: Any, tmp_path: Path
) -> None:
    certified, old, _tag = keysets
    new = certify_keyset_list(ca, cert_pem(bank[1]), [_descriptor(bank[0], 8)])
    root = ca.root_certificate
    old_list = CertifiedKeysetList.from_signed(old, root)
    new_list = CertifiedKeysetList.from_signed(new, root)
    assert new_list.sequence > old_list.sequence
    with WalletStore.open(tmp_path, lambda: NOW) as store:
        store.save_keyset_list(new_list, new)
        with pytest.raises(EcashError) as exc:
            store.save_keyset_list(old_list, old)
        assert exc.value.code == "keyset_list.rollback"
        (trusted,) = store.trusted_keyset_lists()
        assert trusted["list_id"] == new_list.list_id
