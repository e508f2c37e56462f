/* F_p exponentiations: inversion (Fermat) and square root (p = 3 mod 4). */
#include "fp.h"

/* r = a^e for a public exponent e (fixed 4-bit windows; branches only on e). */
void fp_pow_public(fp *r, const fp *a, const uint64_t e[4]) {
    fp tab[16], acc = FP_ONE;
    tab[0] = FP_ONE;
    tab[1] = *a;
    for (int i = 2; i < 16; i++) fp_mul(&tab[i], &tab[i - 1], a);
    int started = 0;
    for (int i = 63; i >= 0; i--) {
        unsigned w = (unsigned)((e[i / 16] >> (4 * (i % 16))) & 15);
        if (started) {
            fp_sqr(&acc, &acc);
            fp_sqr(&acc, &acc);
            fp_sqr(&acc, &acc);
            fp_sqr(&acc, &acc);
        }
        if (w) {
            fp_mul(&acc, &acc, &tab[w]);
            started = 1;
        }
    }
    *r = acc;
}

void fp_inv(fp *r, const fp *a) {
    static const uint64_t pm2[4] = FP_PM2_INIT;
    fp_pow_public(r, a, pm2);
}

int fp_sqrt(fp *r, const fp *a) {
    static const uint64_t e[4] = FP_SQRT_INIT;
    fp s, chk;
    fp_pow_public(&s, a, e);
    fp_sqr(&chk, &s);
    *r = s;
    return (int)fp_equal(&chk, a);
}
