/*
 * mk_conform_source.c - the conformance cases for a source under test
 * (SPEC.md section 10.2): the runner plays the reference destination.
 */
#include "mk_conform.h"

const mkc_case mkc_source_cases[] = {{NULL, NULL, 0, NULL, NULL}};
const size_t mkc_source_ncases = 0;
