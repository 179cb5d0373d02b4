/* test_chain.c - placeholder, being written. */
#include <criterion/criterion.h>
Test(chain, placeholder) { cr_assert(1); }
