"""``ecash-tpm bench [NAME ...] [--quick] [--out DIR] [--list]``: run the repository's
benchmarks (issue 13 item 7), each writing its JSON figures and a PNG plot into ``--out``.

The benchmark scripts live in the repository's ``benchmarks/`` directory, not in the installed
package: they need the test support code (``tests/support``), swtpm and matplotlib. The
directory is found next to the package (an editable install or a checkout) or named with
``--benchmarks-dir``. Each benchmark runs as its own process with this Python, one after the
other; ``--quick`` gives each one small counts (a smoke run, figures not worth quoting).
Benchmarks print figures only: nothing here passes or fails on a time.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ecash_tpm.cli.output import emit
from ecash_tpm.errors import ConfigError, EcashError, InputError


class BenchmarksNotFoundError(ConfigError):
    """There is no ``benchmarks/`` directory with the scripts (an installed package only)."""

    code = "bench.dir_missing"


class UnknownBenchmarkError(InputError):
    """A benchmark name that is not in :data:`BENCHMARKS`."""

    code = "bench.unknown"


class BenchmarkFailedError(EcashError):
    """A benchmark script exited with an error (its own output says why)."""

    code = "bench.failed"


ArgsFor = Callable[[Path, bool], list[str]]


@dataclass(frozen=True)
class Benchmark:
    """One script of ``benchmarks/``: what it measures and its arguments for an output
    directory, full or quick."""

    script: str
    what: str
    args: ArgsFor
    needs: str = ""


def _out_img(full: list[str], quick: list[str]) -> ArgsFor:
    return lambda out, q: [*(quick if q else full), "--out", str(out), "--img", str(out)]


def _out(full: list[str], quick: list[str]) -> ArgsFor:
    return lambda out, q: [*(quick if q else full), "--out", str(out)]


def _json_png(name: str, full: list[str], quick: list[str]) -> ArgsFor:
    return lambda out, q: [
        *(quick if q else full),
        "--json",
        str(out / f"{name}.json"),
        "--png",
        str(out / f"{name}.png"),
    ]


BENCHMARKS: dict[str, Benchmark] = {
    "phases": Benchmark(
        "bench_phases.py",
        "latency per phase (join, withdraw, pay, deposit, swap, dispute), 1/2/4/8 customers",
        _out_img([], ["--quick"]),
        "swtpm",
    ),
    "fair_exchange": Benchmark(
        "bench_fair_exchange.py",
        "offline vs online TTP: purchases/s and latency by concurrent customers",
        _out([], ["--quick"]),
        "swtpm",
    ),
    "workers": Benchmark(
        "bench_workers.py",
        "deposit throughput with 1, 2, 4 bank workers on SQLite and PostgreSQL",
        _out([], ["--quick"]),
        "PostgreSQL binaries (or --skip-postgres in the script)",
    ),
    "spent_table": Benchmark(
        "bench_spent_table.py",
        "deposit CPU per coin vs spent-table size (1k..1M) and expired reservations",
        _out([], ["--quick"]),
    ),
    "deposit_profile": Benchmark(
        "bench_deposit_profile.py",
        "CPU breakdown of a deposit at the bank (cProfile by module group)",
        _out([], ["--quick"]),
    ),
    "payment_coins": Benchmark(
        "bench_payment_coins.py",
        "payment time vs coins per payment on swtpm and with a hardware TPM's latency",
        _out([], ["--quick"]),
        "swtpm",
    ),
    "peer": Benchmark(
        "bench_peer.py",
        "per coin side by side with Cashu's nutshell mint (withdraw, deposit, swap, status)",
        _out_img([], ["--quick"]),
        "swtpm, pip (installs cashu into a throwaway virtualenv)",
    ),
    "tls": Benchmark(
        "bench_tls.py",
        "the cost of TLS 1.3 and mutual TLS on payments and deposits",
        _json_png("bench_tls", [], ["--payments", "3", "--deposits", "20", "--rounds", "1"]),
        "swtpm",
    ),
    "curve": Benchmark(
        "bench_curve.py",
        "curve arithmetic before/after (GLV, multi-scalar, batches), per-operation ratios",
        _json_png(
            "bench_curve", [], ["--rounds", "1", "--repeat", "3", "--deposits-per-round", "2"]
        ),
    ),
    "native": Benchmark(
        "bench_native.py",
        "native C engine vs pure Python vs OpenSSL P-256 ECDH per operation, pairings",
        _json_png("native", [], ["--rounds", "1"]),
        "the C engine built",
    ),
    "public_verify": Benchmark(
        "bench_public_verify.py",
        "public credential check (pairings) per coin for 1..64 coins, native vs pure Python",
        _json_png(
            "bench_public_verify", [], ["--rounds", "1", "--repeat", "1", "--coins", "1", "4"]
        ),
    ),
    "deposit_engines": Benchmark(
        "bench_deposit_engines.py",
        "bank deposit CPU per coin (1 and 16 coins), native vs pure Python in one run",
        _out([], ["--rounds", "1", "--deposits", "3", "--big-coins", "4", "--big-deposits", "2"]),
    ),
    "deposit_baseline": Benchmark(
        "bench_deposit_baseline.py",
        "bank deposit CPU per coin (1 and 16 coins), this tree vs issue 13's 'today', one run",
        _out([], ["--rounds", "1", "--deposits", "3", "--big-coins", "4", "--big-deposits", "2"]),
        "git history with the baseline commit (not a shallow clone)",
    ),
}


def _progress_fd() -> int | None:
    """Where a benchmark's own output goes: our stderr (stdout stays this command's result);
    ``None`` (inherit) when stderr is not a real file, e.g. captured in a test."""
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return None


def find_benchmarks_dir(given: Path | None) -> Path:
    """``given``, or the ``benchmarks/`` of the checkout this package was imported from."""
    candidates = [given] if given is not None else [Path(__file__).resolve().parents[2]]
    for base in candidates:
        for path in (base / "benchmarks", base):
            if (path / "bench_phases.py").is_file():
                return path
    raise BenchmarksNotFoundError(
        "no benchmarks/ directory found: run from a checkout of the repository or pass "
        "--benchmarks-dir",
        detail={"looked_in": [str(c) for c in candidates]},
    )


def _cmd_bench(args: argparse.Namespace) -> int:
    if args.list:
        rows = [
            {"name": n, "script": b.script, "what": b.what, "needs": b.needs}
            for n, b in BENCHMARKS.items()
        ]
        emit(args, {"benchmarks": rows}, "\n".join(f"{r['name']:<16}{r['what']}" for r in rows))
        return 0
    names = list(args.names) or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise UnknownBenchmarkError(
            f"unknown benchmark(s): {', '.join(unknown)} (see --list)",
            detail={"unknown": unknown, "known": list(BENCHMARKS)},
        )
    bench_dir = find_benchmarks_dir(args.benchmarks_dir)
    out = args.out if args.out is not None else bench_dir / "results"
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    ran: list[dict[str, object]] = []
    for name in names:
        bench = BENCHMARKS[name]
        cmd = [sys.executable, str(bench_dir / bench.script), *bench.args(out, args.quick)]
        print(f"[bench] {name}: {' '.join(cmd[1:])}", file=sys.stderr, flush=True)
        start = time.monotonic()
        done = subprocess.run(cmd, cwd=bench_dir.parent, stdout=_progress_fd(), check=False)
        seconds = round(time.monotonic() - start, 1)
        if done.returncode != 0:
            raise BenchmarkFailedError(
                f"benchmark {name} failed (exit status {done.returncode})",
                detail={"benchmark": name, "status": done.returncode, "ran": ran},
            )
        ran.append({"name": name, "seconds": seconds})
    emit(
        args,
        {"out": str(out), "quick": args.quick, "ran": ran},
        "\n".join(f"{r['name']}: done in {r['seconds']} s" for r in ran) + f"\nresults in {out}",
    )
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``bench`` to the top-level parser."""
    p = subparsers.add_parser(
        "bench",
        help="run the repository's benchmarks (JSON + PNG per benchmark)",
        description=__doc__,
    )
    p.add_argument("names", nargs="*", metavar="NAME", help="benchmarks to run (default: all)")
    p.add_argument("--quick", action="store_true", help="small counts: a smoke run")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="DIR",
        help="output directory (default: benchmarks/results)",
    )
    p.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    p.add_argument(
        "--benchmarks-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="the repository's benchmarks/ directory (default: next to the package)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_bench)
