/* F_p2/F_p6/F_p12 towers, G2 on the twist and the optimal ate pairing of BN_P256.
 *
 * Conventions (shared with the Python reference ecash_tpm/crypto/bn256_pairing.py):
 * xi = 1 + i, v^3 = xi, w^2 = v; G2 on y^2 = x^3 + 3*xi (M-type twist), untwisted by
 * psi(x, y) = (x / w^2, y / w^3). e(P, Q) = (f_{6u+2,Q}(P) * l_{[6u+2]Q, pi(Q)}(P) *
 * l_{[6u+2]Q + pi(Q), -pi^2(Q)}(P))^((p^12 - 1)/n), u < 0, so f_{6u+2} = conj(f_{|6u+2|}) (equal
 * after the final exponentiation). Lines are scaled by F_p2 factors, which the final
 * exponentiation removes. Public inputs only: nothing here is constant time. */
#include <stdlib.h>
#include "g2.h"

#define FP2C(a0, a1, a2, a3, b0, b1, b2, b3) {{{a0, a1, a2, a3}}, {{b0, b1, b2, b3}}}

/* gamma_j = xi^(j(p-1)/6) (Montgomery form), the Frobenius coefficients of w^j */
static const fp2 GAMMA[6] = {
    {{{0x2cd6d224512ccfedULL, 0xf3239a04ed67f57dULL, 0xb91a0da1118e5b60ULL, 0x0000000000030f32ULL}}, {{0, 0, 0, 0}}},
    FP2C(0x77f4336c9f5752e0ULL, 0xe3bdb82d415ee3e9ULL, 0x1db98d9447e2e741ULL, 0x18511e53c29f09a5ULL,
         0x5b34fa6f0f7bdd33ULL, 0x291eadcdd1392699ULL, 0x292c64caa68ebd5dULL, 0xe7aee1ac3d5de728ULL),
    FP2C(0, 0, 0, 0,
         0xac44103884008c2cULL, 0x26e76706f524db81ULL, 0x49cc4e27b51eaff8ULL, 0x266648723c3f9cffULL),
    FP2C(0x5edcf655589425d3ULL, 0x15149d62cb8ed0c3ULL, 0x1eddc85dd8b38df6ULL, 0x90db7f10803fa480ULL,
         0x5edcf655589425d3ULL, 0x15149d62cb8ed0c3ULL, 0x1eddc85dd8b38df6ULL, 0x90db7f10803fa480ULL),
    FP2C(0xd91ae25cd52d5c19ULL, 0x1a0b010be28cd0feULL, 0x02e65bc8c6ad0b59ULL, 0x266648723c42ac32ULL,
         0, 0, 0, 0),
    FP2C(0xd6d129c1f7eb78b3ULL, 0xf8d255900cedb4acULL, 0x3c9755f220967537ULL, 0xa92c9d6442deae25ULL,
         0xfc580419b6e7b760ULL, 0x140a106b05aa55d5ULL, 0x0a4e9c6ccddb2f67ULL, 0x56d3629bbd1e42a8ULL),
};
/* 1/gamma_2, 1/gamma_3: pi(x, y) = (conj(x)/gamma_2, conj(y)/gamma_3) on the twist */
static const fp2 IGAMMA2 = FP2C(0, 0, 0, 0,
    0xd91ae25cd52d5c19ULL, 0x1a0b010be28cd0feULL, 0x02e65bc8c6ad0b59ULL, 0x266648723c42ac32ULL);
static const fp2 IGAMMA3 = FP2C(
    0x744c3786563f0a40ULL, 0xf7c7c898470939bfULL, 0x28082a0115be16a8ULL, 0x6f2480ef7fbd4c4dULL,
    0x5edcf655589425d3ULL, 0x15149d62cb8ed0c3ULL, 0x1eddc85dd8b38df6ULL, 0x90db7f10803fa480ULL);

/* the FIDO ECDAA / ISO/IEC 15946-5 G2 generator = Milagro FP256BN CURVE_Px*, CURVE_Py*
 * (plain form; converted to Montgomery form on first use) */
static const uint64_t G2_GEN_PLAIN[4][4] = {
    {0xd22616b689c09efbULL, 0xce1c539a12bf843cULL, 0x28560f577c28913aULL, 0xfe0c3350b4c96c20ULL},
    {0xd269ed34a37e6a2bULL, 0x24dd78e287d03589ULL, 0xdb5ae1c637d813b9ULL, 0x4ea66057738ac054ULL},
    {0xe909b481bedc27ffULL, 0xefcb24758d615848ULL, 0x76770d75124e3e51ULL, 0x702046e7c542a3b3ULL},
    {0xe01281114aad049bULL, 0x8b4cbe80821a98b3ULL, 0x42eea649297eb29fULL, 0x0554e3bcd388c290ULL},
};
g2a G2_GEN; /* Montgomery form, set by g2_init() at module import */

/* |6u + 2| = 6*0x6882F5C030B0A801 - 2, 66 bits */
#define LOOP_HI 0x2ULL
#define LOOP_LO 0x7311c2812423f004ULL
#define LOOP_BITS 66
/* |u| */
#define ABS_U 0x6882f5c030b0a801ULL

/* --- F_p2 ----------------------------------------------------------------------------------- */

static inline void fp2_add(fp2 *r, const fp2 *x, const fp2 *y) { fp_add(&r->a, &x->a, &y->a); fp_add(&r->b, &x->b, &y->b); }
static inline void fp2_sub(fp2 *r, const fp2 *x, const fp2 *y) { fp_sub(&r->a, &x->a, &y->a); fp_sub(&r->b, &x->b, &y->b); }
static inline void fp2_neg(fp2 *r, const fp2 *x) { fp_neg(&r->a, &x->a); fp_neg(&r->b, &x->b); }
static inline void fp2_dbl(fp2 *r, const fp2 *x) { fp_dbl(&r->a, &x->a); fp_dbl(&r->b, &x->b); }
static inline void fp2_conj(fp2 *r, const fp2 *x) { r->a = x->a; fp_neg(&r->b, &x->b); }

static inline void fp2_mul(fp2 *r, const fp2 *x, const fp2 *y) {
    fp t0, t1, s0, s1, m;
    fp_mul(&t0, &x->a, &y->a);
    fp_mul(&t1, &x->b, &y->b);
    fp_add(&s0, &x->a, &x->b);
    fp_add(&s1, &y->a, &y->b);
    fp_mul(&m, &s0, &s1);
    fp_sub(&r->a, &t0, &t1);
    fp_sub(&m, &m, &t0);
    fp_sub(&r->b, &m, &t1);
}

static inline void fp2_sqr(fp2 *r, const fp2 *x) {
    fp s, d, m;
    fp_add(&s, &x->a, &x->b);
    fp_sub(&d, &x->a, &x->b);
    fp_mul(&m, &x->a, &x->b);
    fp_mul(&r->a, &s, &d);
    fp_dbl(&r->b, &m);
}

static inline void fp2_mul_fp(fp2 *r, const fp2 *x, const fp *k) { fp_mul(&r->a, &x->a, k); fp_mul(&r->b, &x->b, k); }

/* r = x * xi = x * (1 + i) */
static inline void fp2_mul_xi(fp2 *r, const fp2 *x) {
    fp a;
    fp_sub(&a, &x->a, &x->b);
    fp_add(&r->b, &x->a, &x->b);
    r->a = a;
}

static void fp2_inv(fp2 *r, const fp2 *x) {
    fp n, t;
    fp_sqr(&n, &x->a);
    fp_sqr(&t, &x->b);
    fp_add(&n, &n, &t);
    fp_inv_public(&n, &n); /* pairing and G2 values are public */
    fp_mul(&r->a, &x->a, &n);
    fp_mul(&t, &x->b, &n);
    fp_neg(&r->b, &t);
}

static inline int fp2_is_zero(const fp2 *x) { return (int)(fp_is_zero(&x->a) & fp_is_zero(&x->b)); }
static inline int fp2_equal(const fp2 *x, const fp2 *y) { return (int)(fp_equal(&x->a, &y->a) & fp_equal(&x->b, &y->b)); }

/* --- F_p6, F_p12 ------------------------------------------------------------------------------ */

static void fp6_add(fp6 *r, const fp6 *x, const fp6 *y) { fp2_add(&r->c0, &x->c0, &y->c0); fp2_add(&r->c1, &x->c1, &y->c1); fp2_add(&r->c2, &x->c2, &y->c2); }
static void fp6_sub(fp6 *r, const fp6 *x, const fp6 *y) { fp2_sub(&r->c0, &x->c0, &y->c0); fp2_sub(&r->c1, &x->c1, &y->c1); fp2_sub(&r->c2, &x->c2, &y->c2); }
static void fp6_neg(fp6 *r, const fp6 *x) { fp2_neg(&r->c0, &x->c0); fp2_neg(&r->c1, &x->c1); fp2_neg(&r->c2, &x->c2); }

/* Karatsuba over F_p2: 6 multiplications */
static void fp6_mul(fp6 *r, const fp6 *x, const fp6 *y) {
    fp2 v0, v1, v2, s, t, c0, c1, c2;
    fp2_mul(&v0, &x->c0, &y->c0);
    fp2_mul(&v1, &x->c1, &y->c1);
    fp2_mul(&v2, &x->c2, &y->c2);
    /* c0 = v0 + xi*((x1 + x2)(y1 + y2) - v1 - v2) */
    fp2_add(&s, &x->c1, &x->c2);
    fp2_add(&t, &y->c1, &y->c2);
    fp2_mul(&c0, &s, &t);
    fp2_sub(&c0, &c0, &v1);
    fp2_sub(&c0, &c0, &v2);
    fp2_mul_xi(&c0, &c0);
    fp2_add(&c0, &c0, &v0);
    /* c1 = (x0 + x1)(y0 + y1) - v0 - v1 + xi*v2 */
    fp2_add(&s, &x->c0, &x->c1);
    fp2_add(&t, &y->c0, &y->c1);
    fp2_mul(&c1, &s, &t);
    fp2_sub(&c1, &c1, &v0);
    fp2_sub(&c1, &c1, &v1);
    fp2_mul_xi(&t, &v2);
    fp2_add(&c1, &c1, &t);
    /* c2 = (x0 + x2)(y0 + y2) - v0 - v2 + v1 */
    fp2_add(&s, &x->c0, &x->c2);
    fp2_add(&t, &y->c0, &y->c2);
    fp2_mul(&c2, &s, &t);
    fp2_sub(&c2, &c2, &v0);
    fp2_sub(&c2, &c2, &v2);
    fp2_add(&c2, &c2, &v1);
    r->c0 = c0;
    r->c1 = c1;
    r->c2 = c2;
}

/* r = x * v */
static void fp6_mul_v(fp6 *r, const fp6 *x) {
    fp2 t;
    fp2_mul_xi(&t, &x->c2);
    r->c2 = x->c1;
    r->c1 = x->c0;
    r->c0 = t;
}

static void fp6_inv(fp6 *r, const fp6 *x) {
    fp2 t0, t1, t2, s, d;
    fp2_sqr(&t0, &x->c0);
    fp2_mul(&s, &x->c1, &x->c2);
    fp2_mul_xi(&s, &s);
    fp2_sub(&t0, &t0, &s); /* c0^2 - xi c1 c2 */
    fp2_sqr(&t1, &x->c2);
    fp2_mul_xi(&t1, &t1);
    fp2_mul(&s, &x->c0, &x->c1);
    fp2_sub(&t1, &t1, &s); /* xi c2^2 - c0 c1 */
    fp2_sqr(&t2, &x->c1);
    fp2_mul(&s, &x->c0, &x->c2);
    fp2_sub(&t2, &t2, &s); /* c1^2 - c0 c2 */
    fp2_mul(&d, &x->c2, &t1);
    fp2_mul(&s, &x->c1, &t2);
    fp2_add(&d, &d, &s);
    fp2_mul_xi(&d, &d);
    fp2_mul(&s, &x->c0, &t0);
    fp2_add(&d, &d, &s);
    fp2_inv(&d, &d);
    fp2_mul(&r->c0, &t0, &d);
    fp2_mul(&r->c1, &t1, &d);
    fp2_mul(&r->c2, &t2, &d);
}

static void fp12_one(fp12 *r) {
    memset(r, 0, sizeof *r);
    r->c0.c0.a = FP_ONE;
}

static void fp12_mul(fp12 *r, const fp12 *x, const fp12 *y) {
    fp6 t0, t1, s, t;
    fp6_mul(&t0, &x->c0, &y->c0);
    fp6_mul(&t1, &x->c1, &y->c1);
    fp6_add(&s, &x->c0, &x->c1);
    fp6_add(&t, &y->c0, &y->c1);
    fp6_mul(&s, &s, &t);
    fp6_sub(&s, &s, &t0);
    fp6_sub(&r->c1, &s, &t1);
    fp6_mul_v(&t1, &t1);
    fp6_add(&r->c0, &t0, &t1);
}

/* complex squaring: (a + bw)^2 = (a + b)(a + bv) - ab - abv + 2ab w */
static void fp12_sqr(fp12 *r, const fp12 *x) {
    fp6 ab, s, t, abv;
    fp6_mul(&ab, &x->c0, &x->c1);
    fp6_add(&s, &x->c0, &x->c1);
    fp6_mul_v(&t, &x->c1);
    fp6_add(&t, &x->c0, &t);
    fp6_mul(&s, &s, &t);
    fp6_mul_v(&abv, &ab);
    fp6_sub(&s, &s, &ab);
    fp6_sub(&r->c0, &s, &abv);
    fp6_add(&r->c1, &ab, &ab);
}

/* (a + b*w')^2 in F_p4 = F_p2[w']/(w'^2 - xi): (a^2 + xi*b^2, 2ab) */
static void fp4_sqr(fp2 *c0, fp2 *c1, const fp2 *a, const fp2 *b) {
    fp2 t0, t1, t2;
    fp2_sqr(&t0, a);
    fp2_sqr(&t1, b);
    fp2_mul_xi(&t2, &t1);
    fp2_add(c0, &t2, &t0);
    fp2_add(&t2, a, b);
    fp2_sqr(&t2, &t2);
    fp2_sub(&t2, &t2, &t0);
    fp2_sub(c1, &t2, &t1);
}

/* squaring in the cyclotomic subgroup (Granger-Scott 2010): valid only after the easy part */
static void fp12_cyc_sqr(fp12 *r, const fp12 *f) {
    fp2 z0 = f->c0.c0, z4 = f->c0.c1, z3 = f->c0.c2, z2 = f->c1.c0, z1 = f->c1.c1, z5 = f->c1.c2;
    fp2 t0, t1, t2, t3;
    fp4_sqr(&t0, &t1, &z0, &z1);
    fp2_sub(&z0, &t0, &z0);
    fp2_dbl(&z0, &z0);
    fp2_add(&z0, &z0, &t0);
    fp2_add(&z1, &t1, &z1);
    fp2_dbl(&z1, &z1);
    fp2_add(&z1, &z1, &t1);
    fp4_sqr(&t0, &t1, &z2, &z3);
    fp4_sqr(&t2, &t3, &z4, &z5);
    fp2_sub(&z4, &t0, &z4);
    fp2_dbl(&z4, &z4);
    fp2_add(&z4, &z4, &t0);
    fp2_add(&z5, &t1, &z5);
    fp2_dbl(&z5, &z5);
    fp2_add(&z5, &z5, &t1);
    fp2_mul_xi(&t0, &t3);
    fp2_add(&z2, &t0, &z2);
    fp2_dbl(&z2, &z2);
    fp2_add(&z2, &z2, &t0);
    fp2_sub(&z3, &t2, &z3);
    fp2_dbl(&z3, &z3);
    fp2_add(&z3, &z3, &t2);
    r->c0.c0 = z0;
    r->c0.c1 = z4;
    r->c0.c2 = z3;
    r->c1.c0 = z2;
    r->c1.c1 = z1;
    r->c1.c2 = z5;
}

static void fp12_conj(fp12 *r, const fp12 *x) {
    r->c0 = x->c0;
    fp6_neg(&r->c1, &x->c1);
}

static void fp12_inv(fp12 *r, const fp12 *x) {
    fp6 t0, t1;
    fp6_mul(&t0, &x->c0, &x->c0);
    fp6_mul(&t1, &x->c1, &x->c1);
    fp6_mul_v(&t1, &t1);
    fp6_sub(&t0, &t0, &t1);
    fp6_inv(&t0, &t0);
    fp6_mul(&r->c0, &x->c0, &t0);
    fp6_mul(&r->c1, &x->c1, &t0);
    fp6_neg(&r->c1, &r->c1);
}

/* x^p: the coefficient of w^j becomes conj(c) * gamma_j */
static void fp12_frob(fp12 *r, const fp12 *x) {
    fp2 *out[6] = {&r->c0.c0, &r->c1.c0, &r->c0.c1, &r->c1.c1, &r->c0.c2, &r->c1.c2};
    const fp2 *in[6] = {&x->c0.c0, &x->c1.c0, &x->c0.c1, &x->c1.c1, &x->c0.c2, &x->c1.c2};
    for (int j = 0; j < 6; j++) {
        fp2 c;
        fp2_conj(&c, in[j]);
        fp2_mul(out[j], &c, &GAMMA[j]);
    }
}

int fp12_is_one(const fp12 *a) {
    fp12 one;
    fp12_one(&one);
    return memcmp(a, &one, sizeof one) == 0;
}

void fp12_to_bytes(unsigned char out[384], const fp12 *a) {
    const fp2 *c[6] = {&a->c0.c0, &a->c0.c1, &a->c0.c2, &a->c1.c0, &a->c1.c1, &a->c1.c2};
    for (int k = 0; k < 6; k++) {
        const fp *e[2] = {&c[k]->a, &c[k]->b};
        for (int h = 0; h < 2; h++) {
            fp plain;
            fp_from_mont(&plain, e[h]);
            unsigned char *o = out + 64 * k + 32 * h;
            for (int i = 0; i < 32; i++) o[i] = (unsigned char)(plain.v[3 - i / 8] >> (8 * (7 - i % 8)));
        }
    }
}

/* --- G2 on the twist y^2 = x^3 + 3*xi: complete formulas (RCB), b3 = 9*xi ------------------- */

static inline void fp2_mul_b3(fp2 *r, const fp2 *x) {
    fp2 t;
    fp2_dbl(&t, x);
    fp2_dbl(&t, &t);
    fp2_dbl(&t, &t);
    fp2_add(&t, &t, x);
    fp2_mul_xi(r, &t);
}

void g2_init(void) {
    fp plain;
    fp *dst[4] = {&G2_GEN.x.a, &G2_GEN.x.b, &G2_GEN.y.a, &G2_GEN.y.b};
    for (int i = 0; i < 4; i++) {
        memcpy(plain.v, G2_GEN_PLAIN[i], sizeof plain.v);
        fp_to_mont(dst[i], &plain);
    }
}

int g2_on_curve(const g2a *q) {
    fp2 l, r, b;
    fp2_sqr(&l, &q->y);
    fp2_sqr(&r, &q->x);
    fp2_mul(&r, &r, &q->x);
    fp_add(&b.a, &FP_ONE, &FP_ONE);
    fp_add(&b.a, &b.a, &FP_ONE);
    b.b = b.a; /* 3*xi = 3 + 3i */
    fp2_add(&r, &r, &b);
    return fp2_equal(&l, &r);
}

void g2_set_inf(g2p *r) {
    memset(r, 0, sizeof *r);
    r->Y.a = FP_ONE;
}

void g2_from_affine(g2p *r, const g2a *a) {
    r->X = a->x;
    r->Y = a->y;
    memset(&r->Z, 0, sizeof r->Z);
    r->Z.a = FP_ONE;
}

static void g2_dblp(g2p *r, const g2p *p) {
    fp2 t0, t1, t2, X3, Y3, Z3;
    fp2_sqr(&t0, &p->Y);
    fp2_dbl(&Z3, &t0);
    fp2_dbl(&Z3, &Z3);
    fp2_dbl(&Z3, &Z3);
    fp2_mul(&t1, &p->Y, &p->Z);
    fp2_sqr(&t2, &p->Z);
    fp2_mul_b3(&t2, &t2);
    fp2_mul(&X3, &t2, &Z3);
    fp2_add(&Y3, &t0, &t2);
    fp2_mul(&Z3, &t1, &Z3);
    fp2_dbl(&t1, &t2);
    fp2_add(&t2, &t1, &t2);
    fp2_sub(&t0, &t0, &t2);
    fp2_mul(&Y3, &t0, &Y3);
    fp2_add(&Y3, &X3, &Y3);
    fp2_mul(&t1, &p->X, &p->Y);
    fp2_mul(&X3, &t0, &t1);
    fp2_dbl(&X3, &X3);
    r->X = X3;
    r->Y = Y3;
    r->Z = Z3;
}

void g2_addp(g2p *r, const g2p *p, const g2p *q) {
    fp2 t0, t1, t2, t3, t4, X3, Y3, Z3;
    fp2_mul(&t0, &p->X, &q->X);
    fp2_mul(&t1, &p->Y, &q->Y);
    fp2_mul(&t2, &p->Z, &q->Z);
    fp2_add(&t3, &p->X, &p->Y);
    fp2_add(&t4, &q->X, &q->Y);
    fp2_mul(&t3, &t3, &t4);
    fp2_add(&t4, &t0, &t1);
    fp2_sub(&t3, &t3, &t4);
    fp2_add(&t4, &p->Y, &p->Z);
    fp2_add(&X3, &q->Y, &q->Z);
    fp2_mul(&t4, &t4, &X3);
    fp2_add(&X3, &t1, &t2);
    fp2_sub(&t4, &t4, &X3);
    fp2_add(&X3, &p->X, &p->Z);
    fp2_add(&Y3, &q->X, &q->Z);
    fp2_mul(&X3, &X3, &Y3);
    fp2_add(&Y3, &t0, &t2);
    fp2_sub(&Y3, &X3, &Y3);
    fp2_dbl(&X3, &t0);
    fp2_add(&t0, &X3, &t0);
    fp2_mul_b3(&t2, &t2);
    fp2_add(&Z3, &t1, &t2);
    fp2_sub(&t1, &t1, &t2);
    fp2_mul_b3(&Y3, &Y3);
    fp2_mul(&X3, &t4, &Y3);
    fp2_mul(&t2, &t3, &t1);
    fp2_sub(&X3, &t2, &X3);
    fp2_mul(&Y3, &Y3, &t0);
    fp2_mul(&t1, &t1, &Z3);
    fp2_add(&Y3, &t1, &Y3);
    fp2_mul(&t0, &t0, &t3);
    fp2_mul(&Z3, &Z3, &t4);
    fp2_add(&Z3, &Z3, &t0);
    r->X = X3;
    r->Y = Y3;
    r->Z = Z3;
}

void g2_mul(g2p *r, const uint64_t k[4], const g2p *p) {
    g2p acc, base = *p;
    g2_set_inf(&acc);
    for (int i = 255; i >= 0; i--) {
        g2_dblp(&acc, &acc);
        if ((k[i / 64] >> (i % 64)) & 1) g2_addp(&acc, &acc, &base);
    }
    *r = acc;
}

int g2_to_affine(g2a *r, const g2p *p) {
    if (fp2_is_zero(&p->Z)) return 0;
    fp2 zi;
    fp2_inv(&zi, &p->Z);
    fp2_mul(&r->x, &p->X, &zi);
    fp2_mul(&r->y, &p->Y, &zi);
    return 1;
}

int g2_in_subgroup(const g2a *q) {
    g2p p, r;
    g2_from_affine(&p, q);
    g2_mul(&r, SC_N, &p);
    return fp2_is_zero(&r.Z);
}

/* --- Miller loop ------------------------------------------------------------------------------- */

typedef struct { fp2 X, Y, Z; } g2j; /* Jacobian (X/Z^2, Y/Z^3), for the Miller loop only */

/* x * (a + b*v): 5 multiplications */
static void fp6_mul_ab(fp6 *r, const fp6 *x, const fp2 *a, const fp2 *b) {
    fp2 v0, v1, s, t, c0, c1, c2;
    fp2_mul(&v0, &x->c0, a);
    fp2_mul(&v1, &x->c1, b);
    fp2_add(&s, &x->c0, &x->c1);
    fp2_add(&t, a, b);
    fp2_mul(&c1, &s, &t);
    fp2_sub(&c1, &c1, &v0);
    fp2_sub(&c1, &c1, &v1);
    fp2_mul(&t, &x->c2, b);
    fp2_mul_xi(&t, &t);
    fp2_add(&c0, &v0, &t);
    fp2_mul(&t, &x->c2, a);
    fp2_add(&c2, &v1, &t);
    r->c0 = c0;
    r->c1 = c1;
    r->c2 = c2;
}

/* f = f * (A + B*v + C*v*w), the sparse form of a line times w^3: 13 F_p2 multiplications */
static void mul_line(fp12 *f, const fp2 *A, const fp2 *B, const fp2 *C) {
    fp6 t0, t1, s;
    fp2 bc, t;
    fp6_mul_ab(&t0, &f->c0, A, B);
    /* t1 = f1 * C*v = (xi*f1.c2*C, f1.c0*C, f1.c1*C) */
    fp2_mul(&t, &f->c1.c2, C);
    fp2_mul(&t1.c1, &f->c1.c0, C);
    fp2_mul(&t1.c2, &f->c1.c1, C);
    fp2_mul_xi(&t1.c0, &t);
    fp6_add(&s, &f->c0, &f->c1);
    fp2_add(&bc, B, C);
    fp6_mul_ab(&s, &s, A, &bc);
    fp6_sub(&s, &s, &t0);
    fp6_sub(&f->c1, &s, &t1);
    fp6_mul_v(&t1, &t1);
    fp6_add(&f->c0, &t0, &t1);
}

/* T = 2T; l = tangent at T evaluated at P, scaled by 2*Y*Z^3 */
static void dbl_step(fp12 *f, g2j *T, const g1a *P) {
    fp2 A, B, C, D, E, F, ZZ, X3, Y3, Z3, t;
    fp2_sqr(&A, &T->X);
    fp2_sqr(&B, &T->Y);
    fp2_sqr(&C, &B);
    fp2_sqr(&ZZ, &T->Z);
    fp2_add(&D, &T->X, &B);
    fp2_sqr(&D, &D);
    fp2_sub(&D, &D, &A);
    fp2_sub(&D, &D, &C);
    fp2_dbl(&D, &D);
    fp2_dbl(&E, &A);
    fp2_add(&E, &E, &A);
    fp2_sqr(&F, &E);
    fp2_dbl(&t, &D);
    fp2_sub(&X3, &F, &t);
    fp2_sub(&t, &D, &X3);
    fp2_mul(&Y3, &E, &t);
    fp2_dbl(&t, &C);
    fp2_dbl(&t, &t);
    fp2_dbl(&t, &t);
    fp2_sub(&Y3, &Y3, &t);
    fp2_mul(&Z3, &T->Y, &T->Z);
    fp2_dbl(&Z3, &Z3);
    /* line: A' = 3X^3 - 2Y^2, B' = -3X^2 Z^2 xP, C' = 2YZ^3 yP */
    fp2 la, lb, lc;
    fp2_mul(&la, &E, &T->X);
    fp2_dbl(&t, &B);
    fp2_sub(&la, &la, &t);
    fp2_mul(&lb, &E, &ZZ);
    fp2_mul_fp(&lb, &lb, &P->x);
    fp2_neg(&lb, &lb);
    fp2_mul(&lc, &Z3, &ZZ);
    fp2_mul_fp(&lc, &lc, &P->y);
    mul_line(f, &la, &lb, &lc);
    T->X = X3;
    T->Y = Y3;
    T->Z = Z3;
}

/* T = T + Q; l = line through T and Q evaluated at P, scaled by h*Z */
static void add_step(fp12 *f, g2j *T, const g2a *Q, const g1a *P) {
    fp2 ZZ, ZZZ, r, h, HH, HHH, V, X3, Y3, Z3, t;
    fp2_sqr(&ZZ, &T->Z);
    fp2_mul(&ZZZ, &ZZ, &T->Z);
    fp2_mul(&r, &Q->y, &ZZZ);
    fp2_sub(&r, &r, &T->Y);
    fp2_mul(&h, &Q->x, &ZZ);
    fp2_sub(&h, &h, &T->X);
    fp2_mul(&Z3, &T->Z, &h);
    fp2_sqr(&HH, &h);
    fp2_mul(&HHH, &HH, &h);
    fp2_mul(&V, &T->X, &HH);
    fp2_sqr(&X3, &r);
    fp2_sub(&X3, &X3, &HHH);
    fp2_sub(&X3, &X3, &V);
    fp2_sub(&X3, &X3, &V);
    fp2_sub(&t, &V, &X3);
    fp2_mul(&Y3, &r, &t);
    fp2_mul(&t, &T->Y, &HHH);
    fp2_sub(&Y3, &Y3, &t);
    /* line: A' = r xQ - yQ D, B' = -r xP, C' = D yP with D = h Z */
    fp2 la, lb, lc;
    fp2_mul(&la, &r, &Q->x);
    fp2_mul(&t, &Q->y, &Z3);
    fp2_sub(&la, &la, &t);
    fp2_mul_fp(&lb, &r, &P->x);
    fp2_neg(&lb, &lb);
    fp2_mul_fp(&lc, &Z3, &P->y);
    mul_line(f, &la, &lb, &lc);
    T->X = X3;
    T->Y = Y3;
    T->Z = Z3;
}

static void g2_frob(g2a *r, const g2a *q) {
    fp2 t;
    fp2_conj(&t, &q->x);
    fp2_mul(&r->x, &t, &IGAMMA2);
    fp2_conj(&t, &q->y);
    fp2_mul(&r->y, &t, &IGAMMA3);
}

static void miller(fp12 *f, const g1a *ps, const g2a *qs, size_t k, g2j *T) {
    fp12_one(f);
    for (size_t j = 0; j < k; j++) {
        T[j].X = qs[j].x;
        T[j].Y = qs[j].y;
        memset(&T[j].Z, 0, sizeof(fp2));
        T[j].Z.a = FP_ONE;
    }
    for (int i = LOOP_BITS - 2; i >= 0; i--) {
        uint64_t bit = i >= 64 ? (LOOP_HI >> (i - 64)) & 1 : (LOOP_LO >> i) & 1;
        fp12_sqr(f, f);
        for (size_t j = 0; j < k; j++) {
            dbl_step(f, &T[j], &ps[j]);
            if (bit) add_step(f, &T[j], &qs[j], &ps[j]);
        }
    }
    /* u < 0: f_{6u+2} = conj(f_{|6u+2|}) after the final exponentiation, [6u+2]Q = -T */
    fp12_conj(f, f);
    for (size_t j = 0; j < k; j++) {
        g2a q1, q2;
        fp2_neg(&T[j].Y, &T[j].Y);
        g2_frob(&q1, &qs[j]);
        g2_frob(&q2, &q1);
        fp2_neg(&q2.y, &q2.y);
        add_step(f, &T[j], &q1, &ps[j]);
        add_step(f, &T[j], &q2, &ps[j]);
    }
}

/* --- final exponentiation: (p^6 - 1)(p^2 + 1), then (p^4 - p^2 + 1)/n = l0 + l1 p + l2 p^2 + p^3 --- */

/* r = x^|u| then conjugated (x in the cyclotomic subgroup, so that is x^u for u < 0) */
static void pow_u(fp12 *r, const fp12 *x) {
    fp12 acc = *x;
    for (int i = 61; i >= 0; i--) { /* |u| has 63 bits */
        fp12_cyc_sqr(&acc, &acc);
        if ((ABS_U >> i) & 1) fp12_mul(&acc, &acc, x);
    }
    fp12_conj(r, &acc);
}

static void pow_small(fp12 *r, const fp12 *x, unsigned e) {
    fp12 acc = *x;
    int top = 31 - __builtin_clz(e);
    for (int i = top - 1; i >= 0; i--) {
        fp12_cyc_sqr(&acc, &acc);
        if ((e >> i) & 1) fp12_mul(&acc, &acc, x);
    }
    *r = acc;
}

static void final_exp(fp12 *r, const fp12 *f) {
    fp12 t, inv, fu, fu2, fu3, a, b, c;
    /* easy part */
    fp12_conj(&t, f);
    fp12_inv(&inv, f);
    fp12_mul(&t, &t, &inv);
    fp12_frob(&a, &t);
    fp12_frob(&a, &a);
    fp12_mul(&t, &a, &t);
    /* hard part: l0 = -2 - 18u - 30u^2 - 36u^3, l1 = 1 - 12u - 18u^2 - 36u^3, l2 = 1 + 6u^2 */
    pow_u(&fu, &t);
    pow_u(&fu2, &fu);
    pow_u(&fu3, &fu2);
    fp12 fu3_36, x0, x1, x2;
    pow_small(&fu3_36, &fu3, 36);
    /* t^l0 = conj(t^2 * fu^18 * fu2^30 * fu3^36) */
    fp12_sqr(&x0, &t);
    pow_small(&a, &fu, 18);
    fp12_mul(&x0, &x0, &a);
    pow_small(&a, &fu2, 30);
    fp12_mul(&x0, &x0, &a);
    fp12_mul(&x0, &x0, &fu3_36);
    fp12_conj(&x0, &x0);
    /* t^l1 = t * conj(fu^12 * fu2^18 * fu3^36) */
    pow_small(&a, &fu, 12);
    pow_small(&b, &fu2, 18);
    fp12_mul(&a, &a, &b);
    fp12_mul(&a, &a, &fu3_36);
    fp12_conj(&a, &a);
    fp12_mul(&x1, &t, &a);
    /* t^l2 = t * fu2^6 */
    pow_small(&a, &fu2, 6);
    fp12_mul(&x2, &t, &a);
    /* t^l0 * (t^l1)^p * (t^l2)^(p^2) * t^(p^3) */
    fp12_frob(&c, &x1);
    fp12_mul(&x0, &x0, &c);
    fp12_frob(&c, &x2);
    fp12_frob(&c, &c);
    fp12_mul(&x0, &x0, &c);
    fp12_frob(&c, &t);
    fp12_frob(&c, &c);
    fp12_frob(&c, &c);
    fp12_mul(r, &x0, &c);
}

/* test hooks: the Miller loop and the final exponentiation on their own */
void miller_only(fp12 *f, const g1a *p, const g2a *q) {
    g2j T;
    miller(f, p, q, 1, &T);
}

void final_exp_only(fp12 *r, const fp12 *f) { final_exp(r, f); }

int pairing_product(fp12 *r, const g1a *ps, const g2a *qs, size_t k) {
    if (k == 0) {
        fp12_one(r);
        return 0;
    }
    g2j *T = malloc(k * sizeof(g2j));
    if (!T) return -1;
    fp12 f;
    miller(&f, ps, qs, k, T);
    free(T);
    final_exp(r, &f);
    return 0;
}
