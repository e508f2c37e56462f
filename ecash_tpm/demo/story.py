"""``ecash-tpm demo``: the whole system told as one story, every party its own process.

The story (DESIGN §1, §4, §5), one step each, in this order (:data:`STEPS`):

1. ``provision_tpm``: two hermetic swtpm, device A (the customer's) and device B (a thief's);
2. ``certify_parties``: the central bank starts and certifies the supervision department, the
   group manager, the bank and two merchants over HTTP; every party starts on 127.0.0.1;
3. ``join``: device A joins the group (EK chain, AK, ActivateCredential, PCR quote, DAA proof);
4. ``withdraw``: the customer logs in (password + TOTP) and withdraws 100 as blind-signed coins
   (plus one coin of a keyset whose deposit window closes a few seconds later, for step 10);
5. ``pay``: 37 at merchant A with one TPM spend proof per coin;
6. ``deposit``: merchant A deposited; the bank's receipt is checked, balances on every side;
6a. ``change``: a payment with no exact combination: one anonymous swap at the bank, then paid;
6b. ``refund``: merchant A refunds 5 of the 37, the wallet claims fresh coins with a TPM
    ownership proof of the refunded coins, the bank debits merchant A (issue 12);
7. ``double_spend_rejected``: a re-spend of one of those coins at merchant B gets 409;
8. ``double_spender_identified``: the bank's report was opened by the supervision department;
   its openings name the member and are verified here;
9. ``stolen_coin_rejected``: a copy of the wallet on device B cannot spend;
10. ``expired_coin_rejected``: the short-lived keyset's coin is refused by merchant and bank;
11. ``audit``: the bank reports its money supply to the central bank; the supervision
    department audits the bank's database against it;
12. ``fair_exchange``: digital goods with an offline TTP (DESIGN §6): an honest purchase at
    merchant A that never involves the TTP, then a purchase at merchant B, which withholds
    the content key, resolved by the TTP releasing its escrowed key and striking merchant B.

The wallet runs in
this process on device A through the wallet library (its CLI does the same calls); attacks
that a correct wallet refuses to make are played by small helpers, as a modified wallet would.

Each step is a function in its own module of :mod:`ecash_tpm.demo.steps`; what the steps hand
to each other is a :class:`~ecash_tpm.demo.context.StoryContext`. This module holds their order
(:data:`STORY`) and runs them: :func:`run_demo` is what ``ecash-tpm demo`` calls.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecash_tpm.demo.context import (
    PAY_AMOUNT,
    WITHDRAW_AMOUNT,
    DemoCheckError,
    StoryContext,
    StoryObserver,
)
from ecash_tpm.demo.runner import StepFailed, StepRunner
from ecash_tpm.demo.steps.audit import audit
from ecash_tpm.demo.steps.certify_parties import certify_parties
from ecash_tpm.demo.steps.change import change
from ecash_tpm.demo.steps.deposit import deposit
from ecash_tpm.demo.steps.double_spend_rejected import double_spend_rejected
from ecash_tpm.demo.steps.double_spender_identified import double_spender_identified
from ecash_tpm.demo.steps.expired_coin_rejected import expired_coin_rejected
from ecash_tpm.demo.steps.fair_exchange import fair_exchange
from ecash_tpm.demo.steps.join import join
from ecash_tpm.demo.steps.pay import pay
from ecash_tpm.demo.steps.provision_tpm import provision_tpm
from ecash_tpm.demo.steps.refund import refund
from ecash_tpm.demo.steps.stolen_coin_rejected import stolen_coin_rejected
from ecash_tpm.demo.steps.withdraw import withdraw
from ecash_tpm.deploy.processes import PartyProcess, port_is_free
from ecash_tpm.errors import EcashError

# --- the story ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One step of the story: its name in the report, its title on screen, its body."""

    name: str
    title: str
    body: Callable[[StoryContext, dict[str, Any]], None]


#: The story, in order: each step relies on what the earlier ones left in the context.
STORY: tuple[Step, ...] = (
    Step(
        "provision_tpm",
        "Two hermetic TPMs: device A (the customer's), device B (a thief's)",
        provision_tpm,
    ),
    Step(
        "certify_parties",
        "The central bank certifies every party; each starts as its own process",
        certify_parties,
    ),
    Step("join", "Device A joins the group: EK chain, AK, PCR quote, DAA key", join),
    Step("withdraw", f"The customer withdraws {WITHDRAW_AMOUNT} as blind-signed coins", withdraw),
    Step("pay", f"The customer pays {PAY_AMOUNT} at merchant A with TPM spend proofs", pay),
    Step("deposit", "Merchant A deposited; the bank's receipt comes back", deposit),
    Step("change", "A payment that needs change: one anonymous swap at the bank first", change),
    Step(
        "refund",
        "Merchant A refunds part of it; the wallet claims fresh coins with its TPM",
        refund,
    ),
    Step(
        "double_spend_rejected",
        "A tampered wallet spends one of those coins again at merchant B",
        double_spend_rejected,
    ),
    Step(
        "double_spender_identified",
        "The supervision department opens both transcripts, names the member",
        double_spender_identified,
    ),
    Step(
        "stolen_coin_rejected",
        "A copy of the wallet on device B tries to spend",
        stolen_coin_rejected,
    ),
    Step("expired_coin_rejected", "A coin of an expired keyset is spent", expired_coin_rejected),
    Step(
        "audit",
        "The bank reports its money supply; the supervision department audits the bank",
        audit,
    ),
    Step(
        "fair_exchange",
        "Digital goods with an offline TTP: an honest shop, then a cheating one",
        fair_exchange,
    ),
)

STEPS: tuple[str, ...] = tuple(step.name for step in STORY)


def run_story(ctx: StoryContext) -> None:
    """Every step in order; the first failure ends the story (StepFailed). An observer
    (``ctx.events``) hears each step's ``start`` and its ``ok`` or ``failed`` with the step's
    ``ms`` and ``detail``, and after a step the structured facts of
    :mod:`ecash_tpm.demo.observe`."""
    from ecash_tpm.demo.observe import publish_extras

    for number, step in enumerate(STORY, start=1):
        ctx.step_name = step.name
        ctx.publish("start", {"number": number, "title": step.title})
        try:
            with ctx.runner.step(step.name, step.title) as detail:
                step.body(ctx, detail)
        except StepFailed:
            _publish_result(ctx, "failed")
            raise
        _publish_result(ctx, "ok")
        if ctx.events is not None:
            publish_extras(ctx, step.name)


def _publish_result(ctx: StoryContext, status: str) -> None:
    if ctx.events is not None and ctx.runner.results:
        result = ctx.runner.results[-1]
        ctx.publish(status, {"ms": round(result.ms, 1), "detail": result.detail})


def failed_party(ctx: StoryContext, step: str) -> PartyProcess | None:
    """The party most likely behind a failed step (its log is worth reading)."""
    if ctx.deployment is None:
        return None
    group = ctx.deployment.group
    stopped = [p.name for p in group.parties if not p.running()]
    suspects = stopped or {
        "certify_parties": ["centralbank"],
        "pay": ["merchant-a", "bank"],
        "change": ["bank", "merchant-a"],
        "double_spend_rejected": ["merchant-b", "bank"],
        "double_spender_identified": ["supervision", "bank"],
        "stolen_coin_rejected": ["merchant-a"],
        "expired_coin_rejected": ["merchant-a", "bank"],
        "fair_exchange": ["ttp", "merchant-b", "merchant-a"],
    }.get(step, ["bank"])
    return next((p for p in map(group.get, suspects) if p is not None), None)


# --- the runner ---------------------------------------------------------------------------------


def _prepare_workdir(path: Path | None) -> tuple[Path, bool]:
    """The work directory and whether it is a temporary one; a given one must be empty."""
    import tempfile

    if path is None:
        return Path(tempfile.mkdtemp(prefix="ecash-tpm-demo-")), True
    workdir = Path(path).absolute()
    if workdir.exists() and any(workdir.iterdir()):
        raise DemoCheckError(
            f"{workdir} is not empty; give an empty or new directory",
            code="demo.workdir_not_empty",
        )
    workdir.mkdir(mode=0o700, parents=True, exist_ok=True)
    return workdir, False


@contextlib.contextmanager
def _shielded() -> Iterator[None]:
    """Ignore Ctrl-C/SIGTERM/SIGHUP while cleaning up: a second signal must not cut it short."""
    sigs = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in sigs}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run_demo(
    *,
    json_mode: bool = False,
    workdir: Path | None = None,
    keep: bool = False,
    events: StoryObserver | None = None,
) -> int:
    """Run the story; 0 only if every step passed. Everything started is stopped on the way
    out, also on Ctrl-C/SIGTERM; the work directory is removed unless ``keep``. ``events``
    hears the story as it happens (the dashboard of ``--web``)."""
    from ecash_tpm.deploy.processes import termination_as_interrupt

    runner = StepRunner(json_mode=json_mode)
    directory, temporary = _prepare_workdir(workdir)
    runner.say(f"ecash-tpm demo: every party is its own process on 127.0.0.1; work dir {directory}")
    ctx = StoryContext(runner, directory, events=events)
    interrupted = False
    started = time.perf_counter()
    with termination_as_interrupt() as termination:
        try:
            run_story(ctx)
        except StepFailed as failed:
            # a signal is an interruption even where the code it landed in turned it into
            # another failure (the KeyboardInterrupt is not always the step's cause)
            interrupted = termination.received or isinstance(failed.__cause__, KeyboardInterrupt)
            _report_failure(runner, ctx, failed)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            with _shielded():
                ports = dict(ctx.deployment.ports) if ctx.deployment else {}
                ctx.close()
                _check_ports_free(runner, ports)
                if not keep:
                    _remove_files(directory, whole=temporary)
    total = time.perf_counter() - started
    ok = runner.ok and [r.step for r in runner.results][: len(STEPS)] == list(STEPS)
    if json_mode:
        runner.emit_json()
    else:
        verdict = "every step ok" if ok else "interrupted" if interrupted else "FAILED"
        runner.say(
            f"\ndemo {verdict} in {total:.1f} s; all parties and TPMs stopped"
            + (f"; files kept in {directory}" if keep else "")
        )
    if interrupted:
        return 130
    return 0 if ok else 1


def _remove_files(directory: Path, *, whole: bool) -> None:
    """Delete the work directory (``whole``) or what the demo put into a given one."""
    if whole:
        shutil.rmtree(directory, ignore_errors=True)
        return
    for child in directory.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def _report_failure(runner: StepRunner, ctx: StoryContext, failed: StepFailed) -> None:
    """Name the failed step and show the tail of the relevant party's log (on stderr); an
    unexpected exception (a bug, not a refusal) also gets its traceback."""
    import sys
    import traceback

    step = str(failed)
    result = next((r for r in runner.results if r.step == step), None)
    error = result.detail.get("error", {}) if result else {}
    if error.get("code") == "demo.interrupted":
        print(f"\ndemo: interrupted during step {step}; stopping everything", file=sys.stderr)
        return
    party = failed_party(ctx, step)
    if party is not None and result is not None:
        result.detail["log"] = {"party": party.name, "tail": party.log_tail(1500)}
    lines = [f"\ndemo: step {step} failed: [{error.get('code')}] {error.get('message')}"]
    if error.get("detail"):
        lines.append("  detail: " + json.dumps(error["detail"], default=str)[:1500])
    cause = failed.__cause__
    if cause is not None and not isinstance(cause, EcashError):
        lines += traceback.format_exception(cause)
    if party is not None:
        lines.append(f"  last lines of {party.log_path}:")
        lines += ["    " + line for line in party.log_tail().splitlines()[-15:]]
    print("\n".join(lines), file=sys.stderr, flush=True)


def _check_ports_free(runner: StepRunner, ports: dict[str, int]) -> None:
    busy = [f"{name}:{port}" for name, port in ports.items() if not port_is_free(port)]
    if busy:
        runner.say(f"warning: ports still in use after stopping: {', '.join(busy)}")
