"""Issuer building blocks without a TPM: epoch key store, PCR policy, EK trust store, registry
entries, settings, and the CLI's init/members/revoke on the data directory."""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path

import pytest
from support.join_kit import make_ca

from ecash_tpm.cli import main
from ecash_tpm.crypto.bn256 import G
from ecash_tpm.crypto.encoding import b64u_encode
from ecash_tpm.crypto.groupsig import IssuerSecret, OpenerSecret
from ecash_tpm.errors import InputError
from ecash_tpm.issuer.errors import (
    EkTrustStoreConfigError,
    IssuerKeyError,
    IssuerKeyPermissionError,
    OpenerKeyConfigError,
    PcrPolicyConfigError,
    PcrPolicyError,
    UnknownEpochError,
)
from ecash_tpm.issuer.keys import IssuerKeyStore
from ecash_tpm.issuer.policy import PcrPolicy
from ecash_tpm.issuer.routes import load_opener_public
from ecash_tpm.issuer.settings import IssuerSettings
from ecash_tpm.issuer.trust import EkTrustStore
from ecash_tpm.protocol.registry import InMemoryRegistry, RegistryEntry, member_id_for_t0
from ecash_tpm.service.settings import load_settings

# --- IssuerKeyStore ----------------------------------------------------------------------------


def test_key_store_epochs_and_permissions(tmp_path: Path) -> None:
    d = tmp_path / "keys"
    with pytest.raises(IssuerKeyError) as err:
        IssuerKeyStore.open(d)
    assert err.value.code == "issuer.key_invalid"
    store = IssuerKeyStore.create(d)
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    assert store.epochs() == [1] and store.current_epoch == 1
    f = d / "epoch-00000001.key"
    assert stat.S_IMODE(f.stat().st_mode) == 0o600 and len(f.read_bytes()) == 64
    s1 = store.secret_for_epoch(1)
    assert isinstance(s1, IssuerSecret)
    # a second process (the bank) opens the same directory and sees the same key
    bank_view = IssuerKeyStore.open(d)
    assert bank_view.secret_for_epoch(1).to_bytes() == s1.to_bytes()
    assert IssuerKeyStore.create(d).epochs() == [1]  # create is idempotent

    assert store.rotate() == 2
    assert bank_view.current_epoch == 2  # rotations are seen without reopening
    assert bank_view.secret_for_epoch(2).to_bytes() != s1.to_bytes()
    info = bank_view.public_info()
    assert (
        info.epoch == 2
        and info.to_dict()["issuer_public"] == bank_view.public_for_epoch(2).to_dict()
    )
    assert s1.x * G == store.public_info(1).issuer_public.X

    with pytest.raises(UnknownEpochError) as err2:
        store.secret_for_epoch(7)
    assert err2.value.code == "issuer.unknown_epoch" and err2.value.http_status == 404
    with pytest.raises(UnknownEpochError):
        store.secret_for_epoch(-1)

    os.chmod(d / "epoch-00000002.key", 0o644)
    fresh = IssuerKeyStore.open(d)
    with pytest.raises(IssuerKeyPermissionError) as err3:
        fresh.secret_for_epoch(2)
    assert err3.value.code == "issuer.key_permissions"
    (d / "epoch-00000003.key").write_bytes(b"short")
    os.chmod(d / "epoch-00000003.key", 0o600)
    with pytest.raises(IssuerKeyError):
        fresh.secret_for_epoch(3)


# --- PCR policy --------------------------------------------------------------------------------


def test_policy_checks_every_pcr(tmp_path: Path) -> None:
    zero, one = bytes(32), bytes([1]) * 32
    policy = PcrPolicy([0, 7], {0: [zero], 7: [zero, one]})
    policy.check({0: zero, 7: one})
    with pytest.raises(PcrPolicyError) as err:
        policy.check({0: one, 7: one})
    assert err.value.code == "join.pcr_policy_violation" and err.value.detail["pcrs"] == [0]
    with pytest.raises(PcrPolicyError):
        policy.check({0: zero})  # not the whole selection
    path = tmp_path / "p.json"
    policy.save(path)
    again = PcrPolicy.load(path)
    assert again.to_dict() == policy.to_dict() and again.selection() == {
        "bank": "sha256",
        "pcrs": [0, 7],
    }


@pytest.mark.parametrize(
    "data",
    [
        {"version": 2, "pcrs": [0], "allowed": {}},
        {"version": 1, "bank": "sha1", "pcrs": [0], "allowed": {"0": ["00" * 32]}},
        {"version": 1, "pcrs": [], "allowed": {}},
        {"version": 1, "pcrs": [0, 0], "allowed": {"0": ["00" * 32]}},
        {"version": 1, "pcrs": [24], "allowed": {}},
        {"version": 1, "pcrs": [0, 7], "allowed": {"0": ["00" * 32]}},  # PCR 7 uncovered
        {"version": 1, "pcrs": [0], "allowed": {"0": ["zz"]}},
        {"version": 1, "pcrs": [0], "allowed": {"1": ["00" * 32], "0": ["00" * 32]}},
    ],
)
def test_policy_config_errors(data: dict) -> None:
    with pytest.raises(PcrPolicyConfigError) as err:
        PcrPolicy.from_dict(data)
    assert err.value.code == "issuer.pcr_policy_invalid"


def test_tofu_is_loud_and_persistent(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="ecash_tpm.issuer.policy")
    path = tmp_path / "p.json"
    PcrPolicy([0, 1], {}, tofu=True).save(path)
    assert "TRUST-ON-FIRST-USE" in caplog.text
    with pytest.raises(PcrPolicyConfigError):
        PcrPolicy.load(path)  # without TOFU an uncovered selection is a config error
    policy = PcrPolicy.load(path, tofu=True)
    policy.check({0: bytes(32), 1: bytes([2]) * 32})
    assert "TOFU: accepting" in caplog.text
    PcrPolicy.load(path).check({0: bytes(32), 1: bytes([2]) * 32})
    with pytest.raises(PcrPolicyConfigError):
        PcrPolicy.load(tmp_path / "missing.json")


# --- EK trust store ------------------------------------------------------------------------------


def test_trust_store_directory(tmp_path: Path) -> None:
    root, _ = make_ca("Root A")
    d = tmp_path / "trust"
    with pytest.raises(EkTrustStoreConfigError):
        EkTrustStore.load(d)
    EkTrustStore.install(d, [root])
    (d / "notes.txt").write_text("ignored")
    store = EkTrustStore.load(d)
    assert [c.certificate for c in store.roots] == [root] and store.intermediates == ()
    (d / "bad.pem").write_text("-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n")
    store = EkTrustStore.load(d)  # reported with its reason, never disables the others
    assert [c.certificate for c in store.roots] == [root]
    assert [e.usable for e in store.entries] == [False, True]


# --- registry entries and opener key -------------------------------------------------------------


def test_registry_entry_round_trip() -> None:
    t0 = 5 * G
    entry = RegistryEntry(member_id_for_t0(t0), t0, "acct", 3)
    assert entry.member_id.startswith("m-") and len(entry.member_id) == 34
    assert RegistryEntry.from_body(entry.to_body()) == entry
    with pytest.raises(InputError):
        RegistryEntry.from_body({**entry.to_body(), "member_id": "m-00"})
    with pytest.raises(InputError):
        RegistryEntry.from_body({**entry.to_body(), "t0": "AAAA"})
    reg = InMemoryRegistry()
    reg.register(entry)
    reg.register(entry)
    assert reg.lookup() == {t0.encode(): entry.member_id}


def test_opener_public_configuration(tmp_path: Path) -> None:
    hop = OpenerSecret.generate().public
    text = b64u_encode(hop.encode())
    assert load_opener_public(IssuerSettings(data_dir=tmp_path, opener_public=text)) == hop
    f = tmp_path / "hop.txt"
    f.write_text(text + "\n")
    assert load_opener_public(IssuerSettings(data_dir=tmp_path, opener_public_file=f)) == hop
    with pytest.raises(OpenerKeyConfigError):
        load_opener_public(IssuerSettings(data_dir=tmp_path / "empty"))
    with pytest.raises(OpenerKeyConfigError):
        load_opener_public(IssuerSettings(data_dir=tmp_path, opener_public="AAAA"))


def test_settings_from_environment(tmp_path: Path) -> None:
    s = load_settings(
        IssuerSettings,
        environ={"ECASH_TPM_ISSUER_PCR_TOFU": "true", "ECASH_TPM_ISSUER_JOIN_TTL_S": "60"},
        overrides={"data_dir": tmp_path},
    )
    assert s.pcr_tofu and s.join_ttl_s == 60 and s.port == 8081
    assert s.resolved_key_dir() == tmp_path / "issuer-keys"
    assert s.resolved_policy_file() == tmp_path / "pcr-policy.json"


# --- CLI -----------------------------------------------------------------------------------------


def test_cli_init_members_revoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root, _ = make_ca("CLI Root")
    ca_file = tmp_path / "root.pem"
    from cryptography.hazmat.primitives.serialization import Encoding

    ca_file.write_bytes(root.public_bytes(Encoding.PEM))
    hop = b64u_encode(OpenerSecret.generate().public.encode())
    data = tmp_path / "issuer"
    argv = ["issuer", "init", "--data", str(data), "--trust", str(ca_file), "--opener-public", hop]
    assert main([*argv, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] and out["epoch"] == 1 and out["trust_roots"] == 1
    assert out["opener_public_configured"]
    assert stat.S_IMODE((data / "issuer-keys" / "epoch-00000001.key").stat().st_mode) == 0o600
    assert json.loads((data / "pcr-policy.json").read_text())["pcrs"] == [0, 1, 2, 3, 7]
    assert stat.S_IMODE((data / "issuer-key.pem").stat().st_mode) == 0o600
    assert main(argv) == 0  # re-running keeps everything
    assert "kept" in capsys.readouterr().out
    assert IssuerKeyStore.open(data / "issuer-keys").epochs() == [1]

    assert main(["issuer", "members", "--data", str(data), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["members"] == []
    assert main(["issuer", "revoke", "m-nope", "--data", str(data), "--reason", "x", "--json"]) == 1
    err = json.loads(capsys.readouterr().out)
    assert err["error"]["code"] == "issuer.member_not_found"
    assert main(["issuer", "rotate-epoch", "--data", str(data), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["epoch"] == 2
    assert main(["issuer", "init", "--data", str(data), "--allow", "7=zz"]) == 1
    capsys.readouterr()
