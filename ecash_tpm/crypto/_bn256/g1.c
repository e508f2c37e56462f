/* G1 arithmetic for BN_P256: complete projective formulas (Renes-Costello-Batina 2016,
 * Algorithms 7-9 for a = 0, b3 = 3*b = 9), GLV (phi(x, y) = (beta*x, y) = lambda*(x, y)),
 * Straus/wNAF for public scalars, a signed radix-256 fixed-base table, and a regular-digit
 * constant-time multiplication for secret scalars.
 *
 * The formulas are complete: no input (doubling, P + (-P), infinity) needs a branch, which is
 * what lets the secret path run the same instructions for every scalar. */
#include <stdlib.h>
#include "g1.h"

const uint64_t SC_N[4] = FP_N_INIT;
static const fp FP_BETA = {FP_BETA_INIT};

void g1_set_inf(g1p *r) {
    r->X = FP_0;
    r->Y = FP_ONE;
    r->Z = FP_0;
}

void g1_from_affine(g1p *r, const g1a *a) {
    r->X = a->x;
    r->Y = a->y;
    r->Z = FP_ONE;
}

int g1_is_inf(const g1p *p) { return (int)fp_is_zero(&p->Z); }

/* RCB Algorithm 9: 6M + 2S + 1*b3 */
void g1_dbl(g1p *r, const g1p *p) {
    fp t0, t1, t2, X3, Y3, Z3;
    fp_sqr(&t0, &p->Y);
    fp_dbl(&Z3, &t0);
    fp_dbl(&Z3, &Z3);
    fp_dbl(&Z3, &Z3);
    fp_mul(&t1, &p->Y, &p->Z);
    fp_sqr(&t2, &p->Z);
    fp_mul9(&t2, &t2);
    fp_mul(&X3, &t2, &Z3);
    fp_add(&Y3, &t0, &t2);
    fp_mul(&Z3, &t1, &Z3);
    fp_dbl(&t1, &t2);
    fp_add(&t2, &t1, &t2);
    fp_sub(&t0, &t0, &t2);
    fp_mul(&Y3, &t0, &Y3);
    fp_add(&Y3, &X3, &Y3);
    fp_mul(&t1, &p->X, &p->Y);
    fp_mul(&X3, &t0, &t1);
    fp_dbl(&X3, &X3);
    r->X = X3;
    r->Y = Y3;
    r->Z = Z3;
}

/* RCB Algorithm 7: 12M + 2*b3, complete */
void g1_add(g1p *r, const g1p *p, const g1p *q) {
    fp t0, t1, t2, t3, t4, X3, Y3, Z3;
    fp_mul(&t0, &p->X, &q->X);
    fp_mul(&t1, &p->Y, &q->Y);
    fp_mul(&t2, &p->Z, &q->Z);
    fp_add(&t3, &p->X, &p->Y);
    fp_add(&t4, &q->X, &q->Y);
    fp_mul(&t3, &t3, &t4);
    fp_add(&t4, &t0, &t1);
    fp_sub(&t3, &t3, &t4);
    fp_add(&t4, &p->Y, &p->Z);
    fp_add(&X3, &q->Y, &q->Z);
    fp_mul(&t4, &t4, &X3);
    fp_add(&X3, &t1, &t2);
    fp_sub(&t4, &t4, &X3);
    fp_add(&X3, &p->X, &p->Z);
    fp_add(&Y3, &q->X, &q->Z);
    fp_mul(&X3, &X3, &Y3);
    fp_add(&Y3, &t0, &t2);
    fp_sub(&Y3, &X3, &Y3);
    fp_dbl(&X3, &t0);
    fp_add(&t0, &X3, &t0);
    fp_mul9(&t2, &t2);
    fp_add(&Z3, &t1, &t2);
    fp_sub(&t1, &t1, &t2);
    fp_mul9(&Y3, &Y3);
    fp_mul(&X3, &t4, &Y3);
    fp_mul(&t2, &t3, &t1);
    fp_sub(&X3, &t2, &X3);
    fp_mul(&Y3, &Y3, &t0);
    fp_mul(&t1, &t1, &Z3);
    fp_add(&Y3, &t1, &Y3);
    fp_mul(&t0, &t0, &t3);
    fp_mul(&Z3, &Z3, &t4);
    fp_add(&Z3, &Z3, &t0);
    r->X = X3;
    r->Y = Y3;
    r->Z = Z3;
}

/* RCB Algorithm 8: mixed addition, 11M + 2*b3, complete for any p (q is affine, finite) */
void g1_madd(g1p *r, const g1p *p, const g1a *q) {
    fp t0, t1, t2, t3, t4, X3, Y3, Z3;
    fp_mul(&t0, &p->X, &q->x);
    fp_mul(&t1, &p->Y, &q->y);
    fp_add(&t3, &q->x, &q->y);
    fp_add(&t4, &p->X, &p->Y);
    fp_mul(&t3, &t3, &t4);
    fp_add(&t4, &t0, &t1);
    fp_sub(&t3, &t3, &t4);
    fp_mul(&t4, &q->y, &p->Z);
    fp_add(&t4, &t4, &p->Y);
    fp_mul(&Y3, &q->x, &p->Z);
    fp_add(&Y3, &Y3, &p->X);
    fp_dbl(&X3, &t0);
    fp_add(&t0, &X3, &t0);
    fp_mul9(&t2, &p->Z);
    fp_add(&Z3, &t1, &t2);
    fp_sub(&t1, &t1, &t2);
    fp_mul9(&Y3, &Y3);
    fp_mul(&X3, &t4, &Y3);
    fp_mul(&t2, &t3, &t1);
    fp_sub(&X3, &t2, &X3);
    fp_mul(&Y3, &Y3, &t0);
    fp_mul(&t1, &t1, &Z3);
    fp_add(&Y3, &t1, &Y3);
    fp_mul(&t0, &t0, &t3);
    fp_mul(&Z3, &Z3, &t4);
    fp_add(&Z3, &Z3, &t0);
    r->X = X3;
    r->Y = Y3;
    r->Z = Z3;
}

int g1_to_affine(g1a *r, const g1p *p, int secret) {
    if (g1_is_inf(p)) return 0;
    fp zi;
    if (secret)
        fp_inv(&zi, &p->Z); /* Z depends on the secret scalar: constant-time inversion */
    else
        fp_inv_public(&zi, &p->Z);
    fp_mul(&r->x, &p->X, &zi);
    fp_mul(&r->y, &p->Y, &zi);
    return 1;
}

int g1_on_curve(const g1a *a) {
    fp l, rr, three;
    fp_sqr(&l, &a->y);
    fp_sqr(&rr, &a->x);
    fp_mul(&rr, &rr, &a->x);
    fp_add(&three, &FP_ONE, &FP_ONE);
    fp_add(&three, &three, &FP_ONE);
    fp_add(&rr, &rr, &three);
    return (int)fp_equal(&l, &rr);
}

int g1_batch_affine(g1a *out, const g1p *in, size_t n) {
    if (n == 0) return 0;
    fp *pre = malloc(n * sizeof(fp));
    if (!pre) return -1;
    fp acc = FP_ONE, inv, zi;
    for (size_t i = 0; i < n; i++) {
        fp_mul(&acc, &acc, &in[i].Z);
        pre[i] = acc;
    }
    fp_inv_public(&inv, &acc);
    for (size_t i = n; i-- > 0;) {
        if (i) {
            fp_mul(&zi, &inv, &pre[i - 1]);
            fp_mul(&inv, &inv, &in[i].Z);
        } else {
            zi = inv;
        }
        fp_mul(&out[i].x, &in[i].X, &zi);
        fp_mul(&out[i].y, &in[i].Y, &zi);
    }
    free(pre);
    return 0;
}

/* --- scalars (plain little-endian 4x64, no Montgomery form) -------------------------------- */

static void mul256(uint64_t r[8], const uint64_t a[4], const uint64_t b[4]) {
    uint64_t t[8] = {0};
    for (int i = 0; i < 4; i++) {
        uint64_t carry = 0;
        for (int j = 0; j < 4; j++) {
            u128 x = (u128)a[i] * b[j] + t[i + j] + carry;
            t[i + j] = (uint64_t)x;
            carry = (uint64_t)(x >> 64);
        }
        t[i + 4] = carry;
    }
    memcpy(r, t, sizeof t);
}

static void add256(uint64_t r[4], const uint64_t a[4], const uint64_t b[4]) {
    uint64_t c = 0;
    for (int i = 0; i < 4; i++) {
        u128 x = (u128)a[i] + b[i] + c;
        r[i] = (uint64_t)x;
        c = (uint64_t)(x >> 64);
    }
}

static void sub256(uint64_t r[4], const uint64_t a[4], const uint64_t b[4]) {
    uint64_t br = 0;
    for (int i = 0; i < 4; i++) {
        u128 x = (u128)a[i] - b[i] - br;
        r[i] = (uint64_t)x;
        br = (uint64_t)(x >> 64) & 1;
    }
}

/* round(k * g / 2^256) for the precomputed g = round(2^256 * b / n) */
static void round_mul(uint64_t c[4], const uint64_t k[4], const uint64_t g[4]) {
    uint64_t w[8];
    mul256(w, k, g);
    u128 x = (u128)w[3] + ((uint64_t)1 << 63);
    uint64_t carry = (uint64_t)(x >> 64);
    for (int i = 4; i < 8; i++) {
        x = (u128)w[i] + carry;
        c[i - 4] = (uint64_t)x;
        carry = (uint64_t)(x >> 64);
    }
}

/* |v| and its sign (two's complement mod 2^256), without a branch */
static void abs256(uint64_t v[4], uint64_t *neg) {
    uint64_t m = (uint64_t)0 - (v[3] >> 63), c = m & 1;
    for (int i = 0; i < 4; i++) {
        u128 x = (u128)(v[i] ^ m) + c;
        v[i] = (uint64_t)x;
        c = (uint64_t)(x >> 64);
    }
    *neg = m & 1;
}

/* k = k1 + k2*lambda (mod n) with |k1|, |k2| < 2^130: Babai rounding with the short basis
 * (a1, b1), (a2, b2) of bn256_glv.GLV_BASIS; constant time. */
void glv_split(const uint64_t k[4], uint64_t k1[4], uint64_t *neg1, uint64_t k2[4], uint64_t *neg2) {
    static const uint64_t g1[4] = {0xd105eb806163cf7cULL, 0, 0, 0};
    static const uint64_t g2[4] = {0xf40a1113da9e04d5ULL, 0x0000000000018798ULL, 1, 0};
    static const uint64_t a1[4] = {0xd105eb8061615001ULL, 0, 0, 0};
    static const uint64_t mb1[4] = {0x3af0036e1b054003ULL, 0xfffffffffffe7866ULL, 0, 0};
    static const uint64_t a2[4] = {0x0bf5eeee7c669004ULL, 0xfffffffffffe7867ULL, 0, 0};
    static const uint64_t b2[4] = {0xd105eb8061615001ULL, 0, 0, 0};
    uint64_t c1[4], c2[4], w[8], t[4];
    round_mul(c1, k, g1);
    round_mul(c2, k, g2);
    /* k1 = k - c1*a1 - c2*a2 */
    mul256(w, c1, a1);
    sub256(t, k, w);
    mul256(w, c2, a2);
    sub256(k1, t, w);
    /* k2 = -c1*b1 - c2*b2 = c1*(-b1) - c2*b2 */
    mul256(w, c1, mb1);
    memcpy(t, w, sizeof t);
    mul256(w, c2, b2);
    sub256(k2, t, w);
    abs256(k1, neg1);
    abs256(k2, neg2);
}

/* --- public scalars: width-5 NAF, Straus ---------------------------------------------------- */

#define WNAF_MAX 262

/* width-5 NAF of k >= 0, least significant first; returns the length */
static int wnaf5(int8_t *d, const uint64_t kin[4]) {
    uint64_t k[5] = {kin[0], kin[1], kin[2], kin[3], 0};
    int len = 0;
    while (k[0] | k[1] | k[2] | k[3] | k[4]) {
        int digit = 0;
        if (k[0] & 1) {
            digit = (int)(k[0] & 31);
            if (digit >= 16) digit -= 32;
            uint64_t c;
            if (digit > 0) { /* k -= digit */
                u128 x = (u128)k[0] - (uint64_t)digit;
                k[0] = (uint64_t)x;
                c = (uint64_t)(x >> 64) & 1;
                for (int i = 1; i < 5 && c; i++) { c = (k[i] == 0); k[i] -= 1; }
            } else { /* k += -digit */
                u128 x = (u128)k[0] + (uint64_t)(-digit);
                k[0] = (uint64_t)x;
                c = (uint64_t)(x >> 64);
                for (int i = 1; i < 5 && c; i++) { k[i] += 1; c = (k[i] == 0); }
            }
        }
        d[len++] = (int8_t)digit;
        for (int i = 0; i < 4; i++) k[i] = (k[i] >> 1) | (k[i + 1] << 63);
        k[4] >>= 1;
    }
    return len;
}

/* [P, 3P, ..., 15P] */
static void odd_multiples(g1p tab[8], const g1a *p) {
    g1p two;
    g1_from_affine(&tab[0], p);
    g1_dbl(&two, &tab[0]);
    g1_madd(&tab[1], &two, p);
    for (int i = 2; i < 8; i++) g1_add(&tab[i], &tab[i - 1], &two);
}

typedef struct {
    int8_t d[WNAF_MAX];
    int len;
    uint64_t neg;
    const g1p *tab;
} half_plan;

static int is_zero256(const uint64_t k[4]) { return !(k[0] | k[1] | k[2] | k[3]); }

void g1_fixed_add_mul(g1p *acc, const g1a *rows, const uint64_t k[4]) {
    unsigned carry = 0;
    for (int i = 0; i < G1_FB_ROWS; i++) {
        unsigned byte = i < 32 ? (unsigned)((k[i / 8] >> (8 * (i % 8))) & 0xff) : 0;
        int d = (int)(byte + carry);
        carry = 0;
        if (d > 128) {
            d -= 256;
            carry = 1;
        }
        if (d > 0) {
            g1_madd(acc, acc, &rows[i * G1_FB_COLS + d - 1]);
        } else if (d < 0) {
            g1a q = rows[i * G1_FB_COLS - d - 1];
            fp_neg(&q.y, &q.y);
            g1_madd(acc, acc, &q);
        }
    }
}

int g1_msm(g1p *r, const g1_term *terms, size_t n) {
    g1p *tabs = malloc((n ? n : 1) * 16 * sizeof(g1p));
    half_plan *plans = malloc((n ? n : 1) * 2 * sizeof(half_plan));
    if (!tabs || !plans) {
        free(tabs);
        free(plans);
        return -1;
    }
    size_t np = 0;
    int maxlen = 0;
    g1p fixed_acc;
    g1_set_inf(&fixed_acc);
    for (size_t t = 0; t < n; t++) {
        const g1_term *term = &terms[t];
        if (is_zero256(term->k)) continue;
        if (term->fixed) {
            g1_fixed_add_mul(&fixed_acc, term->fixed, term->k);
            continue;
        }
        uint64_t k1[4], k2[4], n1, n2;
        glv_split(term->k, k1, &n1, k2, &n2);
        g1p *tab = &tabs[t * 16];
        odd_multiples(tab, &term->pt);
        if (!is_zero256(k1)) {
            half_plan *h = &plans[np++];
            h->len = wnaf5(h->d, k1);
            h->neg = n1;
            h->tab = tab;
            if (h->len > maxlen) maxlen = h->len;
        }
        if (!is_zero256(k2)) {
            for (int i = 0; i < 8; i++) {
                fp_mul(&tab[8 + i].X, &tab[i].X, &FP_BETA);
                tab[8 + i].Y = tab[i].Y;
                tab[8 + i].Z = tab[i].Z;
            }
            half_plan *h = &plans[np++];
            h->len = wnaf5(h->d, k2);
            h->neg = n2;
            h->tab = tab + 8;
            if (h->len > maxlen) maxlen = h->len;
        }
    }
    g1p acc;
    g1_set_inf(&acc);
    int started = 0;
    for (int i = maxlen - 1; i >= 0; i--) {
        if (started) g1_dbl(&acc, &acc);
        for (size_t j = 0; j < np; j++) {
            const half_plan *h = &plans[j];
            if (i >= h->len || !h->d[i]) continue;
            int d = h->d[i];
            int neg = (d < 0) ^ (int)h->neg;
            const g1p *q = &h->tab[(d < 0 ? -d : d) >> 1];
            if (neg) {
                g1p m = *q;
                fp_neg(&m.Y, &m.Y);
                g1_add(&acc, &acc, &m);
            } else {
                g1_add(&acc, &acc, q);
            }
            started = 1;
        }
    }
    g1_add(r, &acc, &fixed_acc);
    free(tabs);
    free(plans);
    return 0;
}

/* --- secret scalars: regular signed digits, constant-time lookups ----------------------------- */

#define SEC_W 4
#define SEC_DIGITS 34 /* odd digits in [-15, 15]; covers |k_i| + 2 < 2^133 */

/* Joye-Tunstall regular recoding of an odd k: SEC_DIGITS odd digits, least significant first */
static void regular_digits(int d[SEC_DIGITS], const uint64_t kin[4]) {
    uint64_t k[4] = {kin[0], kin[1], kin[2], kin[3]};
    for (int i = 0; i < SEC_DIGITS - 1; i++) {
        int64_t digit = (int64_t)(k[0] & 31) - 16;
        d[i] = (int)digit;
        /* k -= digit (never negative: k - digit = k - k mod 32 + 16) */
        uint64_t sub = (uint64_t)(-digit), ext = (uint64_t)0 - (sub >> 63), c = 0;
        for (int j = 0; j < 4; j++) {
            u128 x = (u128)k[j] + (j ? ext : sub) + c;
            k[j] = (uint64_t)x;
            c = (uint64_t)(x >> 64);
        }
        for (int j = 0; j < 3; j++) k[j] = (k[j] >> SEC_W) | (k[j + 1] << (64 - SEC_W));
        k[3] >>= SEC_W;
    }
    d[SEC_DIGITS - 1] = (int)k[0];
}

static void g1p_cmov(g1p *r, const g1p *a, uint64_t mask) {
    fp_cmov(&r->X, &a->X, mask);
    fp_cmov(&r->Y, &a->Y, mask);
    fp_cmov(&r->Z, &a->Z, mask);
}

static void cond_neg_y(g1p *r, uint64_t bit) {
    fp m;
    fp_neg(&m, &r->Y);
    fp_cmov(&r->Y, &m, (uint64_t)0 - bit);
}

/* r = sign(d) * tab[(|d|-1)/2], reading every entry */
static void ct_lookup(g1p *r, const g1p tab[8], int d, uint64_t flip) {
    uint64_t sign = (uint64_t)((uint32_t)d >> 31);
    uint64_t m = (uint64_t)0 - sign;
    uint64_t absd = ((uint64_t)(int64_t)d ^ m) + sign;
    uint64_t idx = absd >> 1;
    *r = tab[0];
    for (uint64_t j = 1; j < 8; j++) {
        uint64_t eq = ((idx ^ j) - 1) >> 63;
        g1p_cmov(r, &tab[j], (uint64_t)0 - eq);
    }
    cond_neg_y(r, sign ^ flip);
}

/* k odd := |k_i| + (1 or 2); the correction point is P or 2P (returned in corr, negated) */
static void make_odd(uint64_t k[4], g1p *corr, const g1p *p1, const g1p *p2, uint64_t neg) {
    uint64_t even = (k[0] & 1) ^ 1, add[4] = {2 - even, 0, 0, 0};
    add256(k, k, add);
    *corr = *p2;
    g1p_cmov(corr, p1, (uint64_t)0 - even);
    cond_neg_y(corr, neg ^ 1);
}

void g1_mul_secret(g1p *r, const uint64_t k[4], const g1a *p) {
    uint64_t k1[4], k2[4], n1, n2;
    int d1[SEC_DIGITS], d2[SEC_DIGITS];
    g1p t1[8], t2[8], two1, two2, c1, c2, q, acc;
    glv_split(k, k1, &n1, k2, &n2);
    odd_multiples(t1, p);
    g1_dbl(&two1, &t1[0]);
    for (int i = 0; i < 8; i++) {
        fp_mul(&t2[i].X, &t1[i].X, &FP_BETA);
        t2[i].Y = t1[i].Y;
        t2[i].Z = t1[i].Z;
    }
    fp_mul(&two2.X, &two1.X, &FP_BETA);
    two2.Y = two1.Y;
    two2.Z = two1.Z;
    make_odd(k1, &c1, &t1[0], &two1, n1);
    make_odd(k2, &c2, &t2[0], &two2, n2);
    regular_digits(d1, k1);
    regular_digits(d2, k2);
    g1_set_inf(&acc);
    for (int i = SEC_DIGITS - 1; i >= 0; i--) {
        if (i != SEC_DIGITS - 1) {
            for (int j = 0; j < SEC_W; j++) g1_dbl(&acc, &acc);
        }
        ct_lookup(&q, t1, d1[i], n1);
        g1_add(&acc, &acc, &q);
        ct_lookup(&q, t2, d2[i], n2);
        g1_add(&acc, &acc, &q);
    }
    g1_add(&acc, &acc, &c1);
    g1_add(r, &acc, &c2);
}

/* --- fixed base: row i holds d * 256^i * P for d = 1..128 ------------------------------------- */

int g1_fixed_build(g1a *rows, const g1a *p) {
    g1p *row = malloc(G1_FB_COLS * sizeof(g1p));
    if (!row) return -1;
    g1a base = *p;
    for (int i = 0; i < G1_FB_ROWS; i++) {
        g1_from_affine(&row[0], &base);
        for (int d = 1; d < G1_FB_COLS; d++) g1_madd(&row[d], &row[d - 1], &base);
        if (g1_batch_affine(&rows[i * G1_FB_COLS], row, G1_FB_COLS) < 0) {
            free(row);
            return -1;
        }
        g1p nxt;
        g1_dbl(&nxt, &row[G1_FB_COLS - 1]); /* 256 * base */
        g1_to_affine(&base, &nxt, 0);
    }
    free(row);
    return 0;
}
