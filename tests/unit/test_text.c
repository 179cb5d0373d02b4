/* test_text.c - placeholder, being written. */
#include <criterion/criterion.h>
Test(text, placeholder) { cr_assert(1); }
