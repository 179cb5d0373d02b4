/* test_error.c - placeholder, being written. */
#include <criterion/criterion.h>
Test(error, placeholder) { cr_assert(1); }
