"""The issuer's EK trust store: shipped manufacturer CAs plus the operator directory, and the
``ecash-tpm issuer trust list|add|remove|check`` commands."""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import pytest
from support.ek_ca import NOW, MakerCa, make_ca, make_ek, maker_name, nv_contents

from ecash_tpm.attest import EkUnknownRootError
from ecash_tpm.attest.certparse import parse_der, pem_blocks
from ecash_tpm.cli import main
from ecash_tpm.issuer.errors import EkTrustStoreConfigError
from ecash_tpm.issuer.settings import IssuerSettings
from ecash_tpm.issuer.trust import EkTrustStore, add_certificates, ek_fingerprint
from ecash_tpm.service.settings import load_settings

SHIPPED_FILES = 51


@pytest.fixture(scope="module")
def cas() -> dict[str, MakerCa]:
    return {
        "nc": make_ca(maker_name("Test TPM Root CA 2110"), noncanonical=True),
        "plain": make_ca(maker_name("Plain Maker Root", org="Plain Maker")),
        "expired": make_ca(  # expired at NOW and today
            maker_name("Expired Root"), not_after=dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
        ),
    }


def _operator_dir(tmp_path: Path, cas: dict[str, MakerCa]) -> Path:
    d = tmp_path / "ek-trust"
    d.mkdir()
    (d / "nuvoton-like.pem").write_bytes(cas["nc"].pem())
    (d / "plain.der").write_bytes(cas["plain"].der)
    (d / "expired.pem").write_bytes(cas["expired"].pem())
    (d / "broken.crt").write_bytes(b"not a certificate")
    (d / "README.txt").write_text("ignored")
    return d


def test_store_with_unusable_certificates_still_verifies_the_others(
    tmp_path: Path, cas: dict[str, MakerCa], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ecash_tpm.issuer.trust")
    d = _operator_dir(tmp_path, cas)
    store = EkTrustStore.load(d, include_shipped=True, now=NOW)
    operator = {Path(e.status.source).name: e for e in store.entries if e.origin == "operator"}
    assert set(operator) == {"nuvoton-like.pem", "plain.der", "expired.pem", "broken.crt"}
    assert operator["nuvoton-like.pem"].usable and operator["plain.der"].usable
    assert (operator["expired.pem"].status.reason or "").startswith("expired at")
    assert "does not parse" in (operator["broken.crt"].status.reason or "")
    assert "not using" in caplog.text and "broken.crt" in caplog.text
    assert sum(1 for e in store.entries if e.origin == "shipped") == SHIPPED_FILES

    for ca, noncanonical in ((cas["nc"], True), (cas["plain"], False)):
        ek, area = make_ek(ca, noncanonical=noncanonical)
        cert, got = store.verify(nv_contents(ek), area.marshal_tpm2b(), now=NOW)
        assert got == area and cert.certificate.issuer == ca.name
        chain = store.check(nv_contents(ek), now=NOW)
        entry = store.entry_for(chain.anchor)
        assert entry is not None and entry.origin == "operator"
        assert ek_fingerprint(nv_contents(ek)) == parse_der(ek).fingerprint

    # an EK under the unusable (expired) CA: unknown root, and the detail says which and why
    ek, _ = make_ek(cas["expired"], now=NOW - dt.timedelta(days=10))
    with pytest.raises(EkUnknownRootError) as exc:
        store.check(ek, now=NOW - dt.timedelta(days=5))
    assert exc.value.code == "ek.unknown_root"
    assert exc.value.detail["unusable_issuer"]["source"].endswith("expired.pem")


def test_settings_decide_the_sources(tmp_path: Path, cas: dict[str, MakerCa]) -> None:
    d = _operator_dir(tmp_path, cas)
    on = load_settings(IssuerSettings, environ={}, overrides={"data_dir": tmp_path})
    assert on.trust_shipped and on.resolved_trust_dir() == d
    store = EkTrustStore.from_settings(on, now=NOW)
    assert {e.origin for e in store.entries} == {"shipped", "operator"}
    assert len(store.roots) > 20  # unique usable anchors (fewer as manufacturer CAs expire)
    off = load_settings(
        IssuerSettings,
        environ={"ECASH_TPM_ISSUER_TRUST_SHIPPED": "false"},
        overrides={"data_dir": tmp_path},
    )
    store = EkTrustStore.from_settings(off, now=NOW)
    assert {e.origin for e in store.entries} == {"operator"} and len(store.roots) == 2
    shutil.rmtree(d)
    with pytest.raises(EkTrustStoreConfigError) as exc:
        EkTrustStore.from_settings(off, now=NOW)
    assert exc.value.code == "issuer.trust_store_invalid"
    assert EkTrustStore.from_settings(on, now=NOW, missing_ok=True).roots


def test_add_writes_original_bytes_all_or_nothing(tmp_path: Path, cas: dict[str, MakerCa]) -> None:
    d = tmp_path / "ek-trust"
    from ecash_tpm.issuer.errors import EkTrustCertUnusableError

    with pytest.raises(EkTrustCertUnusableError) as exc:
        add_certificates(
            d, [("nc.pem", cas["nc"].pem()), ("old.pem", cas["expired"].pem())], now=NOW
        )
    assert exc.value.code == "issuer.trust_cert_unusable" and not d.exists()
    written = add_certificates(d, [("Nuvoton 2110.pem", cas["nc"].pem())], now=NOW)
    ((status, path),) = written
    assert path.name.startswith("Nuvoton_2110-") and status.usable
    assert pem_blocks(path.read_bytes()) == [cas["nc"].der]  # not the re-encoded copy


# --- the CLI ------------------------------------------------------------------------------------


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code = main([*argv, "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_cli_trust_list_add_check_remove(
    tmp_path: Path, cas: dict[str, MakerCa], capsys: pytest.CaptureFixture[str]
) -> None:
    data = str(tmp_path / "issuer")
    at = NOW.isoformat()

    code, out = _run(capsys, "issuer", "trust", "list", "--data", data)
    assert code == 0 and out["trust_shipped"] and len(out["certificates"]) == SHIPPED_FILES
    nuvo = next(c for c in out["certificates"] if c["source"] == "NUVO_2110.pem")
    assert nuvo["usable"] and nuvo["canonical_der"] is False
    assert nuvo["sha256"] == "4aebe77a51ed29959a7f9f5e07a24a558dee8167f3985d724995a541c258dfda"
    assert nuvo["subject"] == "C=TW+CN=Nuvoton TPM Root CA 2110+O=Nuvoton Technology Corporation"
    ifx1 = next(c for c in out["certificates"] if c["source"] == "IFX1.pem")
    assert not ifx1["usable"] and ifx1["reason"].startswith("expired at")
    code, out = _run(capsys, "issuer", "trust", "list", "--data", data, "--unusable")
    assert {c["source"] for c in out["certificates"]} >= {"IFX1.pem", "IFX_RSA_01I.pem"}

    ca_file = tmp_path / "nuvoton-like.pem"
    ca_file.write_bytes(cas["nc"].pem())
    old_file = tmp_path / "old.pem"
    old_file.write_bytes(cas["expired"].pem())
    code, out = _run(capsys, "issuer", "trust", "add", "--data", data, str(ca_file), str(old_file))
    assert code == 1 and out["error"]["code"] == "issuer.trust_cert_unusable"
    assert out["error"]["detail"]["unusable"][0]["source"] == str(old_file)
    code, out = _run(capsys, "issuer", "trust", "add", "--data", data, str(ca_file))
    assert code == 0 and len(out["added"]) == 1

    ek, _ = make_ek(cas["nc"])
    ek_file = tmp_path / "ek-ecc.nv"
    ek_file.write_bytes(nv_contents(ek))  # raw NV contents, padding included
    code, out = _run(capsys, "issuer", "trust", "check", "--data", data, str(ek_file), "--at", at)
    assert code == 0 and out["valid"]
    assert out["anchor"]["origin"] == "operator" and out["anchor"]["source"].endswith(".pem")
    assert out["anchor"]["sha256"] == parse_der(cas["nc"].der).fingerprint
    assert out["ek"]["sha256"] == parse_der(ek).fingerprint
    assert main(["issuer", "trust", "check", "--data", data, str(ek_file), "--at", at]) == 0
    text = capsys.readouterr().out
    assert f"anchor          {parse_der(cas['nc'].der).subject_text}  (operator " in text

    stranger_ek, _ = make_ek(make_ca(maker_name("Stranger Root")))
    stranger = tmp_path / "stranger.der"
    stranger.write_bytes(stranger_ek)
    code, out = _run(capsys, "issuer", "trust", "check", "--data", data, str(stranger), "--at", at)
    assert code == 1 and out["error"]["code"] == "ek.unknown_root"
    code, out = _run(capsys, "issuer", "trust", "check", "--data", data, str(ek_file), "--at", "x")
    assert code == 1 and out["error"]["code"] == "input.invalid"

    code, out = _run(capsys, "issuer", "trust", "remove", "--data", data, "4aebe77a51ed")
    assert code == 1 and out["error"]["code"] == "issuer.trust_cert_shipped"
    code, out = _run(capsys, "issuer", "trust", "remove", "--data", data, "00000000ffff")
    assert code == 1 and out["error"]["code"] == "issuer.trust_cert_unknown"
    code, out = _run(capsys, "issuer", "trust", "remove", "--data", data, "ab")
    assert code == 1 and out["error"]["code"] == "input.invalid"
    fp = parse_der(cas["nc"].der).fingerprint
    code, out = _run(capsys, "issuer", "trust", "remove", "--data", data, fp[:12].upper())
    assert code == 0 and [r["sha256"] for r in out["removed"]] == [fp]
    assert not list((tmp_path / "issuer" / "ek-trust").iterdir())
    code, out = _run(capsys, "issuer", "trust", "check", "--data", data, str(ek_file), "--at", at)
    assert code == 1 and out["error"]["code"] == "ek.unknown_root"


def test_cli_remove_rewrites_bundle_and_takes_file_names(
    tmp_path: Path, cas: dict[str, MakerCa], capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "issuer"
    d = data / "ek-trust"
    d.mkdir(parents=True)
    (d / "bundle.pem").write_bytes(cas["nc"].pem() + cas["plain"].pem())
    (d / "broken.crt").write_bytes(b"junk")
    fp = parse_der(cas["plain"].der).fingerprint
    code, _ = _run(capsys, "issuer", "trust", "remove", "--data", str(data), fp)
    assert code == 0 and pem_blocks((d / "bundle.pem").read_bytes()) == [cas["nc"].der]
    code, _ = _run(capsys, "issuer", "trust", "remove", "--data", str(data), "broken.crt")
    assert code == 0 and sorted(p.name for p in d.iterdir()) == ["bundle.pem"]


def test_cli_init_takes_noncanonical_ca_and_reports_store(
    tmp_path: Path, cas: dict[str, MakerCa], capsys: pytest.CaptureFixture[str]
) -> None:
    ca_dir = tmp_path / "vendor"
    ca_dir.mkdir()
    (ca_dir / "root.pem").write_bytes(cas["nc"].pem())
    (ca_dir / "signkey.pem").write_text(
        "-----BEGIN PRIVATE KEY-----\nxx\n-----END PRIVATE KEY-----\n"
    )
    data = tmp_path / "issuer"
    code, out = _run(capsys, "issuer", "init", "--data", str(data), "--trust", str(ca_dir))
    assert code == 0 and out["trust_roots"] == 1 and out["trust_unusable"] == 0
    assert out["trust_shipped"] and out["trust_shipped_anchors"] > 20
    (installed,) = out["trust_installed"]
    assert pem_blocks(Path(installed).read_bytes()) == [cas["nc"].der]
