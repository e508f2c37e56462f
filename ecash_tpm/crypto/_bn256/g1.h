/* G1 of BN_P256: y^2 = x^3 + 3 over F_p, prime order n, cofactor 1. */
#ifndef ECASH_BN256_G1_H
#define ECASH_BN256_G1_H

#include <stddef.h>
#include "fp.h"

/* homogeneous projective (X:Y:Z), x = X/Z, y = Y/Z; infinity = (0:1:0) */
typedef struct { fp X, Y, Z; } g1p;
/* affine, Montgomery form; never the point at infinity */
typedef struct { fp x, y; } g1a;

#define G1_FB_ROWS 33
#define G1_FB_COLS 128
#define G1_FB_SIZE (G1_FB_ROWS * G1_FB_COLS)

typedef struct {
    uint64_t k[4];        /* scalar, 0 <= k < n, plain little-endian limbs */
    g1a pt;
    const g1a *fixed;     /* fixed-base table of pt (G1_FB_SIZE entries) or NULL */
} g1_term;

extern const uint64_t SC_N[4];

void g1_set_inf(g1p *r);
void g1_from_affine(g1p *r, const g1a *a);
int g1_is_inf(const g1p *p);
void g1_dbl(g1p *r, const g1p *p);
void g1_add(g1p *r, const g1p *p, const g1p *q);
void g1_madd(g1p *r, const g1p *p, const g1a *q);
int g1_to_affine(g1a *r, const g1p *p, int secret); /* 0 for infinity */
int g1_on_curve(const g1a *a);
int g1_batch_affine(g1a *out, const g1p *in, size_t n); /* all finite; -1 on ENOMEM */

void glv_split(const uint64_t k[4], uint64_t k1[4], uint64_t *neg1, uint64_t k2[4], uint64_t *neg2);

int g1_msm(g1p *r, const g1_term *terms, size_t n);  /* public scalars; -1 on ENOMEM */
void g1_mul_secret(g1p *r, const uint64_t k[4], const g1a *p);
int g1_fixed_build(g1a *rows, const g1a *p);        /* -1 on ENOMEM */
void g1_fixed_add_mul(g1p *acc, const g1a *rows, const uint64_t k[4]);

#endif
