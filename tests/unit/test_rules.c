/* test_rules.c - placeholder, being written. */
#include <criterion/criterion.h>
Test(rules, placeholder) { cr_assert(1); }
