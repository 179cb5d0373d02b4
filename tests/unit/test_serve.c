/* test_serve.c - placeholder, being written. */
#include <criterion/criterion.h>
Test(serve, placeholder) { cr_assert(1); }
