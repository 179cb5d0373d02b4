/* test_watch.c - placeholder, being written. */
#include <criterion/criterion.h>
Test(watch, placeholder) { cr_assert(1); }
