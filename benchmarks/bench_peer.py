"""Side by side with Cashu's reference mint (nutshell), per coin, in one run (issue 13 item 7).

Run: ``.venv/bin/python benchmarks/bench_peer.py [--rounds 3] [--coins 16]
[--cashu-venv DIR] [--tls] [--quick] [--out benchmarks/results] [--img docs/img]``.

Peer: ``pip install cashu`` (pinned, see ``CASHU_SPEC``) into a throwaway virtualenv in a
temporary directory (``--cashu-venv DIR`` reuses one made before), then nutshell's ``mint`` on a
free port of 127.0.0.1 with SQLite (``MINT_DATABASE`` in the temporary directory), its
``FakeWallet`` Lightning backend (invoices paid at once), input fees 0 and rate limits off. A
small driver script, written to the temporary directory and run with the virtualenv's Python,
uses nutshell's own wallet-side BDHKE (NUT-00) and plain HTTP to time, per round of ``--coins``
coins of amount 1: ``POST /v1/mint/bolt11`` (outputs blinded beforehand; the quote and its
payment are timed apart), ``POST /v1/swap`` (all the coins in, as many fresh outputs out) and
``POST /v1/checkstate`` (all the coins' Y). Nutshell's log level is WARNING.

Ours: the system of ``tests/support/system.py`` with its own swtpm, one denomination of 1 (so n
units are n coins), plain HTTP like the mint (``--tls``: TLS 1.3 and mutual TLS as deployed).
Per round: ``wallet.withdraw(coins)`` (the bank's ``POST /v1/withdraw`` round trip is timed
apart from the wallet's whole withdrawal), a swap of all of them for as many new coins
(``POST /v1/swap``, TPM spend proofs made beforehand), ``wallet.pay(coins)`` (the merchant's
deposit at the bank, ``POST /v1/deposit`` with every coin, timed apart from the whole payment)
and the batch ``POST /v1/coins/status`` of the withdrawn coins. Both sides' figures are HTTP
round trips seen by the client, with the client's own cryptography done before the clock starts.

Rounds alternate (ours, theirs, ours, ...) so a loaded machine's drift hits both; figures are
medians over rounds, divided by ``--coins``. JSON to ``benchmarks/results/bench_peer.json``, a
bar chart to ``docs/img/bench_peer.png`` (``bench_peer_tls.*`` with ``--tls``). The only network
use is the pip install.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.system import start_system  # noqa: E402
from timing import Timed, TimedGateway  # noqa: E402

from ecash_tpm.crypto import native  # noqa: E402
from ecash_tpm.device import TpmDevice  # noqa: E402
from ecash_tpm.protocol.status import CoinStatusStatement  # noqa: E402
from ecash_tpm.swtpm import SwtpmInstance  # noqa: E402

#: nutshell 0.20.2 with the two dependency pins it needs to start on a fresh install today
#: (environs 9 reads ``marshmallow.__version_info__``, gone in marshmallow 4; slowapi's
#: strategy ``fixed-window-elastic-expiry`` is gone in limits 5).
CASHU_SPEC = ("cashu==0.20.2", "marshmallow<4", "limits<5")
PIP_TIMEOUT_S = 1200
START_TIMEOUT_S = 90

DRIVER = r'''
"""Drives a nutshell mint over HTTP (NUT-00..07); prints per-round timings as JSON."""
import json
import secrets
import sys
import time

import httpx
from cashu.core.crypto.b_dhke import hash_to_curve, step1_alice, step3_alice
from cashu.core.crypto.secp import PublicKey

url, coins = sys.argv[1], int(sys.argv[2])
http = httpx.Client(base_url=url, timeout=60.0)
keyset = next(
    k for k in http.get("/v1/keysets").json()["keysets"] if k["active"] and k["unit"] == "sat"
)
kid = keyset["id"]
keys = http.get(f"/v1/keys/{kid}").json()["keysets"][0]["keys"]
mint_key = PublicKey(bytes.fromhex(keys["1"]))


def outputs(n):
    made = []
    for _ in range(n):
        secret = secrets.token_hex(32)
        b_, r = step1_alice(secret)
        made.append((secret, r, {"amount": 1, "id": kid, "B_": b_.format().hex()}))
    return made


def unblind(made, signatures):
    proofs = []
    for (secret, r, _), sig in zip(made, signatures, strict=True):
        c = step3_alice(PublicKey(bytes.fromhex(sig["C_"])), r, mint_key)
        proofs.append({"amount": 1, "id": kid, "secret": secret, "C": c.format().hex()})
    return proofs


def post(path, body):
    answer = http.post(path, json=body)
    if answer.status_code != 200:
        raise SystemExit(f"{path}: HTTP {answer.status_code} {answer.text[:300]}")
    return answer.json()


made = outputs(coins)
t0 = time.perf_counter()
quote = post("/v1/mint/quote/bolt11", {"amount": coins, "unit": "sat"})
t1 = time.perf_counter()
for _ in range(200):
    state = http.get(f"/v1/mint/quote/bolt11/{quote['quote']}").json()
    if state.get("state") == "PAID" or state.get("paid") is True:
        break
    time.sleep(0.05)
else:
    raise SystemExit("the FakeWallet backend never marked the mint quote paid")
t2 = time.perf_counter()
minted = post("/v1/mint/bolt11", {"quote": quote["quote"], "outputs": [o for *_, o in made]})
t3 = time.perf_counter()
proofs = unblind(made, minted["signatures"])
fresh = outputs(coins)
t4 = time.perf_counter()
post("/v1/swap", {"inputs": proofs, "outputs": [o for *_, o in fresh]})
t5 = time.perf_counter()
ys = [hash_to_curve(p["secret"].encode()).format().hex() for p in proofs]
t6 = time.perf_counter()
states = post("/v1/checkstate", {"Ys": ys})["states"]
t7 = time.perf_counter()
if [s["state"] for s in states] != ["SPENT"] * coins:
    raise SystemExit(f"checkstate: expected {coins} SPENT, got {states[:2]}")
print(json.dumps({
    "mint_quote_ms": (t1 - t0) * 1e3,
    "mint_ms": (t3 - t2) * 1e3,
    "swap_ms": (t5 - t4) * 1e3,
    "checkstate_ms": (t7 - t6) * 1e3,
}))
'''


# --- the peer ------------------------------------------------------------------------------


def _run(cmd: list[str], timeout: float, what: str, **kw: Any) -> str:
    try:
        done = subprocess.run(  # noqa: S603 (fixed argv, no shell)
            cmd, capture_output=True, text=True, timeout=timeout, check=False, **kw
        )
    except subprocess.TimeoutExpired as exc:
        raise SystemExit(f"nutshell: {what} took more than {timeout:.0f} s") from exc
    if done.returncode != 0:
        tail = (done.stderr or done.stdout)[-2000:]
        raise SystemExit(f"nutshell: {what} failed (exit {done.returncode}):\n{tail}")
    return done.stdout


def make_cashu_venv(where: Path) -> Path:
    """A fresh virtualenv with ``CASHU_SPEC`` (pip from PyPI); its Python."""
    print(f"installing {' '.join(CASHU_SPEC)} into a throwaway virtualenv ...", flush=True)
    _run([sys.executable, "-m", "venv", str(where)], 300, "python -m venv")
    python = where / "bin" / "python"
    _run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *CASHU_SPEC],
        PIP_TIMEOUT_S,
        f"pip install {' '.join(CASHU_SPEC)}",
    )
    return python


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running_mint(python: Path, work: Path) -> Iterator[str]:
    """nutshell's mint on 127.0.0.1 (SQLite, FakeWallet) until exit; its base URL."""
    import httpx

    mint = python.parent / "mint"
    if not mint.exists():
        raise SystemExit(f"nutshell: no `mint` entry point in {python.parent}")
    port = _free_port()
    home = work / "home"
    home.mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),  # no ~/.cashu/.env of the user's
        "CASHU_DIR": str(home / ".cashu"),
        "MINT_BACKEND_BOLT11_SAT": "FakeWallet",
        "MINT_LISTEN_HOST": "127.0.0.1",
        "MINT_LISTEN_PORT": str(port),
        "MINT_PRIVATE_KEY": "bench-peer-throwaway-key",  # a fresh mint's seed, nothing else
        "MINT_DATABASE": str(work / "mint-db"),  # a directory: SQLite
        "MINT_INPUT_FEE_PPK": "0",
        "MINT_RATE_LIMIT": "false",
        "FAKEWALLET_DELAY_INCOMING_PAYMENT": "0",
        "DEBUG": "false",
        "LOG_LEVEL": "WARNING",  # no per-request logging (our servers log no access lines)
    }
    log = (work / "mint.log").open("w")
    proc = subprocess.Popen(  # noqa: S603 (fixed argv, no shell)
        [str(mint)], cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                tail = (work / "mint.log").read_text()[-2000:]
                raise SystemExit(f"nutshell: the mint exited ({proc.returncode}):\n{tail}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/v1/info", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise SystemExit(f"nutshell: no /v1/info within {START_TIMEOUT_S} s")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(15)
        log.close()


def peer_round(python: Path, driver: Path, url: str, coins: int) -> dict[str, float]:
    out = _run([str(python), str(driver), url, str(coins)], 300, "the driver round")
    return dict(json.loads(out.strip().splitlines()[-1]))


# --- ours ----------------------------------------------------------------------------------


def our_round(wallet: Any, bank: Any, gateway: TimedGateway, coins: int) -> dict:
    """withdraw ``coins``, swap them all for as many new ones, pay with those, batch status of
    the withdrawn ones; ``bank`` is the wallet's client with ``withdraw``/``swap`` timed."""
    from ecash_tpm.wallet.swap import swap_coins

    system = wallet.system
    bank.withdraw.seconds = bank.swap.seconds = 0.0
    t0 = time.perf_counter()
    result = wallet.withdraw(coins)
    t1 = time.perf_counter()
    if len(result.coins) != coins:
        raise RuntimeError(f"withdrew {len(result.coins)} coins, not {coins}")
    swap_coins(
        wallet.spending(),
        bank,
        credential=wallet.membership.credential,
        epoch=wallet.membership.epoch,
        inputs=result.coins,
        values=[1] * coins,
    )
    offer = wallet.request(coins, "shop-1")
    gateway.deposit.seconds = 0.0
    t2 = time.perf_counter()
    paid = wallet.pay(request=offer, merchant="shop-1")
    t3 = time.perf_counter()
    serials = [c.sigma for c in result.coins]
    status_client = system.bank_client()
    t4 = time.perf_counter()
    answer = status_client.coin_statuses(serials)
    t5 = time.perf_counter()
    statement = CoinStatusStatement.from_signed(
        answer["status"], answer["cert"], system.root_pem, serials=serials, now=system.clock()
    )  # checked after the clock stopped, like the peer's answer
    states = sorted({str(c.state) for c in statement.coins})
    return {
        "withdraw_ms": bank.withdraw.seconds * 1e3,
        "swap_ms": bank.swap.seconds * 1e3,
        "withdraw_wallet_ms": (t1 - t0) * 1e3,
        "deposit_ms": gateway.deposit.seconds * 1e3,
        "pay_wallet_ms": (t3 - t2) * 1e3,
        "proofs_ms": float(paid.timings.get("proofs_s", 0.0)) * 1e3,
        "status_ms": (t5 - t4) * 1e3,
        "states": states,
    }


# --- report --------------------------------------------------------------------------------

PAIRS = (
    ("withdraw", "withdraw_ms", "mint", "mint_ms"),
    ("deposit", "deposit_ms", "swap", "swap_ms"),
    ("swap", "swap_ms", "swap", "swap_ms"),
    ("batch status", "status_ms", "checkstate", "checkstate_ms"),
)


def _median_per_coin(rounds: list[dict[str, Any]], key: str, coins: int) -> float:
    return round(statistics.median(r[key] for r in rounds) / coins, 3)


def _plot(summary: dict[str, Any], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.2))
    labels = [f"our {o}\nvs its {t}" for o, _, t, _ in PAIRS]
    ours = [summary["ours_ms_per_coin"][o] for o, *_ in PAIRS]
    theirs = [summary["nutshell_ms_per_coin"][t] for _, _, t, _ in PAIRS]
    xs = range(len(PAIRS))
    ax.bar([x - 0.2 for x in xs], ours, 0.4, label="ecash-tpm")
    ax.bar([x + 0.2 for x in xs], theirs, 0.4, label="nutshell")
    ax.set_xticks(list(xs))
    ax.set_xticklabels(
        [
            f"{label}\nx{summary['ratio_ours_theirs'][o]:.2f}"
            for label, (o, *_) in zip(labels, PAIRS, strict=True)
        ]
    )
    ax.set_ylabel("ms per coin (median of rounds)")
    ax.set_title(title, fontsize=9)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--coins", type=int, default=16, help="coins per round (1..64)")
    parser.add_argument("--cashu-venv", type=Path, help="reuse a virtualenv with cashu in it")
    parser.add_argument("--tls", action="store_true", help="ours with TLS + mutual TLS")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--img", type=Path, default=Path("docs/img"))
    parser.add_argument("--quick", action="store_true", help="one round of 4 coins")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.coins = 1, 4
    if not 1 <= args.rounds <= 20 or not 1 <= args.coins <= 64:
        raise SystemExit("--rounds must be in 1..20 and --coins in 1..64")
    coins = args.coins
    load_before = os.getloadavg()
    started = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="bench-peer-") as tmp:
        work = Path(tmp)
        if args.cashu_venv is not None:
            python = args.cashu_venv / "bin" / "python"
            if not python.exists():
                raise SystemExit(f"--cashu-venv: no {python}")
        else:
            python = make_cashu_venv(work / "cashu-venv")
        version = _run(
            [str(python), "-c", "import importlib.metadata as m; print(m.version('cashu'))"],
            60,
            "reading the cashu version",
        ).strip()
        driver = work / "driver.py"
        driver.write_text(DRIVER)
        tpm_state = SwtpmInstance(work / "swtpm")
        tpm_state.provision()
        tpm_state.start()
        ours: list[dict[str, Any]] = []
        theirs: list[dict[str, float]] = []
        try:
            with (
                running_mint(python, work / "mint") as mint_url,
                TpmDevice(tpm_state.tcti) as device,
                start_system(
                    work / "sys",
                    swtpm=tpm_state,
                    tpm=device,
                    denominations=(1,),
                    initial_balance=(args.rounds + 1) * coins + 1,
                    tls=args.tls,
                ) as system,
            ):
                wallet = system.open_wallet(device, work / "wallet")
                bank = wallet.bank()
                bank.withdraw = Timed(bank.withdraw)  # type: ignore[method-assign]
                bank.swap = Timed(bank.swap)  # type: ignore[method-assign]
                merchant = system.merchants["shop-1"]
                gateway = TimedGateway(merchant.bank)
                merchant.bank = gateway
                # warm-up of both (connections, keyset caches, the mint's first keyset load)
                our_round(wallet, bank, gateway, 1)
                peer_round(python, driver, mint_url, 1)
                print(f"nutshell {version} at {mint_url}; ours at {system.bank_url}", flush=True)
                for rnd in range(args.rounds):
                    ours.append(our_round(wallet, bank, gateway, coins))
                    theirs.append(peer_round(python, driver, mint_url, coins))
                    o, t = ours[-1], theirs[-1]
                    print(
                        f"round {rnd}: ours withdraw {o['withdraw_ms']:.1f} deposit "
                        f"{o['deposit_ms']:.1f} swap {o['swap_ms']:.1f} status "
                        f"{o['status_ms']:.1f} | nutshell mint {t['mint_ms']:.1f} swap "
                        f"{t['swap_ms']:.1f} checkstate {t['checkstate_ms']:.1f}"
                        f"  (ms for {coins} coins)",
                        flush=True,
                    )
                wallet.close()
        finally:
            tpm_state.cleanup()

    ours_pc = {o: _median_per_coin(ours, key, coins) for o, key, _, _ in PAIRS}
    ours_pc |= {
        "withdraw (whole wallet withdrawal)": _median_per_coin(ours, "withdraw_wallet_ms", coins),
        "pay (whole payment incl. TPM proofs and deposit)": _median_per_coin(
            ours, "pay_wallet_ms", coins
        ),
        "TPM spend proofs": _median_per_coin(ours, "proofs_ms", coins),
    }
    theirs_pc = {t: _median_per_coin(theirs, key, coins) for _, _, t, key in PAIRS}
    theirs_pc["mint quote"] = _median_per_coin(theirs, "mint_quote_ms", coins)
    ratios = {o: round(ours_pc[o] / theirs_pc[t], 2) for o, _, t, _ in PAIRS}
    summary = {
        "what": "ms per coin, median over rounds; HTTP round trips seen by the client",
        "coins_per_round": coins,
        "rounds": args.rounds,
        "ours_transport": "TLS 1.3 + mutual TLS" if args.tls else "plain HTTP",
        "nutshell_transport": "plain HTTP",
        "nutshell_version": version,
        "nutshell_setup": "SQLite, FakeWallet bolt11 backend, input fee 0, rate limits off",
        "ours_ms_per_coin": ours_pc,
        "nutshell_ms_per_coin": theirs_pc,
        "ratio_ours_theirs": ratios,
    }
    result = {
        **summary,
        "engine": native.backend_name(),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
            "seconds": round(time.perf_counter() - started, 1),
        },
        "ours_rounds_ms": ours,
        "nutshell_rounds_ms": theirs,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    name = "bench_peer_tls" if args.tls else "bench_peer"
    (args.out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    title = (
        f"per coin, {coins} coins x {args.rounds} rounds; ecash-tpm ({summary['ours_transport']},"
        f" swtpm) vs nutshell {version} (plain HTTP)"
    )
    _plot(summary, args.img / f"{name}.png", title)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
