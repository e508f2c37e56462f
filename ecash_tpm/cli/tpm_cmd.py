"""``ecash-tpm tpm info``: what the TPM is and whether it can join (EK chain, ECDAA on BN_P256);
``ecash-tpm tpm bench``: how fast it runs the commands the wallet issues (min/median/max).

The EK chain is checked with the pure verifier (:func:`ecash_tpm.attest.verify_ek_certificate`)
against the trust store given with ``--trust`` (PEM/DER files or directories of them; self-signed
certificates become roots, the others intermediates) or, with ``--swtpm-state DIR``, the
hermetic CA of that emulator, whose TCTI is then also the default.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import os
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from ecash_tpm.cli.output import emit
from ecash_tpm.errors import ConfigError, EcashError, InputError

_CERT_SUFFIXES = (".pem", ".crt", ".cer", ".der")


class TrustStoreError(ConfigError):
    """A ``--trust`` path is missing or holds no parsable certificate."""

    code = "cli.trust_store_invalid"


def _load_cert_file(path: Path) -> list[x509.Certificate]:
    data = path.read_bytes()
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            return x509.load_pem_x509_certificates(data)
        return [x509.load_der_x509_certificate(data)]
    except ValueError as exc:
        raise TrustStoreError(f"{path} is not a certificate: {exc}") from exc


def load_trust_store(
    paths: list[str],
) -> tuple[list[x509.Certificate], list[x509.Certificate]]:
    """(roots, intermediates) from files/directories; self-signed certificates are roots."""
    certs: list[x509.Certificate] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            # a CA directory may also hold keys and configs: take what parses as certificates
            found = []
            for f in sorted(p.iterdir()):
                if f.is_file() and f.suffix.lower() in _CERT_SUFFIXES:
                    with contextlib.suppress(TrustStoreError):
                        found.extend(_load_cert_file(f))
            if not found:
                raise TrustStoreError(f"no certificate files in {p}")
            certs.extend(found)
        elif p.is_file():
            certs.extend(_load_cert_file(p))
        else:
            raise TrustStoreError(f"trust path {p} does not exist")
    roots: list[x509.Certificate] = []
    inters: list[x509.Certificate] = []
    for c in certs:
        self_signed = False
        if c.subject == c.issuer:
            try:
                c.verify_directly_issued_by(c)
                self_signed = True
            except (ValueError, TypeError, InvalidSignature):
                self_signed = False
        (roots if self_signed else inters).append(c)
    return roots, inters


def _der_prefix(data: bytes) -> bytes:
    """The leading DER SEQUENCE of NV contents (they may carry trailing bytes)."""
    if len(data) >= 4 and data[0] == 0x30 and data[1] & 0x80:
        n = data[1] & 0x7F
        if 1 <= n <= 4:
            return data[: 2 + n + int.from_bytes(data[2 : 2 + n], "big")]
    if len(data) >= 2 and data[0] == 0x30:
        return data[: 2 + data[1]]
    return data


def _parse_lenient(data: bytes) -> x509.Certificate | None:
    try:
        from ecash_tpm.attest.ek import load_ek_certificate  # the project's lenient loader

        return load_ek_certificate(data)
    except ImportError:
        pass
    except EcashError:
        return None
    try:
        return x509.load_der_x509_certificate(_der_prefix(data))
    except ValueError:
        return None


def _verifier() -> tuple[Any, Any]:
    """(verify_ek_certificate, ek_public_matches_certificate) from the pure verifier, or None."""
    verify = match = None
    try:
        import ecash_tpm.attest as attest

        verify = getattr(attest, "verify_ek_certificate", None)
        match = getattr(attest, "ek_public_matches_certificate", None)
    except ImportError:
        return None, None
    if verify is None:
        try:
            from ecash_tpm.attest import ek as attest_ek
        except ImportError:
            return None, None
        verify = getattr(attest_ek, "verify_ek_certificate", None)
        match = match or getattr(attest_ek, "ek_public_matches_certificate", None)
    return verify, match


def _chain_status(
    raw: bytes,
    ek_public: bytes | None,
    trust: tuple[list[x509.Certificate], list[x509.Certificate]] | None,
) -> dict[str, Any]:
    if trust is None:
        return {"status": "unchecked", "message": "no trust store (use --trust or --swtpm-state)"}
    verify, match = _verifier()
    if verify is None:
        return {"status": "unavailable", "message": "EK verifier ecash_tpm.attest not available"}
    roots, inters = trust
    try:
        verify(raw, roots, inters)
    except EcashError as exc:
        return {"status": "invalid", "code": exc.code, "message": exc.message}
    out: dict[str, Any] = {"status": "valid"}
    if match is not None and ek_public is not None:
        try:
            match(raw, ek_public)
            out["key_matches_ek"] = True
        except EcashError as exc:
            out.update(status="invalid", code=exc.code, message=exc.message, key_matches_ek=False)
    return out


def _cmd_info(args: argparse.Namespace) -> int:
    from ecash_tpm.device import TpmDevice
    from ecash_tpm.device.constants import EK_SPECS

    tcti = args.tcti
    trust_paths = list(args.trust or [])
    roots: list[x509.Certificate] = []
    inters: list[x509.Certificate] = []
    if args.swtpm_state:
        from ecash_tpm.swtpm import SwtpmInstance, SwtpmNotRunningError

        inst = SwtpmInstance.load(args.swtpm_state)
        r, i = inst.ca_certificates()
        roots += r
        inters += i
        if tcti is None:
            if not inst.is_running():
                raise SwtpmNotRunningError(
                    f"swtpm in {inst.state_dir} is not running (ecash-tpm swtpm start)",
                    detail={"state_dir": str(inst.state_dir)},
                )
            tcti = inst.tcti
    if trust_paths:
        r, i = load_trust_store(trust_paths)
        roots += r
        inters += i
    if tcti is None:
        tcti = os.environ.get("ECASH_TPM_TCTI") or os.environ.get("TPM2TOOLS_TCTI")
    if tcti is None:
        from ecash_tpm.device import DEFAULT_TCTI

        tcti = DEFAULT_TCTI
    trust = (roots, inters) if (roots or inters) else None

    with TpmDevice(tcti, flush_leftovers=not args.no_flush) as tpm:
        info = tpm.info()
        eks = []
        for kind, raw in info.ek_certificates.items():
            cert = _parse_lenient(raw)
            try:
                ek_public: bytes | None = tpm.ek_public(kind)
            except EcashError:
                ek_public = None
            entry: dict[str, Any] = {
                "type": kind.value,
                "nv_index": f"0x{EK_SPECS[kind].cert_nv_index:08x}",
                "nv_size": len(raw),
                "certificate_sha256": hashlib.sha256(_der_prefix(raw)).hexdigest(),
                "certificate_b64": base64.b64encode(raw).decode(),
            }
            if cert is None:
                entry["chain"] = {"status": "unparseable", "message": "certificate does not parse"}
            else:
                entry["subject"] = cert.subject.rfc4514_string() or "(empty)"
                entry["issuer"] = cert.issuer.rfc4514_string()
                entry["not_after"] = cert.not_valid_after_utc.isoformat()
                entry["chain"] = _chain_status(raw, ek_public, trust)
            eks.append(entry)
    from ecash_tpm.crypto.native import backend_name

    payload = {"tcti": tcti, **info.to_dict(), "eks": eks, "curve_engine": backend_name()}
    emit(args, payload, lambda: _info_text(tcti, info, eks, payload["curve_engine"]))
    return 0


def _info_text(tcti: str, info: Any, eks: list[dict[str, Any]], engine: str) -> str:
    """``tpm info`` for people."""
    yes = {True: "yes", False: "NO"}
    lines = [
        f"TPM            {tcti}",
        f"manufacturer   {info.manufacturer} ({info.vendor})",
        f"firmware       {info.firmware_version}   spec {info.spec_version}",
        f"PCR banks      {', '.join(info.pcr_banks) or '(none)'}",
        f"ECDAA          {yes[info.ecdaa_supported]}   BN_P256 {yes[info.bn_p256_supported]}",
        f"host curve     {engine}",
    ]
    if not eks:
        lines.append("EK certs       none in NV (wallet join: --ek-cert FILE or --ek-cert-url)")
    for e in eks:
        chain = e["chain"]
        status = chain["status"]
        if "code" in chain:
            status += f" [{chain['code']}] {chain['message']}"
        elif status != "valid":
            status += f" ({chain['message']})"
        elif chain.get("key_matches_ek"):
            status += ", certificate key = EK from template"
        lines.append(f"EK {e['type']:<11} NV {e['nv_index']}  subject {e.get('subject', '?')}")
        lines.append(f"               issuer {e.get('issuer', '?')}  chain {status}")
    return "\n".join(lines)


def _cmd_bench(args: argparse.Namespace) -> int:
    import tempfile

    from ecash_tpm.cli.output import Progress
    from ecash_tpm.device import TpmDevice
    from ecash_tpm.device.bench import MAX_ROUNDS, run_bench

    if not 1 <= args.rounds <= MAX_ROUNDS:
        raise InputError(
            f"--rounds must be 1..{MAX_ROUNDS}",
            code="cli.bench_rounds_invalid",
            detail={"rounds": args.rounds},
        )
    from ecash_tpm.cli.wallet_cmd import resolve_tcti

    tcti = resolve_tcti(args)
    with (
        TpmDevice(tcti, flush_leftovers=not args.no_flush) as tpm,
        tempfile.TemporaryDirectory(prefix="ecash-tpm-bench-") as keys,
        Progress(args) as progress,
    ):
        info = tpm.info()
        report = run_bench(tpm, Path(keys), rounds=args.rounds, ek_kind=args.ek, progress=progress)
    payload = {
        "tcti": tcti,
        "manufacturer": info.manufacturer,
        "vendor": info.vendor,
        "firmware_version": info.firmware_version,
        **report.to_dict(),
    }
    emit(args, payload, lambda: _bench_text(payload))
    return 0


def _bench_text(p: dict[str, Any]) -> str:
    """``tpm bench`` for people: one line per operation, then the cost of one coin."""

    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f}"

    lines = [
        f"TPM  {p['tcti']}  {p['manufacturer']} ({p['vendor']}) firmware {p['firmware_version']}",
        f"{p['rounds']} round(s); ActivateCredential with the {p['ek']} EK",
        f"{'operation':<26}{'min ms':>10}{'median ms':>12}{'max ms':>10}",
    ]
    for op in p["operations"]:
        row = f"{op['operation']:<26}{ms(op['min_ms']):>10}{ms(op['median_ms']):>12}"
        row += f"{ms(op['max_ms']):>10}"
        if op["skipped"]:
            row += f"  skipped: {op['skipped']}"
        lines.append(row)
    if p["per_coin_ms"] is not None:
        lines.append(
            f"per coin of a payment (Commit + Sign, median): {p['per_coin_ms']:.1f} ms in the TPM"
        )
    return "\n".join(lines)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``tpm`` and its sub-commands to the top-level parser."""
    parser = subparsers.add_parser("tpm", help="inspect the TPM", description=__doc__)
    sub = parser.add_subparsers(dest="tpm_command", metavar="COMMAND", required=True)
    p = sub.add_parser("info", help="manufacturer, EK certificates and chain, PCR banks, ECDAA")
    p.add_argument(
        "--tcti",
        default=None,
        help="TCTI, e.g. swtpm:host=127.0.0.1,port=2321 or device:/dev/tpmrm0 "
        "(default: $ECASH_TPM_TCTI, $TPM2TOOLS_TCTI, device:/dev/tpmrm0)",
    )
    p.add_argument(
        "--trust",
        action="append",
        metavar="PATH",
        help="EK CA certificate file or directory (repeatable)",
    )
    p.add_argument("--swtpm-state", metavar="DIR", help="use this hermetic swtpm's TCTI and CA")
    p.add_argument(
        "--no-flush",
        action="store_true",
        help="do not flush leftover transient objects when opening the TPM",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_info)

    b = sub.add_parser(
        "bench",
        help="time Commit, Sign(ECDAA), Quote, Create, ActivateCredential on this TPM",
        description="Measure the TPM commands the wallet issues and print min/median/max per "
        "operation (keys are made in a temporary directory and flushed afterwards).",
    )
    b.add_argument("--tcti", default=None, help="TCTI (default as for `tpm info`)")
    b.add_argument("--swtpm-state", metavar="DIR", help="use this hermetic swtpm's TCTI")
    b.add_argument("--rounds", type=int, default=10, help="measurements per operation (10)")
    b.add_argument(
        "--ek",
        choices=["rsa2048", "ecc_p384", "ecc_p256"],
        default=None,
        help="EK for ActivateCredential (default: the join's choice among NV certificates)",
    )
    b.add_argument(
        "--no-flush",
        action="store_true",
        help="do not flush leftover transient objects when opening the TPM",
    )
    b.add_argument("--json", action="store_true", help="machine-readable output")
    b.set_defaults(func=_cmd_bench)
