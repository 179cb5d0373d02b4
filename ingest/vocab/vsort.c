/*
 * vsort.c - sorting table entries for count files, spilled runs and vocabularies.
 *
 * qsort over entry pointers spent most of its time in cache misses: every comparison read two
 * slots and two keys scattered over the table and its arena (a third of `vocab count` on 2M
 * distinct tokens). Here each item carries its sort key inline - an optional major key (the
 * count, for vocabulary order) and the first 16 token bytes, big-endian and zero-padded - so a
 * comparison is two or three integer compares on contiguous memory; only tokens that share 16
 * bytes compare their full bytes. Introsort: median-of-three quicksort, heapsort past 2 log2 n
 * levels (tokens come from the logs: no quadratic case), insertion sort for short ranges.
 */
#include "vocab/count.h"

static uint64_t load_be(const char *p, size_t n)
{
	uint64_t v = 0;
	for (size_t i = 0; i < 8; i++)
		v = v << 8 | (i < n ? (unsigned char)p[i] : 0);
	return v;
}

void bn_vsort_item_set(bn_vsort_item *it, uint64_t major, const bn_ventry *e)
{
	size_t n = bn_ventry_len(e);
	it->k[0] = major;
	it->k[1] = load_be(e->key, n);
	it->k[2] = n > 8 ? load_be(e->key + 8, n - 8) : 0;
	it->key = e->key;
	it->count = e->count;
}

static inline int less(const bn_vsort_item *a, const bn_vsort_item *b)
{
	if (a->k[0] != b->k[0])
		return a->k[0] < b->k[0];
	if (a->k[1] != b->k[1])
		return a->k[1] < b->k[1];
	if (a->k[2] != b->k[2])
		return a->k[2] < b->k[2];
	return bn_vtoken_cmp(a->key, bn_vkey_len(a->key), b->key, bn_vkey_len(b->key)) < 0;
}

static inline void swap(bn_vsort_item *a, bn_vsort_item *b)
{
	bn_vsort_item t = *a;
	*a = *b;
	*b = t;
}

static void insertion(bn_vsort_item *a, size_t n)
{
	for (size_t i = 1; i < n; i++) {
		bn_vsort_item x = a[i];
		size_t j = i;
		for (; j > 0 && less(&x, &a[j - 1]); j--)
			a[j] = a[j - 1];
		a[j] = x;
	}
}

static void sift(bn_vsort_item *a, size_t i, size_t n)
{
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= n)
			return;
		if (c + 1 < n && less(&a[c], &a[c + 1]))
			c++;
		if (!less(&a[i], &a[c]))
			return;
		swap(&a[i], &a[c]);
		i = c;
	}
}

static void heapsort(bn_vsort_item *a, size_t n)
{
	for (size_t i = n / 2; i-- > 0;)
		sift(a, i, n);
	for (size_t end = n; end-- > 1;) {
		swap(&a[0], &a[end]);
		sift(a, 0, end);
	}
}

static void introsort(bn_vsort_item *a, size_t n, unsigned depth)
{
	while (n > 16) {
		if (depth-- == 0) {
			heapsort(a, n);
			return;
		}
		/* median of three to a[0], then Hoare partition around it */
		size_t m = n / 2;
		if (less(&a[m], &a[0]))
			swap(&a[m], &a[0]);
		if (less(&a[n - 1], &a[0]))
			swap(&a[n - 1], &a[0]);
		if (less(&a[n - 1], &a[m]))
			swap(&a[n - 1], &a[m]);
		swap(&a[0], &a[m]);
		size_t i = 0, j = n;
		for (;;) {
			do
				i++;
			while (i < n && less(&a[i], &a[0]));
			do
				j--;
			while (less(&a[0], &a[j]));
			if (i >= j)
				break;
			swap(&a[i], &a[j]);
		}
		swap(&a[0], &a[j]);
		/* recurse into the smaller side, loop on the larger: O(log n) stack */
		if (j < n - j - 1) {
			introsort(a, j, depth);
			a += j + 1;
			n -= j + 1;
		} else {
			introsort(a + j + 1, n - j - 1, depth);
			n = j;
		}
	}
	insertion(a, n);
}

void bn_vsort(bn_vsort_item *a, size_t n)
{
	unsigned depth = 0;
	for (size_t m = n; m > 1; m >>= 1)
		depth += 2;
	introsort(a, n, depth);
}
