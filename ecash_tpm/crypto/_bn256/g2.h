/* F_p2 = F_p[i]/(i^2+1), F_p6 = F_p2[v]/(v^3 - xi), F_p12 = F_p6[w]/(w^2 - v), xi = 1 + i;
 * G2 = the order-n subgroup of the M-type sextic twist E': y^2 = x^3 + 3*xi over F_p2;
 * optimal ate pairing with loop 6u+2, u = -0x6882F5C030B0A801 (docs/native.md). */
#ifndef ECASH_BN256_G2_H
#define ECASH_BN256_G2_H

#include "fp.h"
#include "g1.h"

typedef struct { fp a, b; } fp2;           /* a + b*i */
typedef struct { fp2 c0, c1, c2; } fp6;    /* c0 + c1*v + c2*v^2 */
typedef struct { fp6 c0, c1; } fp12;       /* c0 + c1*w */
typedef struct { fp2 x, y; } g2a;          /* affine point of E' */
typedef struct { fp2 X, Y, Z; } g2p;       /* homogeneous projective, infinity = (0:1:0) */

extern g2a G2_GEN;
void g2_init(void);

int g2_on_curve(const g2a *q);
int g2_in_subgroup(const g2a *q);
void g2_set_inf(g2p *r);
void g2_from_affine(g2p *r, const g2a *a);
void g2_addp(g2p *r, const g2p *p, const g2p *q);
void g2_mul(g2p *r, const uint64_t k[4], const g2p *p);  /* public k, any 256-bit value */
int g2_to_affine(g2a *r, const g2p *p);                   /* 0 for infinity */

/* e(P_1, Q_1) * ... * e(P_k, Q_k), one shared final exponentiation; -1 on ENOMEM */
int pairing_product(fp12 *r, const g1a *ps, const g2a *qs, size_t k);
int fp12_is_one(const fp12 *a);
void miller_only(fp12 *f, const g1a *p, const g2a *q);
void final_exp_only(fp12 *r, const fp12 *f);
void fp12_to_bytes(unsigned char out[384], const fp12 *a);

#endif
