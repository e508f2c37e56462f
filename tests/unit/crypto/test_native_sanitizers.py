"""The C engine built with AddressSanitizer + UBSan, run on a differential script (docs/native.md).

Compiles ecash_tpm/crypto/_bn256/*.c with gcc directly (sysconfig include paths) into a temp
dir and imports it in a subprocess with libasan preloaded; any memory error or undefined
behaviour aborts the subprocess, so exit code 0 is the assertion."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[3] / "ecash_tpm" / "crypto" / "_bn256"

SCRIPT = textwrap.dedent(
    """
    import random, sys
    sys.path.insert(0, sys.argv[1])
    import _bn256 as nat
    from ecash_tpm.crypto.bn256 import G, N, P, scalar_mult_reference, multi_mult_reference

    rnd = random.Random(7)
    pts = [scalar_mult_reference(rnd.randrange(1, N), G) for _ in range(4)]
    edge = [0, 1, 2, N - 1, N, N + 1, 2**255, 2**256 - 1, -1, 2**300]
    for k in edge + [rnd.randrange(-N, 2 * N) for _ in range(20)]:
        for pt in pts:
            want = scalar_mult_reference(k, pt)
            want = None if want.is_infinity else (want.x, want.y)
            assert nat.g1_mul(k, pt.x, pt.y) == want, k
            assert nat.g1_mul_secret(k, pt.x, pt.y) == want, k
    fb = nat.FixedBase(1, 2)
    for k in edge:
        assert fb.mul(k) == nat.g1_mul(k, 1, 2)
    for n in (1, 2, 5, 33, 70):
        terms = [(rnd.randrange(N), rnd.choice(pts)) for _ in range(n)]
        want = multi_mult_reference(terms)
        got = nat.g1_msm([(k, p.x, p.y) for k, p in terms] + [(3, 1, 2, fb)])
        want = want + scalar_mult_reference(3, G)
        assert got == (None if want.is_infinity else (want.x, want.y))
    for bad in [(1, 1, 3), (1, P, 2), (1, -1, 2), (1.5, 1, 2), (1, None, 2)]:
        try:
            nat.g1_mul(*bad)
        except ValueError:
            pass
        else:
            raise AssertionError(bad)
    extra = getattr(nat, "G2_GENERATOR", None)
    if extra is not None:
        q = nat.g2_mul(5, *extra)
        assert nat.g2_is_valid(*q)
        assert nat.pairing_product_is_one([(1, 2, *q), (*nat.g1_mul(N - 5, 1, 2), *extra)])
        assert not nat.g2_is_valid(extra[0], extra[1], extra[2], (extra[3] + 1) % P)
        assert len(nat.pairing(1, 2, *extra)) == 384
    print("sanitized ok")
    """
)


@pytest.mark.slow
def test_engine_under_address_and_ub_sanitizers(tmp_path: Path) -> None:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed")
    libasan = subprocess.run(
        [gcc, "-print-file-name=libasan.so"], capture_output=True, text=True, check=True
    ).stdout.strip()
    if not os.path.isabs(libasan) or not os.path.exists(libasan):
        pytest.skip("gcc has no libasan")
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    out = tmp_path / f"_bn256{suffix}"
    include = sysconfig.get_paths()["include"]
    cmd = [
        gcc,
        "-shared",
        "-fPIC",
        "-O1",
        "-g",
        "-fsanitize=address,undefined",
        "-fno-sanitize-recover=all",
        "-fno-omit-frame-pointer",
        f"-I{include}",
        f"-I{SRC}",
        *sorted(str(p) for p in SRC.glob("*.c")),
        "-o",
        str(out),
    ]
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    env = {
        **os.environ,
        "LD_PRELOAD": libasan,
        "ASAN_OPTIONS": "detect_leaks=0",
        "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
    }
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    assert "sanitized ok" in run.stdout
