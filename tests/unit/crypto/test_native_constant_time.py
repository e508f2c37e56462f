"""ctgrind-style check of the C engine's secret path (docs/native.md, Side channels).

The secret scalar is marked undefined for valgrind's memcheck, which then reports every branch
and memory index computed from it. ``g1_mul_secret`` and the Fermat inversion must be clean; the
public ``g1_msm`` is the control that shows the harness does see secret-dependent branches."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[3] / "ecash_tpm" / "crypto" / "_bn256"

HARNESS = r"""
#include <stdio.h>
#include <string.h>
#include <valgrind/memcheck.h>
#include "g1.h"

int main(int argc, char **argv) {
    int control = argc > 1 && strcmp(argv[1], "control") == 0;
    g1a g;
    fp one = {{1, 0, 0, 0}}, two = {{2, 0, 0, 0}};
    fp_to_mont(&g.x, &one);
    fp_to_mont(&g.y, &two);
    uint64_t ks[4][4] = {
        {0x0123456789abcdefULL, 0xfedcba9876543210ULL,
         0x0f0f0f0f0f0f0f0fULL, 0x0fffffffffffffffULL},
        {1, 0, 0, 0},
        {2, 0, 0, 0},
        {0xf62d536cd10b500cULL, 0x0cdc65fb1299921aULL,
         0x46e5f25eee71a49eULL, 0xfffffffffffcf0cdULL},
    };
    for (int i = 0; i < 4; i++) {
        g1p r;
        fp z;
        VALGRIND_MAKE_MEM_UNDEFINED(ks[i], sizeof ks[i]);
        if (control) {
            g1_term t;
            memcpy(t.k, ks[i], sizeof t.k);
            t.pt = g;
            t.fixed = NULL;
            g1_msm(&r, &t, 1);
        } else {
            g1_mul_secret(&r, ks[i], &g);
            fp_inv(&z, &r.Z);
            VALGRIND_MAKE_MEM_DEFINED(&z, sizeof z);
        }
        VALGRIND_MAKE_MEM_DEFINED(&r, sizeof r);
        VALGRIND_MAKE_MEM_DEFINED(ks[i], sizeof ks[i]);
    }
    puts("done");
    return 0;
}
"""


@pytest.mark.slow
def test_secret_multiplication_has_no_secret_dependent_branch_or_index(tmp_path: Path) -> None:
    gcc, valgrind = shutil.which("gcc"), shutil.which("valgrind")
    if gcc is None or valgrind is None:
        pytest.skip("needs gcc and valgrind")
    if not Path("/usr/include/valgrind/memcheck.h").exists():
        pytest.skip("needs the valgrind headers")
    (tmp_path / "ct.c").write_text(HARNESS)
    exe = tmp_path / "ct"
    cmd = [
        gcc,
        "-O2",
        "-g",
        f"-I{SRC}",
        str(tmp_path / "ct.c"),
        str(SRC / "fp.c"),
        str(SRC / "g1.c"),
    ]
    subprocess.run([*cmd, "-o", str(exe)], check=True, capture_output=True, timeout=300)
    vg = [valgrind, "-q", "--error-exitcode=3", str(exe)]
    run = subprocess.run(vg, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "done" in run.stdout
    control = subprocess.run([*vg, "control"], capture_output=True, text=True, timeout=600)
    assert control.returncode == 3 and "uninitialised" in control.stderr
