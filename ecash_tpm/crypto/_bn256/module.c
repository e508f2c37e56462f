/* ecash_tpm.crypto._bn256: native BN_P256 arithmetic (docs/native.md).
 *
 * Python ints in and out; a G1 point is two ints (x, y) in [0, p) on y^2 = x^3 + 3, the point
 * at infinity is None (as a result) or (None, None) (as an argument). Every input is checked
 * here (ValueError), so no Python value can make the C code misbehave. */
#include "pyconv.h"
#include "g1.h"

/* --- argument helpers -------------------------------------------------------------------- */

/* returns 1 for a finite point, 0 for (None, None), -1 on error */
static int parse_point(PyObject *x, PyObject *y, g1a *out) {
    if (x == Py_None && y == Py_None) return 0;
    if (py_to_fp(x, &out->x, "x") < 0 || py_to_fp(y, &out->y, "y") < 0) return -1;
    if (!g1_on_curve(out)) {
        PyErr_SetString(PyExc_ValueError, "point is not on BN_P256");
        return -1;
    }
    return 1;
}

/* secret: the projective result came from a secret scalar (constant-time inversion) */
static PyObject *point_to_py_ex(const g1p *p, int secret) {
    g1a a;
    if (!g1_to_affine(&a, p, secret)) Py_RETURN_NONE;
    PyObject *x = fp_to_py(&a.x), *y = fp_to_py(&a.y);
    if (!x || !y) {
        Py_XDECREF(x);
        Py_XDECREF(y);
        return NULL;
    }
    PyObject *t = PyTuple_Pack(2, x, y);
    Py_DECREF(x);
    Py_DECREF(y);
    return t;
}

static PyObject *point_to_py(const g1p *p) { return point_to_py_ex(p, 0); }

/* --- FixedBase ---------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    g1a pt;
    g1a *rows; /* G1_FB_SIZE affine points, built on first use */
    PyObject *x, *y;
} FixedBaseObject;

static PyTypeObject FixedBaseType;

static int fb_init(FixedBaseObject *self, PyObject *args, PyObject *kw) {
    PyObject *x, *y;
    static char *kwlist[] = {"x", "y", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO:FixedBase", kwlist, &x, &y)) return -1;
    if (self->x) { /* the table may be in use by a computation running without the GIL */
        PyErr_SetString(PyExc_TypeError, "FixedBase is already initialised");
        return -1;
    }
    int r = parse_point(x, y, &self->pt);
    if (r < 0) return -1;
    if (r == 0) {
        PyErr_SetString(PyExc_ValueError, "a fixed base must not be the point at infinity");
        return -1;
    }
    Py_XSETREF(self->x, PyNumber_Index(x));
    Py_XSETREF(self->y, PyNumber_Index(y));
    return (self->x && self->y) ? 0 : -1;
}

static void fb_dealloc(FixedBaseObject *self) {
    PyMem_Free(self->rows);
    Py_XDECREF(self->x);
    Py_XDECREF(self->y);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* the table, built on first use (with the GIL held, so only once) */
static const g1a *fb_rows(FixedBaseObject *self) {
    if (!self->rows) {
        g1a *rows = PyMem_Malloc(G1_FB_SIZE * sizeof(g1a));
        if (!rows || g1_fixed_build(rows, &self->pt) < 0) {
            PyMem_Free(rows);
            PyErr_NoMemory();
            return NULL;
        }
        self->rows = rows;
    }
    return self->rows;
}

static PyObject *fb_mul(FixedBaseObject *self, PyObject *k) {
    uint64_t sc[4];
    if (!self->x) {
        PyErr_SetString(PyExc_ValueError, "FixedBase not initialised");
        return NULL;
    }
    if (py_to_scalar(k, sc) < 0) return NULL;
    const g1a *rows = fb_rows(self);
    if (!rows) return NULL;
    g1p acc;
    g1_set_inf(&acc);
    Py_BEGIN_ALLOW_THREADS
    g1_fixed_add_mul(&acc, rows, sc);
    Py_END_ALLOW_THREADS
    return point_to_py(&acc);
}

static PyObject *fb_get_x(FixedBaseObject *self, void *c) {
    (void)c;
    if (!self->x) Py_RETURN_NONE;
    return Py_NewRef(self->x);
}

static PyObject *fb_get_y(FixedBaseObject *self, void *c) {
    (void)c;
    if (!self->y) Py_RETURN_NONE;
    return Py_NewRef(self->y);
}

static PyMethodDef fb_methods[] = {
    {"mul", (PyCFunction)fb_mul, METH_O,
     "mul(k) -> (x, y) | None: k * base (k any int, reduced mod n; public, variable time)."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef fb_getset[] = {
    {"x", (getter)fb_get_x, NULL, "x of the base", NULL},
    {"y", (getter)fb_get_y, NULL, "y of the base", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject FixedBaseType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "ecash_tpm.crypto._bn256.FixedBase",
    .tp_basicsize = sizeof(FixedBaseObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "FixedBase(x, y): signed radix-256 table (33 x 128 affine multiples, built on "
              "first use) of a fixed G1 point: G, J0, an opener key.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)fb_init,
    .tp_dealloc = (destructor)fb_dealloc,
    .tp_methods = fb_methods,
    .tp_getset = fb_getset,
};

/* --- G1 functions ------------------------------------------------------------------------- */

static PyObject *py_g1_mul(PyObject *m, PyObject *args) {
    (void)m;
    PyObject *k, *x, *y;
    if (!PyArg_ParseTuple(args, "OOO:g1_mul", &k, &x, &y)) return NULL;
    g1_term t;
    t.fixed = NULL;
    if (py_to_scalar(k, t.k) < 0) return NULL;
    int r = parse_point(x, y, &t.pt);
    if (r < 0) return NULL;
    if (r == 0) Py_RETURN_NONE;
    g1p acc;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = g1_msm(&acc, &t, 1);
    Py_END_ALLOW_THREADS
    if (rc < 0) return PyErr_NoMemory();
    return point_to_py(&acc);
}

static PyObject *py_g1_mul_secret(PyObject *m, PyObject *args) {
    (void)m;
    PyObject *k, *x, *y;
    if (!PyArg_ParseTuple(args, "OOO:g1_mul_secret", &k, &x, &y)) return NULL;
    uint64_t sc[4];
    g1a pt;
    if (py_to_scalar(k, sc) < 0) return NULL;
    int r = parse_point(x, y, &pt);
    if (r < 0) return NULL;
    if (r == 0) Py_RETURN_NONE;
    g1p acc;
    Py_BEGIN_ALLOW_THREADS
    g1_mul_secret(&acc, sc, &pt);
    Py_END_ALLOW_THREADS
    memset(sc, 0, sizeof sc);
    return point_to_py_ex(&acc, 1);
}

static PyObject *py_g1_msm(PyObject *m, PyObject *arg) {
    (void)m;
    /* a tuple copy: __index__ of a scalar cannot change the terms under our feet */
    PyObject *seq = PySequence_Tuple(arg);
    if (!seq) return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(seq);
    g1_term *terms = PyMem_Malloc((n ? (size_t)n : 1) * sizeof(g1_term));
    if (!terms) {
        Py_DECREF(seq);
        return PyErr_NoMemory();
    }
    size_t used = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PyTuple_GET_ITEM(seq, i);
        if (!PyTuple_Check(item) || (PyTuple_GET_SIZE(item) != 3 && PyTuple_GET_SIZE(item) != 4)) {
            PyErr_SetString(PyExc_ValueError, "g1_msm terms are tuples (k, x, y[, fixed_base])");
            goto fail;
        }
        g1_term *t = &terms[used];
        t->fixed = NULL;
        if (py_to_scalar(PyTuple_GET_ITEM(item, 0), t->k) < 0) goto fail;
        int r = parse_point(PyTuple_GET_ITEM(item, 1), PyTuple_GET_ITEM(item, 2), &t->pt);
        if (r < 0) goto fail;
        if (PyTuple_GET_SIZE(item) == 4 && PyTuple_GET_ITEM(item, 3) != Py_None) {
            PyObject *fb = PyTuple_GET_ITEM(item, 3);
            if (!PyObject_TypeCheck(fb, &FixedBaseType) || !((FixedBaseObject *)fb)->x) {
                PyErr_SetString(PyExc_ValueError, "the fourth item of a term must be a FixedBase");
                goto fail;
            }
            FixedBaseObject *f = (FixedBaseObject *)fb;
            if (r == 0 || memcmp(&f->pt, &t->pt, sizeof(g1a)) != 0) {
                PyErr_SetString(PyExc_ValueError, "a term's point differs from its FixedBase");
                goto fail;
            }
            t->fixed = fb_rows(f);
            if (!t->fixed) goto fail;
        }
        if (r == 1) used++;
    }
    g1p acc;
    int rc;
    /* the terms tuple (seq) keeps every FixedBase, and so its table, alive meanwhile */
    Py_BEGIN_ALLOW_THREADS
    rc = g1_msm(&acc, terms, used);
    Py_END_ALLOW_THREADS
    if (rc < 0) {
        PyErr_NoMemory();
        goto fail;
    }
    PyMem_Free(terms);
    Py_DECREF(seq);
    return point_to_py(&acc);
fail:
    PyMem_Free(terms);
    Py_DECREF(seq);
    return NULL;
}

static PyObject *py_g1_add(PyObject *m, PyObject *args) {
    (void)m;
    PyObject *x1, *y1, *x2, *y2;
    if (!PyArg_ParseTuple(args, "OOOO:g1_add", &x1, &y1, &x2, &y2)) return NULL;
    g1a a, b;
    int ra = parse_point(x1, y1, &a);
    if (ra < 0) return NULL;
    int rb = parse_point(x2, y2, &b);
    if (rb < 0) return NULL;
    g1p acc;
    g1_set_inf(&acc);
    if (ra) g1_madd(&acc, &acc, &a);
    if (rb) g1_madd(&acc, &acc, &b);
    return point_to_py(&acc);
}

static PyObject *py_g1_is_on_curve(PyObject *m, PyObject *args) {
    (void)m;
    PyObject *x, *y;
    if (!PyArg_ParseTuple(args, "OO:g1_is_on_curve", &x, &y)) return NULL;
    g1a a;
    if (x == Py_None || y == Py_None || parse_point(x, y, &a) != 1) {
        PyErr_Clear();
        Py_RETURN_FALSE;
    }
    Py_RETURN_TRUE;
}

static PyObject *py_fp_sqrt(PyObject *m, PyObject *arg) {
    (void)m;
    fp a, r;
    if (py_to_fp(arg, &a, "a") < 0) return NULL;
    if (!fp_sqrt(&r, &a)) Py_RETURN_NONE;
    return fp_to_py(&r);
}

#include "g2_methods.h"

static PyMethodDef methods[] = {
    {"g1_mul", py_g1_mul, METH_VARARGS,
     "g1_mul(k, x, y) -> (x, y) | None: k * P for a public k (GLV, width-5 NAF)."},
    {"g1_mul_secret", py_g1_mul_secret, METH_VARARGS,
     "g1_mul_secret(k, x, y) -> (x, y) | None: k * P with no branch or memory index that "
     "depends on k (GLV halves in regular signed digits, masked table reads, complete "
     "formulas). The conversion of the Python int k is not constant time."},
    {"g1_msm", py_g1_msm, METH_O,
     "g1_msm(terms) -> (x, y) | None: sum k_i * P_i over tuples (k, x, y[, FixedBase]); "
     "(None, None) is infinity. Public scalars (Straus, GLV, width-5 NAF)."},
    {"g1_add", py_g1_add, METH_VARARGS, "g1_add(x1, y1, x2, y2) -> (x, y) | None."},
    {"g1_is_on_curve", py_g1_is_on_curve, METH_VARARGS,
     "g1_is_on_curve(x, y) -> bool: coordinates in [0, p) and y^2 = x^3 + 3."},
    {"fp_sqrt", py_fp_sqrt, METH_O, "fp_sqrt(a) -> int | None: a square root mod p."},
    G2_METHODS
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "_bn256",
    "Native BN_P256 (TPM_ECC_BN_P256, FP256BN) arithmetic: 4x64-bit Montgomery field, G1 "
    "(GLV, Straus, fixed-base tables, constant-time secret multiplication). docs/native.md.",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__bn256(void) {
    if (PyType_Ready(&FixedBaseType) < 0) return NULL;
    PyObject *mod = PyModule_Create(&moduledef);
    if (!mod) return NULL;
    if (PyModule_AddObjectRef(mod, "FixedBase", (PyObject *)&FixedBaseType) < 0 ||
        g2_module_init(mod) < 0) {
        Py_DECREF(mod);
        return NULL;
    }
    return mod;
}
