/* test_vocab.c - placeholder, being written. */
#include <criterion/criterion.h>
Test(vocab, placeholder) { cr_assert(1); }
