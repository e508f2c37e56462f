"""A copied wallet on another machine cannot spend: which layer refuses, and how.

The wallet directory (membership, coins, TPM key blobs) is copied to a "machine" with another
swtpm. Two attacks:

1. use the copied DAA key blobs: TPM2_Load fails on the other TPM. The private blob is
   encrypted and integrity-protected under the original TPM's storage root key (derived from
   that TPM's owner seed), so the *device layer* refuses (``tpm.key_blob_invalid``) before
   any proof exists; nothing leaves the machine.
2. give the copy a fresh DAA key on the other TPM: the wallet itself notices that the key is
   not the member's (``wallet.key_mismatch``; TPM2_Commit's K differs from the registered T0,
   ``daa.signer_output_invalid``). Forced past those checks, the proof is sent and the
   *merchant* refuses it (``daa.spend_proof_invalid``), as does the *bank* when the merchant is
   bypassed (``bank.bad_proof``): each coin fixes W = sk*S for the original TPM's sk.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from support.system import start_system
from test_e2e_payment import bank_refusal, tpm_spend

from ecash_tpm.device import TpmDevice
from ecash_tpm.errors import EcashError
from ecash_tpm.wallet.context import WalletContext
from ecash_tpm.wallet.membership import load_membership, open_signer
from ecash_tpm.wallet.pay import pay
from ecash_tpm.wallet.store import WalletStore
from ecash_tpm.wallet.tpm_signer import TpmDaaSigner

pytestmark = pytest.mark.swtpm


def test_copied_wallet_cannot_spend_on_another_tpm(
    swtpm: Any, swtpm_factory: Any, tmp_path: Path
) -> None:
    with (
        TpmDevice(swtpm.tcti) as dev,
        start_system(tmp_path / "sys", swtpm=swtpm, tpm=dev) as system,
    ):
        original = system.open_wallet(dev, tmp_path / "w")
        original.withdraw(16, strategy="fewest")
        copy_dir = tmp_path / "copy"
        shutil.copytree(original.data_dir, copy_dir)
        membership = load_membership(copy_dir)
        other_machine = swtpm_factory()
        with (
            TpmDevice(other_machine.tcti) as dev2,
            WalletStore.open(copy_dir, system.clock) as copied,
        ):
            # 1. the copied key blobs do not load on another TPM
            with pytest.raises(EcashError) as exc:
                open_signer(dev2, copy_dir, membership)
            assert exc.value.code == "tpm.key_blob_invalid"

            # 2. a fresh DAA key on the other TPM
            for blob in ("daa.pub", "daa.priv"):
                (copy_dir / "tpm" / blob).unlink()
            signer = TpmDaaSigner(dev2, dev2.load_or_create_daa_key(copy_dir / "tpm"))
            with pytest.raises(EcashError) as exc:
                open_signer(dev2, copy_dir, membership)
            assert exc.value.code == "wallet.key_mismatch"
            client = system.merchant_client("shop-1")

            wallet = WalletContext(copied, system.root_pem, system.clock, "bank")

            def attempt(expected_t0: Any = None, **kw: Any) -> EcashError:
                req = client.create_request(16)
                ctx = wallet.spending(signer, hop=membership.opener_public, expected_t0=expected_t0)
                with pytest.raises(EcashError) as err:
                    pay(ctx, req["request"], req["cert"], merchant=client, **kw)
                return err.value

            # the wallet's own checks stop it before anything is sent ...
            assert attempt(expected_t0=membership.t0).code == "daa.signer_output_invalid"
            assert attempt().code == "daa.spend_proof_invalid"  # self-check of the proof
            assert copied.balance()["EUR"]["unspent"] == 16  # nothing left: coins released
            # ... and forced past them, the merchant refuses the proof
            refused = attempt(self_check=False)
            assert refused.code == "daa.spend_proof_invalid" and refused.http_status == 400
            # the refused coin stays pending in the copy: the merchant saw a spend of it
            assert copied.balance()["EUR"] == {"unspent": 0, "pending": 16, "expired": 0}
            # ... as does the bank, when the merchant's checks are skipped
            (hc,) = copied.coins()
            req = client.create_request(16)
            spend = tpm_spend(original, hc.coin, req, signer=signer)
            assert bank_refusal(system, "shop-1", req, [spend]).code == "bank.bad_proof"
            dev2.unload(signer.key)

        # the owner, on the original TPM, still spends the coin
        assert system.merchant_balance("shop-1") == 0
        paid = original.pay(16, "shop-1")
        assert paid.amount == 16 and system.merchant_balance("shop-1") == 16
