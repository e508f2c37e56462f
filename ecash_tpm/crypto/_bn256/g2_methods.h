/* G2 and pairing entries of the method table (stage 2; empty until then). */
#ifndef ECASH_BN256_G2_METHODS_H
#define ECASH_BN256_G2_METHODS_H
#define G2_METHODS
static int g2_module_init(PyObject *mod) { (void)mod; return 0; }
#endif
