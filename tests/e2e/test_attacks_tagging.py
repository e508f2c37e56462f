"""Issue 10, attacks 6 and 7: the issuer or the bank tagging members with keys of their own.

Over real HTTPS on 127.0.0.1 with swtpm (tests/support/system.py). The honest wallet refuses a
credential that is not under the epoch key the central bank certified (docs/protocol.md 3.6)
and keysets that are not on the central bank's list of the bank's keysets (4.1).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.system import System, WalletHandle, start_system

from ecash_tpm.centralbank.certify import certify_issuer_epoch, latest_keyset_list
from ecash_tpm.crypto import blindrsa
from ecash_tpm.crypto.encoding import b64u_encode
from ecash_tpm.crypto.groupsig import IssuerSecret
from ecash_tpm.crypto.signing import sign_object
from ecash_tpm.device import TpmDevice
from ecash_tpm.errors import EcashError
from ecash_tpm.issuer.keys import IssuerKeyStore, IssuerPublicInfo
from ecash_tpm.protocol.certified import CertifiedKeysetList, IssuerEpochCertificate
from ecash_tpm.protocol.keysets import KEYSET_DESCRIPTOR_KIND, keyset_id_for, spki
from ecash_tpm.wallet.membership import has_membership

pytestmark = pytest.mark.swtpm


@pytest.fixture(scope="module")
def device(swtpm: Any) -> Iterator[TpmDevice]:
    with TpmDevice(swtpm.tcti) as dev:
        yield dev


@pytest.fixture(scope="module")
def system(
    swtpm: Any, device: TpmDevice, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[System]:
    with start_system(tmp_path_factory.mktemp("sys"), swtpm=swtpm, tpm=device) as s:
        yield s


@pytest.fixture(scope="module")
def wallet(
    system: System, device: TpmDevice, tmp_path_factory: pytest.TempPathFactory
) -> WalletHandle:
    return system.open_wallet(device, tmp_path_factory.mktemp("wallet"))


# --- attack 6: the issuer tags members --------------------------------------------------------


class TaggingKeys:
    """A dishonest issuer's key store: every credential of the current epoch is made with a
    per-member (x', y'), and the issuer's info even publishes that key to this member; the
    central bank's certificate of the epoch (the honest key) is still handed over."""

    def __init__(self, inner: IssuerKeyStore, tag: IssuerSecret) -> None:
        self.inner = inner
        self.tag = tag

    def secret_for_epoch(self, epoch: int) -> IssuerSecret:
        return self.tag

    def public_info(self, epoch: int | None = None) -> IssuerPublicInfo:
        return IssuerPublicInfo(self.inner.current_epoch, self.tag.public)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_attack_6_issuer_tags_members(
    system: System,
    wallet: WalletHandle,
    swtpm: Any,
    device: TpmDevice,
    tmp_path: Path,
) -> None:
    # The honest join (module fixture): the credential is under the certified epoch key.
    certified = IssuerEpochCertificate.from_signed(
        system.issuer.keys.epoch_certificate(wallet.membership.epoch), system.root_pem
    )
    assert certified.epoch == wallet.membership.epoch
    assert wallet.membership.issuer_public == certified.public
    assert wallet.withdraw(3).amount == 3  # the honest credential works

    # A dishonest issuer (its own system, so the same TPM can join again) tags the member.
    wallet.close()  # frees the TPM's object slot of the honest DAA key (reloaded on use)
    with start_system(tmp_path / "evil", swtpm=swtpm, tpm=device) as evil:
        honest_keys = evil.issuer.keys
        tag = IssuerSecret.generate()
        evil.issuer.keys = TaggingKeys(honest_keys, tag)  # type: ignore[assignment]
        wallet_dir = tmp_path / "victim"
        with pytest.raises(EcashError) as exc:
            evil.join(device, wallet_dir)
        assert exc.value.code == "daa.credential_key_proof_invalid"
        assert not has_membership(wallet_dir)  # the wallet holds no credential

        # The central bank certifies one key per epoch: the tag key cannot be certified too.
        epoch = honest_keys.current_epoch
        with pytest.raises(EcashError) as conflict:
            certify_issuer_epoch(evil.ca, "issuer", epoch, tag.public)
        assert conflict.value.code == "centralbank.issuer_epoch_conflict"
        assert conflict.value.http_status == 409

        # The victim gained no coins and lost no money; nothing was withdrawn at all.
        assert evil.customer_balance() == 1000
        assert evil.outstanding() == 0


# --- attack 7: customer-specific keysets ---------------------------------------------------------


class TaggingKeysetFront(httpx.BaseTransport):
    """The bank's front-end for one customer: its ``GET /v1/keysets`` answer carries one more
    keyset, signed by the bank, that is on no central-bank list (a tag for this customer), or
    (``extra=None``) lacks one listed keyset, to steer the customer to another one."""

    def __init__(self, extra: dict[str, Any] | None, verify: Any) -> None:
        self.inner = httpx.HTTPTransport(verify=verify)
        self.extra = extra
        self.withdraw_calls = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/withdraw":
            self.withdraw_calls += 1
        response = self.inner.handle_request(request)
        if request.url.path != "/v1/keysets":
            return response
        response.read()
        answer = json.loads(response.content)
        if self.extra is None:
            answer["keysets"].pop(0)
        else:
            answer["keysets"].append(self.extra)
        return httpx.Response(200, json=answer)

    def close(self) -> None:
        self.inner.close()


def _tagging_keyset(system: System, value: int) -> dict[str, Any]:
    """A keyset descriptor signed by the bank's own key, for this customer only."""
    now = system.clock()
    key = blindrsa.generate_key(2048)
    body: dict[str, Any] = {
        "value": value,
        "currency": system.currency,
        "withdraw_from": now - 60,
        "withdraw_until": now + 30 * 86400,
        "deposit_until": now + 400 * 86400,  # outlives every honest keyset: the wallet's pick
        "public_key": b64u_encode(spki(key.public_key())),
        "variant": blindrsa.DEFAULT_VARIANT.name,
    }
    body["keyset_id"] = b64u_encode(keyset_id_for(body))
    return sign_object(system.bank.bank_key, KEYSET_DESCRIPTOR_KIND, body)


def test_attack_7_customer_specific_keysets(system: System, wallet: WalletHandle) -> None:
    # The wallet trusts the central bank's list of the bank's keysets and shows which one.
    wallet.withdraw(2)
    published = CertifiedKeysetList.from_signed(
        latest_keyset_list(system.ca, "bank"), system.root_pem, bank_name="bank"
    )
    (trusted,) = wallet.store.trusted_keyset_lists()
    assert trusted["bank"] == "bank"
    assert trusted["list_id"] == published.list_id
    assert trusted["sequence"] == published.sequence

    balance, outstanding = system.customer_balance(), system.outstanding()
    coins = len(wallet.store.coins())
    for extra, code in (
        (_tagging_keyset(system, 64), "keyset_list.keyset_not_certified"),
        (None, "keyset_list.keyset_withheld"),  # or hide a listed one to steer the choice
    ):
        front = TaggingKeysetFront(extra, system.client_tls())
        victim_bank = system.login(transport=front)
        with pytest.raises(EcashError) as exc:
            wallet.withdraw(64, bank=victim_bank)
        assert exc.value.code == code

        # Refused before anything was sent: no debit, no coin, no pending withdrawal.
        assert front.withdraw_calls == 0
        assert system.customer_balance() == balance
        assert system.outstanding() == outstanding
        assert len(wallet.store.coins()) == coins
        assert wallet.store.pending_withdrawals() == []
    # The list the wallet trusts is unchanged: still the one published for everyone.
    assert wallet.store.trusted_keyset_lists() == [trusted]


def test_wallet_keysets_cli_shows_the_trusted_list(
    system: System, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``ecash-tpm wallet keysets`` (docs/protocol.md 4.1): the certified list the wallet trusts."""
    from ecash_tpm.cli import main

    data = str(tmp_path / "w")
    argv = ["wallet", "keysets", "--data", data, "--bank", system.bank_url]
    assert main([*argv, "--bank-name", "bank", "--root", str(system.root_path), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    published = CertifiedKeysetList.from_signed(
        latest_keyset_list(system.ca, "bank"), system.root_pem
    )
    (trusted,) = shown["trusted_keyset_lists"]
    assert (trusted["list_id"], trusted["sequence"]) == (published.list_id, published.sequence)
    assert {bytes.fromhex(k["keyset_id"]) for k in shown["keysets"]} == published.keyset_ids
    assert main(["wallet", "keysets", "--data", data, "--offline"]) == 0
    assert published.list_id in capsys.readouterr().out
