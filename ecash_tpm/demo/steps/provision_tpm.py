"""Step 1, ``provision_tpm``: two hermetic swtpm, device A (the customer's) and device B (a
thief's, for step 9); the facts shown are read from the TPMs and their EK chains checked."""

from __future__ import annotations

import concurrent.futures
from typing import TYPE_CHECKING, Any

from ecash_tpm.demo.context import StoryContext

if TYPE_CHECKING:
    from ecash_tpm.device import TpmDevice
    from ecash_tpm.swtpm import SwtpmInstance


def provision_tpm(ctx: StoryContext, detail: dict[str, Any]) -> None:
    """Provision both TPMs in parallel (slow), then start them from this thread."""
    from ecash_tpm.device import TpmDevice
    from ecash_tpm.swtpm import SwtpmInstance

    tpms = {dev: SwtpmInstance(ctx.workdir / f"tpm-{dev.lower()}") for dev in ("A", "B")}
    ctx.tpms = tpms
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        for future in [pool.submit(t.provision) for t in tpms.values()]:
            future.result()
    for dev, tpm in tpms.items():
        tpm.start()  # from this thread: the emulator dies with the demo
        ctx.on_close(tpm.stop)
        device = TpmDevice(tpm.tcti)
        ctx.devices[dev] = device
        ctx.on_close(device.close)
        facts = _tpm_facts(ctx, dev, tpm, device)
        detail[f"device_{dev.lower()}"] = facts


def _tpm_facts(
    ctx: StoryContext, dev: str, tpm: SwtpmInstance, device: TpmDevice
) -> dict[str, Any]:
    """What the demo shows of one TPM; its EK certificates verified against its CAs."""
    from ecash_tpm.attest import verify_ek_certificate

    info = device.info()
    roots, inters = tpm.ca_certificates()
    eks = {}
    for kind, raw in info.ek_certificates.items():
        cert = verify_ek_certificate(raw, roots, inters)
        eks[kind.value] = {
            "subject": cert.subject.rfc4514_string() or "(empty)",
            "issuer": cert.issuer.rfc4514_string(),
            "chain": "valid",
        }
    who = "the customer's" if dev == "A" else "a thief's, for the stolen copy"
    ctx.say(f"      device {dev} ({who}): swtpm pid {tpm.pid}, {tpm.tcti}")
    ctx.fact(
        "manufacturer",
        f"{info.manufacturer} ({info.vendor}), firmware "
        f"{info.firmware_version}, spec {info.spec_version}",
    )
    ctx.fact(
        "EK certificates",
        ", ".join(eks) + f" (CA inside the work dir: {roots[0].subject.rfc4514_string()})",
    )
    ctx.fact("ECDAA on BN_P256", "yes" if info.bn_p256_supported else "NO")
    return {
        "tcti": tpm.tcti,
        "pid": tpm.pid,
        "manufacturer": info.manufacturer,
        "firmware": info.firmware_version,
        "pcr_banks": info.pcr_banks,
        "ecdaa_bn_p256": info.ecdaa_supported and info.bn_p256_supported,
        "eks": eks,
    }
