/* Python entries for G2 and the pairing; included once, by module.c. A G2 point is four ints
 * (x0, x1, y0, y1) with x = x0 + x1*i, y = y0 + y1*i; infinity is None (result) or four Nones. */
#ifndef ECASH_BN256_G2_METHODS_H
#define ECASH_BN256_G2_METHODS_H

#include "g2.h"

/* 1 finite, 0 infinity (four Nones), -1 error; checks range and the twist equation only */
static int parse_g2(PyObject *const *c, g2a *out) {
    if (c[0] == Py_None && c[1] == Py_None && c[2] == Py_None && c[3] == Py_None) return 0;
    if (py_to_fp(c[0], &out->x.a, "qx0") < 0 || py_to_fp(c[1], &out->x.b, "qx1") < 0 ||
        py_to_fp(c[2], &out->y.a, "qy0") < 0 || py_to_fp(c[3], &out->y.b, "qy1") < 0)
        return -1;
    if (!g2_on_curve(out)) {
        PyErr_SetString(PyExc_ValueError, "point is not on the twist y^2 = x^3 + 3(1+i)");
        return -1;
    }
    return 1;
}

static PyObject *g2_to_py(const g2p *p) {
    g2a a;
    if (!g2_to_affine(&a, p)) Py_RETURN_NONE;
    PyObject *v[4] = {fp_to_py(&a.x.a), fp_to_py(&a.x.b), fp_to_py(&a.y.a), fp_to_py(&a.y.b)};
    PyObject *t = NULL;
    if (v[0] && v[1] && v[2] && v[3]) t = PyTuple_Pack(4, v[0], v[1], v[2], v[3]);
    for (int i = 0; i < 4; i++) Py_XDECREF(v[i]);
    return t;
}

static int parse_args(PyObject *args, Py_ssize_t n, const char *name, PyObject **out) {
    if (!PyTuple_Check(args) || PyTuple_GET_SIZE(args) != n) {
        PyErr_Format(PyExc_TypeError, "%s takes %zd arguments", name, n);
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) out[i] = PyTuple_GET_ITEM(args, i);
    return 0;
}

static PyObject *py_g2_mul(PyObject *m, PyObject *args) {
    (void)m;
    PyObject *a[5];
    uint64_t k[4];
    g2a q;
    if (parse_args(args, 5, "g2_mul", a) < 0 || py_to_scalar(a[0], k) < 0) return NULL;
    int r = parse_g2(a + 1, &q);
    if (r < 0) return NULL;
    if (r == 0) Py_RETURN_NONE;
    g2p p, out;
    g2_from_affine(&p, &q);
    Py_BEGIN_ALLOW_THREADS
    g2_mul(&out, k, &p);
    Py_END_ALLOW_THREADS
    return g2_to_py(&out);
}

static PyObject *py_g2_add(PyObject *m, PyObject *args) {
    (void)m;
    PyObject *a[8];
    g2a q1, q2;
    if (parse_args(args, 8, "g2_add", a) < 0) return NULL;
    int r1 = parse_g2(a, &q1);
    if (r1 < 0) return NULL;
    int r2 = parse_g2(a + 4, &q2);
    if (r2 < 0) return NULL;
    g2p acc, t;
    g2_set_inf(&acc);
    if (r1) {
        g2_from_affine(&t, &q1);
        g2_addp(&acc, &acc, &t);
    }
    if (r2) {
        g2_from_affine(&t, &q2);
        g2_addp(&acc, &acc, &t);
    }
    return g2_to_py(&acc);
}

static PyObject *py_g2_is_valid(PyObject *m, PyObject *args) {
    (void)m;
    PyObject *a[4];
    g2a q;
    if (parse_args(args, 4, "g2_is_valid", a) < 0) return NULL;
    for (int i = 0; i < 4; i++)
        if (a[i] == Py_None) Py_RETURN_FALSE;
    if (parse_g2(a, &q) != 1) {
        PyErr_Clear();
        Py_RETURN_FALSE;
    }
    int ok;
    Py_BEGIN_ALLOW_THREADS
    ok = g2_in_subgroup(&q);
    Py_END_ALLOW_THREADS
    return PyBool_FromLong(ok);
}

/* one pairing term: 1 when both points are finite, 0 when either is infinity, -1 on error */
static int parse_term(PyObject *item, g1a *p, g2a *q) {
    if (item == Py_None) return 0;
    if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 6) {
        PyErr_SetString(PyExc_ValueError, "a pairing term is (px, py, qx0, qx1, qy0, qy1) or None");
        return -1;
    }
    PyObject *c[6];
    for (int i = 0; i < 6; i++) c[i] = PyTuple_GET_ITEM(item, i);
    int rp = parse_point(c[0], c[1], p);
    if (rp < 0) return -1;
    int rq = parse_g2(c + 2, q);
    if (rq < 0) return -1;
    return rp && rq;
}

static PyObject *py_pairing(PyObject *m, PyObject *args) {
    (void)m;
    g1a p;
    g2a q;
    fp12 r;
    unsigned char buf[384];
    if (PyTuple_GET_SIZE(args) != 6) {
        PyErr_SetString(PyExc_TypeError, "pairing takes 6 arguments (px, py, qx0, qx1, qy0, qy1)");
        return NULL;
    }
    int ok = parse_term(args, &p, &q);
    if (ok < 0) return NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = pairing_product(&r, &p, &q, (size_t)ok);
    Py_END_ALLOW_THREADS
    if (rc < 0) return PyErr_NoMemory();
    fp12_to_bytes(buf, &r);
    return PyBytes_FromStringAndSize((const char *)buf, 384);
}

static PyObject *py_miller_loop(PyObject *m, PyObject *args) {
    (void)m;
    g1a p;
    g2a q;
    fp12 r;
    unsigned char buf[384];
    int ok = parse_term(args, &p, &q);
    if (ok < 0) return NULL;
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "_miller_loop needs finite points");
        return NULL;
    }
    miller_only(&r, &p, &q);
    fp12_to_bytes(buf, &r);
    return PyBytes_FromStringAndSize((const char *)buf, 384);
}

static PyObject *py_pairing_product_is_one(PyObject *m, PyObject *arg) {
    (void)m;
    PyObject *seq = PySequence_Tuple(arg); /* a copy, see g1_msm */
    if (!seq) return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(seq);
    g1a *ps = PyMem_Malloc((n ? (size_t)n : 1) * sizeof(g1a));
    g2a *qs = PyMem_Malloc((n ? (size_t)n : 1) * sizeof(g2a));
    PyObject *res = NULL;
    if (!ps || !qs) {
        PyErr_NoMemory();
        goto done;
    }
    size_t k = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        int ok = parse_term(PyTuple_GET_ITEM(seq, i), &ps[k], &qs[k]);
        if (ok < 0) goto done;
        k += (size_t)ok;
    }
    fp12 r;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = pairing_product(&r, ps, qs, k);
    Py_END_ALLOW_THREADS
    if (rc < 0) {
        PyErr_NoMemory();
        goto done;
    }
    res = PyBool_FromLong(fp12_is_one(&r));
done:
    PyMem_Free(ps);
    PyMem_Free(qs);
    Py_DECREF(seq);
    return res;
}

#define G2_METHODS                                                                               \
    {"_miller_loop", py_miller_loop, METH_VARARGS,                                               \
     "_miller_loop(px, py, *q) -> bytes: f before the final exponentiation (tests only)."},      \
    {"g2_mul", py_g2_mul, METH_VARARGS,                                                          \
     "g2_mul(k, qx0, qx1, qy0, qy1) -> (x0, x1, y0, y1) | None: k*Q on the twist (k reduced "    \
     "mod n, so Q must be in G2: check long-lived keys once with g2_is_valid)."},                \
    {"g2_add", py_g2_add, METH_VARARGS,                                                          \
     "g2_add(*q1, *q2) -> (x0, x1, y0, y1) | None; four Nones stand for infinity."},             \
    {"g2_is_valid", py_g2_is_valid, METH_VARARGS,                                                \
     "g2_is_valid(qx0, qx1, qy0, qy1) -> bool: on y^2 = x^3 + 3(1+i) and n*Q = O."},             \
    {"pairing", py_pairing, METH_VARARGS,                                                        \
     "pairing(px, py, qx0, qx1, qy0, qy1) -> bytes: the optimal ate pairing e(P, Q) in F_p12, "  \
     "384 bytes: 12 big-endian 32-byte coefficients c0.c0.c0, c0.c0.c1, ..., c1.c2.c1 "          \
     "(F_p12 = c0 + c1 w, F_p6 = c0 + c1 v + c2 v^2, F_p2 = c0 + c1 i). P = (None, None) or "    \
     "Q = four Nones (infinity) gives 1. Q is checked to be on the twist, not its subgroup."},   \
    {"pairing_product_is_one", py_pairing_product_is_one, METH_O,                                \
     "pairing_product_is_one(terms) -> bool: prod e(P_k, Q_k) == 1, one shared final "           \
     "exponentiation. A term is (px, py, qx0, qx1, qy0, qy1); a term that is None, or whose P "  \
     "is (None, None) or whose Q is four Nones (infinity), contributes 1."},

static int g2_module_init(PyObject *mod) {
    g2_init();
    g2p gen;
    g2_from_affine(&gen, &G2_GEN);
    PyObject *t = g2_to_py(&gen);
    if (!t) return -1;
    if (PyModule_AddObject(mod, "G2_GENERATOR", t) < 0) {
        Py_DECREF(t);
        return -1;
    }
    return 0;
}

#endif
