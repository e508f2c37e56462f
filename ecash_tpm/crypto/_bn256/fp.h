/* F_p arithmetic for BN_P256 (TPM_ECC_BN_P256 = FP256BN): 4x64-bit limbs, Montgomery form.
 *
 * Every function here runs in time independent of the values (masks instead of branches);
 * only fp_pow_public branches, on its exponent, which is always a public constant.
 * Constants were generated from p with Python and are re-derived in the tests
 * (tests/unit/crypto/test_native_bn256.py). */
#ifndef ECASH_BN256_FP_H
#define ECASH_BN256_FP_H

#include <stdint.h>
#include <string.h>

typedef unsigned __int128 u128;
typedef struct { uint64_t v[4]; } fp;

#define FP_P_INIT {0xd3292ddbaed33013ULL, 0x0cdc65fb12980a82ULL, 0x46e5f25eee71a49fULL, 0xfffffffffffcf0cdULL}
#define FP_N_INIT {0xf62d536cd10b500dULL, 0x0cdc65fb1299921aULL, 0x46e5f25eee71a49eULL, 0xfffffffffffcf0cdULL}
#define FP_R_INIT {0x2cd6d224512ccfedULL, 0xf3239a04ed67f57dULL, 0xb91a0da1118e5b60ULL, 0x0000000000030f32ULL}
#define FP_R2_INIT {0xfac8c6101092b98fULL, 0xdb90d49cd7f91154ULL, 0x4f325fc732bf3141ULL, 0x4de578ea0e56a005ULL}
#define FP_NP0 0xad6c964e0537e5e5ULL
#define FP_BETA_INIT {0xac44103884008c2cULL, 0x26e76706f524db81ULL, 0x49cc4e27b51eaff8ULL, 0x266648723c3f9cffULL}
#define FP_PM2_INIT {0xd3292ddbaed33011ULL, 0x0cdc65fb12980a82ULL, 0x46e5f25eee71a49fULL, 0xfffffffffffcf0cdULL}
#define FP_SQRT_INIT {0xb4ca4b76ebb4cc05ULL, 0xc337197ec4a602a0ULL, 0x51b97c97bb9c6927ULL, 0x3fffffffffff3c33ULL}

static const fp FP_P = {FP_P_INIT};
static const fp FP_ONE = {FP_R_INIT};
static const fp FP_R2 = {FP_R2_INIT};
static const fp FP_0 = {{0, 0, 0, 0}};

/* add/sub with carry: the x86-64 intrinsics compile to adc/sbb chains (6x faster than the
 * 128-bit emulation); other targets use the portable form */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <x86intrin.h>
static inline uint64_t addc(uint64_t a, uint64_t b, unsigned char *c) {
    unsigned long long r;
    *c = _addcarry_u64(*c, a, b, &r);
    return (uint64_t)r;
}
static inline uint64_t subb(uint64_t a, uint64_t b, unsigned char *br) {
    unsigned long long r;
    *br = _subborrow_u64(*br, a, b, &r);
    return (uint64_t)r;
}
#else
static inline uint64_t addc(uint64_t a, uint64_t b, unsigned char *c) {
    u128 x = (u128)a + b + *c;
    *c = (unsigned char)(x >> 64);
    return (uint64_t)x;
}
static inline uint64_t subb(uint64_t a, uint64_t b, unsigned char *br) {
    u128 x = (u128)a - b - *br;
    *br = (unsigned char)((x >> 64) & 1);
    return (uint64_t)x;
}
#endif

/* r = t - p if t (with top bit `hi`) >= p, else t: one subtraction and a masked select */
static inline void fp_reduce_once(fp *r, const uint64_t t[4], uint64_t hi) {
    unsigned char br = 0;
    uint64_t s0 = subb(t[0], FP_P.v[0], &br);
    uint64_t s1 = subb(t[1], FP_P.v[1], &br);
    uint64_t s2 = subb(t[2], FP_P.v[2], &br);
    uint64_t s3 = subb(t[3], FP_P.v[3], &br);
    /* keep t only when the (257-bit) value is below p: no top bit and a borrow */
    uint64_t keep = (uint64_t)0 - ((uint64_t)br & (hi ^ 1));
    r->v[0] = (t[0] & keep) | (s0 & ~keep);
    r->v[1] = (t[1] & keep) | (s1 & ~keep);
    r->v[2] = (t[2] & keep) | (s2 & ~keep);
    r->v[3] = (t[3] & keep) | (s3 & ~keep);
}

/* r = a + b (mod p), a, b < p. p > 2^255, so the sum can carry out of 256 bits. */
static inline void fp_add(fp *r, const fp *a, const fp *b) {
    unsigned char c = 0;
    uint64_t t[4];
    t[0] = addc(a->v[0], b->v[0], &c);
    t[1] = addc(a->v[1], b->v[1], &c);
    t[2] = addc(a->v[2], b->v[2], &c);
    t[3] = addc(a->v[3], b->v[3], &c);
    fp_reduce_once(r, t, c);
}

/* r = a - b (mod p) */
static inline void fp_sub(fp *r, const fp *a, const fp *b) {
    unsigned char br = 0, c = 0;
    uint64_t t0 = subb(a->v[0], b->v[0], &br);
    uint64_t t1 = subb(a->v[1], b->v[1], &br);
    uint64_t t2 = subb(a->v[2], b->v[2], &br);
    uint64_t t3 = subb(a->v[3], b->v[3], &br);
    uint64_t mask = (uint64_t)0 - (uint64_t)br;
    r->v[0] = addc(t0, FP_P.v[0] & mask, &c);
    r->v[1] = addc(t1, FP_P.v[1] & mask, &c);
    r->v[2] = addc(t2, FP_P.v[2] & mask, &c);
    r->v[3] = addc(t3, FP_P.v[3] & mask, &c);
}

static inline void fp_neg(fp *r, const fp *a) { fp_sub(r, &FP_0, a); }

static inline void fp_dbl(fp *r, const fp *a) { fp_add(r, a, a); }

/* Montgomery product r = a*b/2^256 (mod p), CIOS; inputs < p, output < p. */
static inline void fp_mul(fp *r, const fp *a, const fp *b) {
    uint64_t t0 = 0, t1 = 0, t2 = 0, t3 = 0, t4 = 0, t5;
    for (int i = 0; i < 4; i++) {
        uint64_t bi = b->v[i];
        u128 x;
        x = (u128)a->v[0] * bi + t0; t0 = (uint64_t)x;
        x = (u128)a->v[1] * bi + t1 + (x >> 64); t1 = (uint64_t)x;
        x = (u128)a->v[2] * bi + t2 + (x >> 64); t2 = (uint64_t)x;
        x = (u128)a->v[3] * bi + t3 + (x >> 64); t3 = (uint64_t)x;
        x = (u128)t4 + (x >> 64); t4 = (uint64_t)x; t5 = (uint64_t)(x >> 64);
        uint64_t m = t0 * FP_NP0;
        x = (u128)m * FP_P.v[0] + t0;
        x = (u128)m * FP_P.v[1] + t1 + (x >> 64); t0 = (uint64_t)x;
        x = (u128)m * FP_P.v[2] + t2 + (x >> 64); t1 = (uint64_t)x;
        x = (u128)m * FP_P.v[3] + t3 + (x >> 64); t2 = (uint64_t)x;
        x = (u128)t4 + (x >> 64); t3 = (uint64_t)x;
        t4 = t5 + (uint64_t)(x >> 64);
    }
    uint64_t t[4] = {t0, t1, t2, t3};
    fp_reduce_once(r, t, t4);
}

/* Montgomery square: 6 cross products doubled + 4 squares, then 4 reduction rounds */
static inline void fp_sqr(fp *r, const fp *a) {
    const uint64_t *x = a->v;
    uint64_t t[8];
    u128 m;
    uint64_t c, hi;
    /* off-diagonal products x_i x_j (i < j) into t[1..6] */
    m = (u128)x[0] * x[1]; t[1] = (uint64_t)m; c = (uint64_t)(m >> 64);
    m = (u128)x[0] * x[2] + c; t[2] = (uint64_t)m; c = (uint64_t)(m >> 64);
    m = (u128)x[0] * x[3] + c; t[3] = (uint64_t)m; t[4] = (uint64_t)(m >> 64);
    m = (u128)x[1] * x[2] + t[3]; t[3] = (uint64_t)m; c = (uint64_t)(m >> 64);
    m = (u128)x[1] * x[3] + t[4] + c; t[4] = (uint64_t)m; t[5] = (uint64_t)(m >> 64);
    m = (u128)x[2] * x[3] + t[5]; t[5] = (uint64_t)m; t[6] = (uint64_t)(m >> 64);
    /* double them */
    t[7] = t[6] >> 63;
    t[6] = (t[6] << 1) | (t[5] >> 63);
    t[5] = (t[5] << 1) | (t[4] >> 63);
    t[4] = (t[4] << 1) | (t[3] >> 63);
    t[3] = (t[3] << 1) | (t[2] >> 63);
    t[2] = (t[2] << 1) | (t[1] >> 63);
    t[1] = t[1] << 1;
    /* add the squares x_i^2 at t[2i], t[2i+1] */
    unsigned char cc = 0;
    m = (u128)x[0] * x[0]; t[0] = (uint64_t)m; hi = (uint64_t)(m >> 64);
    t[1] = addc(t[1], hi, &cc);
    m = (u128)x[1] * x[1];
    t[2] = addc(t[2], (uint64_t)m, &cc); t[3] = addc(t[3], (uint64_t)(m >> 64), &cc);
    m = (u128)x[2] * x[2];
    t[4] = addc(t[4], (uint64_t)m, &cc); t[5] = addc(t[5], (uint64_t)(m >> 64), &cc);
    m = (u128)x[3] * x[3];
    t[6] = addc(t[6], (uint64_t)m, &cc); t[7] = addc(t[7], (uint64_t)(m >> 64), &cc);
    /* Montgomery reduction, 4 rounds; carries out of t[i+4] are collected in `top` */
    uint64_t top = 0;
    for (int i = 0; i < 4; i++) {
        uint64_t q = t[i] * FP_NP0;
        m = (u128)q * FP_P.v[0] + t[i]; c = (uint64_t)(m >> 64);
        m = (u128)q * FP_P.v[1] + t[i + 1] + c; t[i + 1] = (uint64_t)m; c = (uint64_t)(m >> 64);
        m = (u128)q * FP_P.v[2] + t[i + 2] + c; t[i + 2] = (uint64_t)m; c = (uint64_t)(m >> 64);
        m = (u128)q * FP_P.v[3] + t[i + 3] + c; t[i + 3] = (uint64_t)m; c = (uint64_t)(m >> 64);
        unsigned char k = 0;
        t[i + 4] = addc(t[i + 4], c, &k);
        for (int j = i + 5; j < 8; j++) t[j] = addc(t[j], 0, &k);
        top += k;
    }
    fp_reduce_once(r, t + 4, top);
}

/* r = 9*a: b3 = 3*b of y^2 = x^3 + 3, used by the complete formulas */
static inline void fp_mul9(fp *r, const fp *a) {
    fp t;
    fp_dbl(&t, a);
    fp_dbl(&t, &t);
    fp_dbl(&t, &t);
    fp_add(r, &t, a);
}

static inline uint64_t fp_is_zero(const fp *a) {
    uint64_t z = a->v[0] | a->v[1] | a->v[2] | a->v[3];
    return 1 ^ ((z | ((uint64_t)0 - z)) >> 63); /* 1 when zero, without a branch */
}

static inline uint64_t fp_equal(const fp *a, const fp *b) {
    uint64_t z = (a->v[0] ^ b->v[0]) | (a->v[1] ^ b->v[1]) | (a->v[2] ^ b->v[2]) | (a->v[3] ^ b->v[3]);
    return 1 ^ ((z | ((uint64_t)0 - z)) >> 63);
}

/* r = mask ? a : r  (mask all-ones or zero) */
static inline void fp_cmov(fp *r, const fp *a, uint64_t mask) {
    for (int i = 0; i < 4; i++) r->v[i] = (r->v[i] & ~mask) | (a->v[i] & mask);
}

static inline void fp_to_mont(fp *r, const fp *a) { fp_mul(r, a, &FP_R2); }

static inline void fp_from_mont(fp *r, const fp *a) {
    static const fp one = {{1, 0, 0, 0}};
    fp_mul(r, a, &one);
}

/* 1 when the plain (non-Montgomery) little-endian limbs are < p */
static inline int fp_lt_p(const fp *a) {
    for (int i = 3; i >= 0; i--) {
        if (a->v[i] < FP_P.v[i]) return 1;
        if (a->v[i] > FP_P.v[i]) return 0;
    }
    return 0;
}

void fp_pow_public(fp *r, const fp *a, const uint64_t e[4]);
void fp_inv(fp *r, const fp *a);       /* a^(p-2): 0 for a == 0; time independent of a */
void fp_inv_public(fp *r, const fp *a); /* same result, variable time: public values only */
int fp_sqrt(fp *r, const fp *a);       /* 1 and a root when a is a square, else 0 */

#endif
