"""Operator commands for a new epoch (docs/protocol.md 3.6, 14): the issuer rotates, the central
bank certifies the new (X, Y) once, the issuer stores the certificate and serves it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ecash_tpm.cli import main
from ecash_tpm.issuer.keys import IssuerKeyStore
from ecash_tpm.protocol.certified import IssuerEpochCertificate


def _json(capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    out: dict[str, object] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    return out


def test_rotate_certify_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ca, iss = tmp_path / "ca", tmp_path / "issuer"
    assert main(["centralbank", "init", "--data", str(ca), "--json"]) == 0
    capsys.readouterr()
    keys = IssuerKeyStore.create(iss / "issuer-keys")
    assert main(["issuer", "rotate-epoch", "--data", str(iss), "--json"]) == 0
    public = tmp_path / "epoch.json"
    public.write_text(capsys.readouterr().out)
    cert_file = tmp_path / "epoch-cert.json"
    argv = ["centralbank", "certify-issuer-epoch", "--data", str(ca), "--public", str(public)]
    assert main([*argv, "--out", str(cert_file), "--json"]) == 0
    capsys.readouterr()
    # once per epoch: another key for epoch 2 is refused
    other = json.loads(public.read_text())
    other["issuer_public"] = keys.public_info(1).issuer_public.to_dict()
    public.write_text(json.dumps(other))
    assert main([*argv, "--json"]) == 1
    assert _json(capsys)["error"]["code"] == "centralbank.issuer_epoch_conflict"  # type: ignore[index]

    assert main(["issuer", "epoch-certificate", str(cert_file), "--data", str(iss), "--json"]) == 0
    assert _json(capsys)["epoch"] == 2
    root = (ca / "root-cert.pem").read_bytes()
    stored = IssuerEpochCertificate.from_signed(keys.epoch_certificate(2), root)
    assert stored.public == keys.public_for_epoch(2)
    # a file that is no certificate, or one naming another epoch's key, is not stored
    assert main(["issuer", "epoch-certificate", str(public), "--data", str(iss), "--json"]) == 1
    assert _json(capsys)["error"]["code"] == "cli.bad_input"  # type: ignore[index]
    moved = json.loads(cert_file.read_text())
    moved["body"]["epoch"] = 1
    cert_file.write_text(json.dumps(moved))
    assert main(["issuer", "epoch-certificate", str(cert_file), "--data", str(iss), "--json"]) == 1
    assert _json(capsys)["error"]["code"] == "issuer.key_invalid"  # type: ignore[index]
    assert keys.epoch_certificate(1) is None
