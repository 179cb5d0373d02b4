/* test_normalize.c - placeholder, being written. */
#include <criterion/criterion.h>
Test(normalize, placeholder) { cr_assert(1); }
