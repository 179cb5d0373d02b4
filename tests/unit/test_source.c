/* test_source.c - placeholder, being written. */
#include <criterion/criterion.h>
Test(source, placeholder) { cr_assert(1); }
