#include "pyconv.h"
#include "g1.h"

static PyObject *n_obj(void) {
    static PyObject *n = NULL; /* the constant n, created once */
    if (!n) n = limbs_to_py(SC_N);
    return n;
}

int py_to_limbs(PyObject *obj, uint64_t out[4], const char *what) {
    unsigned char buf[32];
    PyObject *v = PyNumber_Index(obj);
    if (!v) {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "%s must be an integer", what);
        return -1;
    }
#if PY_VERSION_HEX >= 0x030D0000
    Py_ssize_t r = PyLong_AsNativeBytes(v, buf, 32,
                                        Py_ASNATIVEBYTES_LITTLE_ENDIAN | Py_ASNATIVEBYTES_UNSIGNED_BUFFER |
                                            Py_ASNATIVEBYTES_REJECT_NEGATIVE);
    Py_DECREF(v);
    if (r < 0 || r > 32) {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "%s out of range", what);
        return -1;
    }
#else
    int r = _PyLong_AsByteArray((PyLongObject *)v, buf, 32, 1, 0);
    Py_DECREF(v);
    if (r < 0) {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "%s out of range", what);
        return -1;
    }
#endif
    for (int i = 0; i < 4; i++) {
        uint64_t w = 0;
        for (int j = 7; j >= 0; j--) w = (w << 8) | buf[8 * i + j];
        out[i] = w;
    }
    return 0;
}

int py_to_scalar(PyObject *obj, uint64_t out[4]) {
    if (PyBool_Check(obj)) {
        PyErr_SetString(PyExc_ValueError, "scalar must be an integer, not a bool");
        return -1;
    }
    PyObject *v = PyNumber_Index(obj);
    if (!v) {
        PyErr_Clear();
        PyErr_SetString(PyExc_ValueError, "scalar must be an integer");
        return -1;
    }
    PyObject *n = n_obj();
    if (!n) {
        Py_DECREF(v);
        return -1;
    }
    PyObject *m = PyNumber_Remainder(v, n);
    Py_DECREF(v);
    if (!m) return -1;
    int r = py_to_limbs(m, out, "scalar");
    Py_DECREF(m);
    return r;
}

int py_to_fp(PyObject *obj, fp *out, const char *what) {
    fp plain;
    if (py_to_limbs(obj, plain.v, what) < 0) return -1;
    if (!fp_lt_p(&plain)) {
        PyErr_Format(PyExc_ValueError, "%s out of range [0, p)", what);
        return -1;
    }
    fp_to_mont(out, &plain);
    return 0;
}

PyObject *limbs_to_py(const uint64_t v[4]) {
    unsigned char buf[32];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 8; j++) buf[8 * i + j] = (unsigned char)(v[i] >> (8 * j));
#if PY_VERSION_HEX >= 0x030D0000
    return PyLong_FromUnsignedNativeBytes(buf, 32, Py_ASNATIVEBYTES_LITTLE_ENDIAN);
#else
    return _PyLong_FromByteArray(buf, 32, 1, 0);
#endif
}

PyObject *fp_to_py(const fp *a) {
    fp plain;
    fp_from_mont(&plain, a);
    return limbs_to_py(plain.v);
}
