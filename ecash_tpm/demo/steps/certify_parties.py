"""Step 2, ``certify_parties``: the central bank starts and certifies the supervision
department, the group manager, the bank, two merchants and the TTP over HTTPS, each with a
signing certificate and a TLS certificate; then every party starts as its own process on
127.0.0.1 serving TLS 1.3 only, and one handshake with each shows it (``detail["tls"]``:
protocol, the identity its certificate names, whether it asks callers for a client
certificate)."""

from __future__ import annotations

from typing import Any

from ecash_tpm.demo.cheating import merchant_command
from ecash_tpm.demo.context import DISPUTE_WINDOW_S, PCRS, StoryContext
from ecash_tpm.deploy.bootstrap import PartyInit
from ecash_tpm.deploy.local import LocalDeployment
from ecash_tpm.protocol.money import format_amount


def certify_parties(ctx: StoryContext, detail: dict[str, Any]) -> None:
    """Deploy the parties; the issuer trusts device A's PCR values as provisioned."""
    from ecash_tpm.issuer.boot_policy import BootPolicy
    from ecash_tpm.issuer.policy import PcrPolicy

    dep = LocalDeployment.create(ctx.workdir)
    ctx.deployment = dep
    ctx.on_close(dep.close)
    # Merchant B withholds content keys (case 1 of the fair-exchange seed): the demo runs it
    # through its own entry point with a cheating key release, since no setting can make a
    # merchant cheat; the TTP gives merchants a short deadline so the dispute resolves in time.
    dep.commands["merchant-b"] = merchant_command("no_key")
    dep.overrides["ttp"] = {"dispute_window_s": DISPUTE_WINDOW_S}
    cb = dep.start_central_bank()
    ctx.fact("central bank", f"{cb['url']}, root {cb['root_subject']}")
    ctx.fact("root fingerprint", f"SHA-256 {cb['root_fingerprint']}")
    detail["central_bank"] = {"url": cb["url"], "root_fingerprint": cb["root_fingerprint"]}

    golden = ctx.devices["A"].pcr_read(list(PCRS))
    policy = PcrPolicy(PCRS, {i: [golden[i]] for i in PCRS}, boot=BootPolicy())
    ctx.fact(
        "issuer's PCR policy",
        f"sha256 PCRs {list(PCRS)} must equal golden values (device A's platform as "
        "provisioned: the swtpm's synthetic boot), and the boot's event log must replay to "
        "them and show Secure Boot on; TOFU off",
    )
    ctx.fact("issuer's EK trust", "the CAs of device A's and device B's manufacturer")
    trust = [c for tpm in ctx.tpms.values() for c in sum(tpm.ca_certificates(), [])]
    certs: dict[str, Any] = {}
    ctx.fact(
        "certification",
        "each party's P-256 key, POST /v1/certify with the admin token over HTTPS; "
        "a TLS key and certificate for each party:",
    )

    def certified(party: str, init: PartyInit) -> None:
        c = init.certificate
        certs[party] = {k: c[k] for k in ("role", "name", "serial", "fingerprint")}
        ctx.say(f"        {party:<12} role {c['role']:<12} CN={c['name']:<12} serial {c['serial']}")
        if "tls" in c:
            certs[party]["tls"] = {k: c["tls"][k] for k in ("identity", "serial", "hosts")}
            ctx.say(f"        {'':<12} TLS  {c['tls']['identity']}  serial {c['tls']['serial']}")

    dep.init_parties(ek_trust=trust, pcr_policy=policy, on_certified=certified)
    detail["certificates"] = certs
    setup = dep.setup_bank()
    account = setup["account"]
    ctx.fact(
        "customer account",
        f"{account['account_id']}: {format_amount(account['balance'], account['currency'])} "
        "(scrypt password + TOTP)",
    )
    ctx.fact("merchants registered", ", ".join(m["merchant_id"] for m in setup["merchants"]))
    dep.start_parties()
    ctx.fact("parties", "each its own process on 127.0.0.1, own data dir, SQLite, config:")
    parties = {}
    for party in dep.group.parties:
        role = "bank + group manager" if party.name == "bank" else party.name
        parties[party.name] = {"pid": party.pid, "url": party.url}
        ctx.say(f"        {role:<21} {party.url:<24} pid {party.pid}")
    detail["parties"] = parties
    tls = dep.probe_tls()
    if tls:
        ctx.fact("TLS", "one handshake with each party, checked against the central-bank root:")
        for name, seen in tls.items():
            mutual = "asks for client certificates" if seen["mutual"] else "server-only"
            ctx.say(f"        {name:<12} {seen['protocol']}  {seen['identity']}  {mutual}")
    detail["tls"] = tls
