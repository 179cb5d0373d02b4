/* test_timestamp.c - placeholder, being written. */
#include <criterion/criterion.h>
Test(timestamp, placeholder) { cr_assert(1); }
