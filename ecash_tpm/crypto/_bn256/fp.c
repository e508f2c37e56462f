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

/* --- variable-time inversion (binary extended Euclid) for public values --------------------- */

static int geq4(const uint64_t a[4], const uint64_t b[4]) {
    for (int i = 3; i >= 0; i--) {
        if (a[i] != b[i]) return a[i] > b[i];
    }
    return 1;
}

static void sub4(uint64_t r[4], const uint64_t a[4], const uint64_t b[4]) {
    unsigned char br = 0;
    for (int i = 0; i < 4; i++) r[i] = subb(a[i], b[i], &br);
}

/* x = x/2 mod p, for x < p */
static void half_mod_p(uint64_t x[4]) {
    uint64_t mask = (uint64_t)0 - (x[0] & 1), t[4];
    unsigned char c = 0;
    for (int i = 0; i < 4; i++) t[i] = addc(x[i], FP_P.v[i] & mask, &c);
    for (int i = 0; i < 3; i++) x[i] = (t[i] >> 1) | (t[i + 1] << 63);
    x[3] = (t[3] >> 1) | ((uint64_t)c << 63);
}

/* x = x - y mod p, for x, y < p */
static void sub_mod_p(uint64_t x[4], const uint64_t y[4]) {
    fp a, b;
    memcpy(a.v, x, sizeof a.v);
    memcpy(b.v, y, sizeof b.v);
    fp_sub(&a, &a, &b);
    memcpy(x, a.v, sizeof a.v);
}

static int is_one4(const uint64_t a[4]) { return a[0] == 1 && !(a[1] | a[2] | a[3]); }

void fp_inv_public(fp *r, const fp *a) {
    /* R^3 mod p: the plain inverse of aR is a^-1 R^-1, times R^3 / R gives a^-1 R */
    static const fp R3 = {{0x83c66e0a9a16d9d8ULL, 0x1c36f0596611aefbULL, 0x97f1b5fadfa71510ULL,
                           0x3a7e67c12053b221ULL}};
    if (fp_is_zero(a)) {
        *r = FP_0;
        return;
    }
    uint64_t u[4], v[4], x1[4] = {1, 0, 0, 0}, x2[4] = {0, 0, 0, 0};
    memcpy(u, a->v, sizeof u);
    memcpy(v, FP_P.v, sizeof v);
    while (!is_one4(u) && !is_one4(v)) {
        while (!(u[0] & 1)) {
            for (int i = 0; i < 3; i++) u[i] = (u[i] >> 1) | (u[i + 1] << 63);
            u[3] >>= 1;
            half_mod_p(x1);
        }
        while (!(v[0] & 1)) {
            for (int i = 0; i < 3; i++) v[i] = (v[i] >> 1) | (v[i + 1] << 63);
            v[3] >>= 1;
            half_mod_p(x2);
        }
        if (geq4(u, v)) {
            sub4(u, u, v);
            sub_mod_p(x1, x2);
        } else {
            sub4(v, v, u);
            sub_mod_p(x2, x1);
        }
    }
    fp z;
    memcpy(z.v, is_one4(u) ? x1 : x2, sizeof z.v);
    fp_mul(r, &z, &R3);
}

int fp_sqrt(fp *r, const fp *a) {
    static const uint64_t e[4] = FP_SQRT_INIT;
    fp s, chk;
    fp_pow_public(&s, a, e);
    fp_sqr(&chk, &s);
    *r = s;
    return (int)fp_equal(&chk, a);
}
