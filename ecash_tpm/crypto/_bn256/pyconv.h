/* Python int <-> 4x64 limbs conversions shared by the module's files. */
#ifndef ECASH_BN256_PYCONV_H
#define ECASH_BN256_PYCONV_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include "fp.h"

/* non-negative int below 2^256 -> little-endian limbs; ValueError otherwise (-1) */
int py_to_limbs(PyObject *obj, uint64_t out[4], const char *what);
/* scalar: any int (or __index__ object), reduced mod n */
int py_to_scalar(PyObject *obj, uint64_t out[4]);
/* field element in [0, p) -> Montgomery form */
int py_to_fp(PyObject *obj, fp *out, const char *what);
PyObject *limbs_to_py(const uint64_t v[4]);
PyObject *fp_to_py(const fp *a);

#endif
