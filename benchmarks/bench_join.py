"""Timings of the attested join, TPM-made proofs, verification and opening (real swtpm).

Run: ``.venv/bin/python benchmarks/bench_join.py [--joins N] [--rounds N]``. A hermetic swtpm is
provisioned in a temporary directory (removed afterwards); the issuer runs over real HTTP on
127.0.0.1 with SQLite. Each join gets a fresh issuer (one EK can join only once) whose start-up
is not timed; "join end to end" includes creating the AK and DAA key in the TPM.

Proof generation is split into time inside TPM commands (TPM2_Commit + TPM2_Sign through
tpm2-pytss, measured around each call) and host time (the rest: BN_P256 arithmetic, hashing).
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ecash_tpm.attest import verify_certify, verify_quote
from ecash_tpm.centralbank.ca import CentralBankCA
from ecash_tpm.clients.issuer import IssuerClient
from ecash_tpm.crypto.groupsig import (
    IssuerSecret,
    JoinProof,
    OpenerSecret,
    issue_credential,
    make_join_proof,
    make_spend_proof,
    open_proof,
    verify_credential,
    verify_join_proof,
    verify_opening,
    verify_spend_proof,
)
from ecash_tpm.crypto.signing import PartyKey, sign_object
from ecash_tpm.device import EkKind, TpmDevice
from ecash_tpm.issuer.keys import IssuerKeyStore
from ecash_tpm.issuer.policy import PcrPolicy
from ecash_tpm.issuer.routes import create_issuer_app
from ecash_tpm.issuer.settings import IssuerSettings
from ecash_tpm.issuer.trust import EkTrustStore
from ecash_tpm.pki import cert_pem
from ecash_tpm.protocol.join import join_qualifying_data
from ecash_tpm.protocol.join_auth import JOIN_AUTHORISATION_KIND, JoinAuthorisation, join_binding
from ecash_tpm.protocol.registry import InMemoryRegistry
from ecash_tpm.service.server import running_server
from ecash_tpm.swtpm import SwtpmInstance
from ecash_tpm.wallet.join import (
    answer_challenge,
    finalize_membership,
    prepare_keys,
    release_keys,
    start_request,
)
from ecash_tpm.wallet.tpm_signer import TpmDaaSigner

PCRS = (0, 1, 2, 3, 7)


def report(name: str, samples_ms: list[float]) -> None:
    print(
        f"{name:<52} median {statistics.median(samples_ms):8.2f} ms"
        f"   min {min(samples_ms):8.2f} ms   ({len(samples_ms)} runs)"
    )


def timed(samples: list[float], fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    samples.append((time.perf_counter() - t) * 1e3)
    return out


@contextmanager
def issuer(
    tmp: Path, trust: EkTrustStore, policy: PcrPolicy, hop: OpenerSecret
) -> Iterator[tuple[str, Callable[[bytes], dict[str, Any]]]]:
    """An issuer on 127.0.0.1 and what the bank's ``/v1/join-authorisation`` would answer."""
    IssuerKeyStore.create(tmp / "issuer-keys")
    ca = CentralBankCA.create(tmp / "central-bank")
    (tmp / "central-bank-root.pem").write_bytes(ca.root_pem())
    bank_key = PartyKey.generate()
    bank_cert = cert_pem(ca.certify("bank", "bank", bank_key.public_key))
    ca.close()

    def grant(ak_public: bytes) -> dict[str, Any]:
        now = int(time.time())
        body = JoinAuthorisation(
            "bench", join_binding(ak_public), secrets.token_bytes(16), now, now + 120
        )
        doc = sign_object(bank_key, JOIN_AUTHORISATION_KIND, body.to_body())
        return {"authorisation": doc, "cert": bank_cert}

    app = create_issuer_app(
        IssuerSettings(data_dir=tmp),
        registry=InMemoryRegistry(),
        trust=trust,
        policy=policy,
        opener_public=hop.public,
    )
    with running_server(app) as url:
        yield url, grant


def bench_joins(tpm: TpmDevice, inst: SwtpmInstance, tmp: Path, joins: int, kind: EkKind) -> None:
    roots, inter = inst.ca_certificates()
    trust = EkTrustStore(tuple(roots), tuple(inter))
    values = tpm.pcr_read(list(PCRS))
    policy = PcrPolicy(PCRS, {i: [values[i]] for i in PCRS})
    opener = OpenerSecret.generate()
    phases: dict[str, list[float]] = {
        k: [] for k in ("total", "keys", "start", "device", "finish", "store")
    }
    for i in range(joins):
        with (
            issuer(tmp / f"issuer-{kind.value}-{i}", trust, policy, opener) as (url, grant),
            IssuerClient(url) as client,
        ):
            wallet = tmp / f"wallet-{kind.value}-{i}"
            t0 = time.perf_counter()
            keys = timed(phases["keys"], prepare_keys, tpm, wallet, kind)
            try:
                info = client.info()
                start = start_request(tpm, keys, "bench", grant(keys.ak.public))
                challenge = timed(phases["start"], client.join_start, start)
                finish = timed(phases["device"], answer_challenge, tpm, keys, challenge)
                answer = timed(phases["finish"], client.join_finish, finish)
                timed(
                    phases["store"],
                    finalize_membership,
                    wallet,
                    keys=keys,
                    start=start,
                    finish=finish,
                    answer=answer,
                    info=info,
                    issuer_url=url,
                )
            finally:
                release_keys(tpm, keys)
            phases["total"].append((time.perf_counter() - t0) * 1e3)
    label = f"join end to end, {kind.value} EK (HTTP, swtpm)"
    report(label, phases["total"])
    report("  create AK + DAA key in the TPM", phases["keys"])
    report("  join/start (EK chain, templates, MakeCredential)", phases["start"])
    report("  device: activate, quote, certify, DAA proof", phases["device"])
    report("  join/finish (verify all, issue, store, register)", phases["finish"])
    report("  member: credential proof check + membership.json", phases["store"])


def bench_proofs(tpm: TpmDevice, tmp: Path, rounds: int) -> None:
    daa = tpm.load_or_create_daa_key(tmp / "proof-keys")
    ak = tpm.load_or_create_ak(tmp / "proof-keys")
    try:
        signer = TpmDaaSigner(tpm, daa)
        issuer_secret = IssuerSecret.generate()
        cred, _ = issue_credential(issuer_secret, signer.public_point)
        opener = OpenerSecret.generate()
        hop = opener.public

        # join proof: one Commit + one Sign
        join_total, join_tpm = [], []
        proofs: list[tuple[bytes, JoinProof]] = []
        for _ in range(max(10, rounds // 5)):
            nonce = secrets.token_bytes(32)
            signer.stats.reset()
            proof = timed(join_total, make_join_proof, signer, nonce, self_check=False)
            proofs.append((nonce, proof))
            join_tpm.append(signer.stats.tpm_seconds * 1e3)
        report("join DAA proof: total", join_total)
        report("  in TPM (Commit + Sign)", join_tpm)
        report("  on host", [a - b for a, b in zip(join_total, join_tpm, strict=True)])

        # spend proof
        total, in_tpm = [], []
        spends = []
        for _ in range(rounds):
            coin = cred.randomize()
            args = {
                "hop": hop,
                "preq": secrets.token_bytes(32),
                "keyset_id": secrets.token_bytes(16),
                "epoch": 1,
                "sigma": secrets.token_bytes(32),
                "coin": coin,
            }
            signer.stats.reset()
            proof = timed(total, make_spend_proof, signer, self_check=False, **args)
            in_tpm.append(signer.stats.tpm_seconds * 1e3)
            spends.append((args, proof))
        report("spend proof: total", total)
        report("  in TPM (Commit + Sign)", in_tpm)
        report("  on host", [a - b for a, b in zip(total, in_tpm, strict=True)])

        # verification
        v_join, v_spend, v_cred, v_quote, v_certify = [], [], [], [], []
        for nonce, jp in proofs:
            timed(v_join, verify_join_proof, nonce, signer.public_point, jp)
        for args, proof in spends:
            timed(v_spend, verify_spend_proof, proof, **args)
            timed(v_cred, verify_credential, issuer_secret, *args["coin"])
        values = tpm.pcr_read(list(PCRS))
        for _ in range(20):
            qd, cd = join_qualifying_data(secrets.token_bytes(32), secrets.token_bytes(32))
            attest, sig = tpm.quote(ak, list(PCRS), qd)
            c_attest, c_sig = tpm.certify(daa, ak, cd)
            timed(v_quote, verify_quote, ak.public, attest, sig, qd, values)
            timed(
                v_certify,
                verify_certify,
                ak.public,
                c_attest,
                c_sig,
                cd,
                daa.public,
            )  # type: ignore[misc]  # noqa: E501
        report("verify join DAA proof (issuer)", v_join)
        report("verify quote (issuer, ECDSA P-256 AK)", v_quote)
        report("verify certify (issuer)", v_certify)
        report("verify spend proof (merchant/bank)", v_spend)
        report("designated credential check (bank, issuer secret)", v_cred)

        # opening
        o_open, o_verify = [], []
        for _args, proof in spends:
            t0, op = timed(o_open, open_proof, opener.h, proof.c1, proof.c2)
            timed(o_verify, verify_opening, hop, proof.c1, proof.c2, t0, op)
        report("open (T0 + Chaum-Pedersen proof)", o_open)
        report("verify opening (anyone)", o_verify)
    finally:
        tpm.unload(daa)
        tpm.unload(ak)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--joins", type=int, default=5, help="joins per EK type")
    parser.add_argument("--rounds", type=int, default=100, help="spend proofs / openings")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-join-"))
    inst = SwtpmInstance(tmp / "swtpm")
    try:
        t = time.perf_counter()
        inst.provision()
        inst.start()
        print(f"swtpm provisioned and started in {(time.perf_counter() - t) * 1e3:.0f} ms")
        with TpmDevice(inst.tcti) as tpm:
            for kind in (EkKind.RSA_2048, EkKind.ECC_P384):
                bench_joins(tpm, inst, tmp, args.joins, kind)
            bench_proofs(tpm, tmp, args.rounds)
    finally:
        inst.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
