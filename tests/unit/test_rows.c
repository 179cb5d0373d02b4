/* test_rows.c - array paths ([N], [*]), fallbacks, presence, root and rows: one JSON line into one or more records. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "normalize/record.h"

#include "count_allocs.h"
#include "json_lines.h"

static bn_rules *rules;
static bn_normalizer *norm;

static void load(const char *yaml)
{
	bn_error err;
	bn_error_clear(&err);
	bn_normalizer_free(norm);
	bn_rules_free(rules);
	norm = NULL;
	rules = NULL;
	cr_assert_eq(bn_rules_load_buffer(&rules, yaml, strlen(yaml), "t.yaml", &err), BN_OK, "%s:%u:%u: %s",
		     err.source, err.line, err.column, err.message);
	cr_assert_eq(bn_normalizer_new(&norm, rules, &err), BN_OK, "%s", err.message);
}

static void teardown(void)
{
	bn_normalizer_free(norm);
	bn_rules_free(rules);
	norm = NULL;
	rules = NULL;
}

TestSuite(rows, .fini = teardown);

/* Field f of n->rec as text: "s", 12, null, [...]. */
static const char *render(const bn_normalizer *n, size_t f)
{
	static char out[1 << 14];
	const bn_field *fd = &n->rules->fields[f];
	const bn_fieldval *fv = &n->rec.fields[f];
	size_t o = 0;
	const bn_val *vals = fd->shape == BN_SHAPE_SCALAR ? &fv->v : n->rec.items + fv->first;
	size_t count = fd->shape == BN_SHAPE_SCALAR ? 1 : fv->count;
	if (fd->shape != BN_SHAPE_SCALAR)
		out[o++] = '[';
	for (size_t i = 0; i < count; i++) {
		const bn_val *v = &vals[i];
		if (i)
			out[o++] = ',';
		if (v->is_null)
			o += (size_t)snprintf(out + o, sizeof(out) - o, "null");
		else if (fd->type == BN_T_STRING)
			o += (size_t)snprintf(out + o, sizeof(out) - o, "\"%.*s\"", (int)v->n, v->s);
		else if (fd->type == BN_T_DOUBLE)
			o += (size_t)snprintf(out + o, sizeof(out) - o, "%g", v->d);
		else
			o += (size_t)snprintf(out + o, sizeof(out) - o, "%lld", (long long)v->i);
	}
	if (fd->shape != BN_SHAPE_SCALAR)
		out[o++] = ']';
	out[o] = '\0';
	return out;
}

/* Every field of every row of line, as "name=value ..." per row, rows separated by " | ". */
static const char *rows_of(const char *line, int *rc_out, bn_error *err)
{
	static char out[1 << 15];
	size_t len, nrows = 0, o = 0;
	const char *l = jq(line, &len);
	bn_error_clear(err);
	int rc = bn_normalize_parse(norm, l, len, &nrows, err);
	out[0] = '\0';
	for (size_t r = 0; r < nrows && rc == BN_OK; r++) {
		rc = bn_normalize_row(norm, r, err);
		if (rc != BN_OK)
			break;
		if (r)
			o += (size_t)snprintf(out + o, sizeof(out) - o, " | ");
		for (size_t f = 0; f < rules->nfields; f++)
			o += (size_t)snprintf(out + o, sizeof(out) - o, "%s%s=%s", f ? " " : "", rules->fields[f].name,
					      render(norm, f));
	}
	*rc_out = rc;
	return out;
}

static void expect_rows(const char *line, const char *want)
{
	bn_error err;
	int rc;
	const char *got = rows_of(line, &rc, &err);
	cr_expect_eq(rc, BN_OK, "%s: rc %d: %s: %s", line, rc, err.field, err.message);
	cr_expect_str_eq(got, want, "%s:\n got  %s\n want %s", line, got, want);
}

static void expect_reject(const char *line, const char *reason, const char *field, const char *message)
{
	bn_error err;
	int rc;
	rows_of(line, &rc, &err);
	cr_expect_eq(rc, BN_EREJECT, "%s: not rejected", line);
	cr_expect_str_eq(bn_reject_reason_name(err.reason), reason, "%s", line);
	cr_expect_str_eq(err.field, field, "%s", line);
	cr_expect_str_eq(err.message, message, "%s", line);
}

#define HEAD "version: 1\nschema: {name: R}\n"

Test(rows, index_paths)
{
	load(HEAD "fields:\n"
	     "  - {name: first, source: 'a[0]', type: int}\n"
	     "  - {name: third_w, source: 'a[2].w', type: int}\n"
	     "  - {name: deep, source: 'm[1][0]', type: string}\n");
	expect_rows("{'a':[1,2,{'w':3}],'m':[[0],['x','y']]}", "first=1 third_w=3 deep=\"x\"");
	expect_rows("{'a':[],'m':[]}", "first=null third_w=null deep=null");
	/* an index into something that is not an array finds nothing */
	expect_rows("{'a':{'0':5},'m':'zz'}", "first=null third_w=null deep=null");
}

Test(rows, wildcard_collects_every_match_in_document_order)
{
	load(HEAD "fields:\n"
	     "  - {name: seg, source: 'user.data[*].segment[*].id', type: array<string>}\n"
	     "  - {name: all, source: 'n[*]', type: array<int>}\n");
	expect_rows("{'user':{'data':[{'segment':[{'id':'a'},{'id':'b'}]},{'x':1},{'segment':[{'id':'c'},{'nope':2},"
		    "{'id':'a'}]}]},'n':[3,1,2]}",
		    "seg=[\"a\",\"b\",\"c\",\"a\"] all=[3,1,2]");
	expect_rows("{'user':{'data':'no'}}", "seg=[] all=[]");
	/* elements that are not scalars are dropped, as in plain arrays */
	expect_rows("{'n':[1,[2],{'a':3},null,4]}", "seg=[] all=[1,4]");
}

Test(rows, wildcard_unique_and_max_items_apply_to_the_collection)
{
	load(HEAD "fields:\n"
	     "  - {name: seg, source: 'd[*].s[*]', type: array<string>, unique: true, max_items: 3}\n");
	expect_rows("{'d':[{'s':['a','b','a']},{'s':['b','c','d','e']}]}", "seg=[\"a\",\"b\",\"c\"]");
}

Test(rows, duplicate_keys_forget_what_the_earlier_value_matched)
{
	load(HEAD "fields:\n"
	     "  - {name: seg, source: 'd[*].s[*]', type: array<string>}\n"
	     "  - {name: w, source: 'o.w', type: int}\n");
	/* the second 's' of the second element replaces its first; the first element's matches stay */
	expect_rows("{'d':[{'s':['a']},{'s':['x','y'],'s':['b']}],'o':{'w':1},'o':{'h':2}}", "seg=[\"a\",\"b\"] w=null");
}

Test(rows, fallbacks_take_the_first_present_not_null_and_not_empty)
{
	load(HEAD "fields:\n"
	     "  - {name: pub, source: [app.publisher.id, site.publisher.id], type: string}\n"
	     "  - {name: w, source: [banner.w, 'banner.format[0].w', video.w], type: int}\n");
	expect_rows("{'app':{'publisher':{'id':'p1'}},'site':{'publisher':{'id':'p2'}}}", "pub=\"p1\" w=null");
	expect_rows("{'app':{'publisher':{'id':null}},'site':{'publisher':{'id':'p2'}}}", "pub=\"p2\" w=null");
	expect_rows("{'banner':{'format':[{'w':320}]},'video':{'w':640}}", "pub=null w=320");
	expect_rows("{'banner':{'w':null,'format':[]},'video':{'w':640}}", "pub=null w=640");
	/* present but invalid wins, and is invalid: null */
	expect_rows("{'banner':{'w':'wide'},'video':{'w':640}}", "pub=null w=null");
	/* the empty string is no value: the next source is taken (whitespace is a value, empty after text) */
	expect_rows("{'app':{'publisher':{'id':''}},'site':{'publisher':{'id':'p2'}}}", "pub=\"p2\" w=null");
	expect_rows("{'app':{'publisher':{'id':''}}}", "pub=null w=null");
	expect_rows("{'banner':{'w':''},'video':{'w':640}}", "pub=null w=640");
	expect_rows("{'app':{'publisher':{'id':' '}},'site':{'publisher':{'id':'p2'}}}", "pub=\" \" w=null");
}

Test(rows, same_source_as_takes_the_first_position_where_every_member_has_a_value)
{
	/* The first field of the group may come after its members; a field outside the group is not held back. */
	load(HEAD "fields:\n"
	     "  - {name: h, source: [banner.h, 'banner.format[0].h', video.h], type: int, same_source_as: w}\n"
	     "  - {name: w, source: [banner.w, 'banner.format[0].w', video.w], type: int}\n"
	     "  - {name: pos, source: [banner.pos, 'banner.format[0].pos', video.pos], type: string,"
	     " same_source_as: w}\n"
	     "  - {name: w_alone, source: [banner.w, 'banner.format[0].w', video.w], type: int}\n");
	expect_rows("{'banner':{'w':300,'h':250,'pos':'top','format':[{'w':320,'h':50,'pos':'x'}]}}",
		    "h=250 w=300 pos=\"top\" w_alone=300");
	/* the banner has w but no h (and no pos): all three from format[0], never 300 with 50 */
	expect_rows("{'banner':{'w':300,'format':[{'w':320,'h':50,'pos':'bottom'}]}}",
		    "h=50 w=320 pos=\"bottom\" w_alone=300");
	/* null and "" are no value, as in a fallback list; a format without pos holds the group back too */
	expect_rows("{'banner':{'w':300,'h':null,'pos':'top','format':[{'w':320,'h':50}]},'video':{'w':640,'h':480,"
		    "'pos':''}}",
		    "h=null w=null pos=null w_alone=300");
	expect_rows("{'banner':{'w':300,'h':250,'pos':'','format':[]},'video':{'w':640,'h':480,'pos':7}}",
		    "h=480 w=640 pos=\"7\" w_alone=300");
	/* no position where all have a value: every member is missing */
	expect_rows("{'banner':{'w':300},'video':{'h':480,'pos':'top'}}", "h=null w=null pos=null w_alone=300");
	expect_rows("{}", "h=null w=null pos=null w_alone=null");
	/* a value that does not convert is a value: its position wins, and it is invalid (null) */
	expect_rows("{'banner':{'w':'wide','h':250,'pos':'top'},'video':{'w':640,'h':480,'pos':'x'}}",
		    "h=250 w=null pos=\"top\" w_alone=null");
}

Test(rows, same_source_as_keeps_two_groups_apart)
{
	load(HEAD "fields:\n"
	     "  - {name: d, source: [r, s], type: int, same_source_as: c}\n"
	     "  - {name: a, source: [x.a, y.a], type: int}\n"
	     "  - {name: b, source: [x.b, y.b], type: int, same_source_as: a}\n"
	     "  - {name: c, source: [p, q], type: int}\n");
	expect_rows("{'x':{'a':1},'y':{'a':2,'b':3},'p':5,'r':null,'q':6,'s':7}", "d=7 a=2 b=3 c=6");
	expect_rows("{'x':{'a':1,'b':4},'y':{'a':2},'p':5,'r':8,'q':6}", "d=8 a=1 b=4 c=5");
}

Test(rows, same_source_as_with_one_source_gives_all_or_none)
{
	load(HEAD "rows: imp\nfields:\n"
	     "  - {name: w, source: 'imp[].banner.w', type: int, required: true}\n"
	     "  - {name: h, source: 'imp[].banner.h', type: int, default: -1, same_source_as: w}\n"
	     "  - {name: deals, source: 'imp[].pmp.deals[*].id', type: array<string>, same_source_as: w}\n");
	expect_rows("{'imp':[{'banner':{'w':1,'h':2},'pmp':{'deals':[{'id':'a'}]}}]}", "w=1 h=2 deals=[\"a\"]");
	/* a required member without its group's values is missing: the message says which lacked one */
	expect_reject("{'imp':[{'banner':{'w':1,'h':2}}]}", "missing_required", "w",
		      "imp[0]: missing required field: no source position has every field of its same_source_as "
		      "group (w, h, deals); the best, 'imp[].banner.w', lacks deals");
	expect_reject("{'imp':[{'banner':{'w':1},'pmp':{'deals':[{'id':'a'}]}}]}", "missing_required", "w",
		      "imp[0]: missing required field: no source position has every field of its same_source_as "
		      "group (w, h, deals); the best, 'imp[].banner.w', lacks h");
	expect_reject("{'imp':[{'banner':{'h':2}}]}", "missing_required", "w",
		      "imp[0]: missing required field: no source position has every field of its same_source_as "
		      "group (w, h, deals); the best, 'imp[].banner.w', lacks w, deals");
	/* nothing of the group anywhere: simply missing */
	expect_reject("{'imp':[{'banner':{'w':null,'h':''}}]}", "missing_required", "w", "imp[0]: missing required field");
}

Test(rows, a_required_field_of_an_incomplete_group_names_the_best_position)
{
	/* Regression: a required field of a same_source_as group that no position completed was rejected
	 * with a plain "missing required field", though it had a value: the group was what was missing. */
	load(HEAD "fields:\n"
	     "  - {name: w, source: [banner.w, 'banner.format[0].w', video.w], type: int, required: true}\n"
	     "  - {name: h, source: [banner.h, 'banner.format[0].h', video.h], type: int, same_source_as: w}\n"
	     "  - {name: pos, source: [banner.pos, 'banner.format[0].pos', video.pos], type: string,"
	     " same_source_as: w}\n");
	/* format[0] has two of three (w and h), the banner and the video one each: format[0] is the best */
	expect_reject("{'banner':{'w':300,'format':[{'w':320,'h':50}]},'video':{'pos':'top'}}", "missing_required",
		      "w", "missing required field: no source position has every field of its same_source_as group "
		      "(w, h, pos); the best, 'banner.format[0].w', lacks pos");
	/* ties go to the first position; the best may lack the rejected field itself */
	expect_reject("{'banner':{'h':250},'video':{'w':640}}", "missing_required", "w",
		      "missing required field: no source position has every field of its same_source_as group "
		      "(w, h, pos); the best, 'banner.w', lacks w, pos");
	expect_reject("{}", "missing_required", "w", "missing required field");
	expect_rows("{'banner':{'w':300},'video':{'w':640,'h':480,'pos':'x'}}", "w=640 h=480 pos=\"x\"");
}

Test(rows, presence_lists_the_paths_holding_an_object)
{
	load(HEAD "fields:\n"
	     "  - {name: f, presence: [banner, video, native, audio], type: array<string>}\n");
	expect_rows("{'video':{},'banner':{'w':1},'audio':null,'native':'x'}", "f=[\"banner\",\"video\"]");
	expect_rows("{}", "f=[]");
}

Test(rows, one_record_per_row_with_the_request_around_it)
{
	load(HEAD "rows: imp\nfields:\n"
	     "  - {name: id, source: id, type: string, required: true}\n"
	     "  - {name: i, row_index: true, type: int, required: true}\n"
	     "  - {name: imp_id, source: 'imp[].id', type: string}\n"
	     "  - {name: floor, source: 'imp[].bidfloor', type: double}\n"
	     "  - {name: deals, source: 'imp[].pmp.deals[*].id', type: array<string>}\n"
	     "  - {name: first_imp, source: 'imp[0].id', type: string}\n");
	expect_rows("{'id':'r','imp':[{'id':'1','bidfloor':0.5,'pmp':{'deals':[{'id':'d1'},{'id':'d2'}]}},{'id':'2'},"
		    "{'bidfloor':'1.25'}]}",
		    "id=\"r\" i=0 imp_id=\"1\" floor=0.5 deals=[\"d1\",\"d2\"] first_imp=\"1\" | "
		    "id=\"r\" i=1 imp_id=\"2\" floor=null deals=[] first_imp=\"1\" | "
		    "id=\"r\" i=2 imp_id=null floor=1.25 deals=[] first_imp=\"1\"");
}

Test(rows, a_line_without_rows_is_rejected_with_its_reason)
{
	load(HEAD "rows: imp\nlimits: {max_rows: 3}\nfields:\n"
	     "  - {name: id, source: id, type: string, required: true}\n"
	     "  - {name: w, source: 'imp[].w', type: int, required: true}\n");
	expect_reject("{'id':'r'}", "missing_rows", "", "no 'imp' (the array whose elements become records)");
	expect_reject("{'id':'r','imp':null}", "missing_rows", "", "no 'imp' (the array whose elements become records)");
	expect_reject("{'id':'r','imp':{'w':1}}", "rows_not_array", "", "'imp' is not an array: got an object");
	expect_reject("{'id':'r','imp':[]}", "empty_rows", "", "'imp' is an empty array (no records)");
	expect_reject("{'id':'r','imp':[{'w':1},'x']}", "row_not_object", "", "imp[1] is not an object: got a string");
	expect_reject("{'id':'r','imp':[{},{},{},{}]}", "too_many_rows", "", "'imp' has 4 elements, more than limits.max_rows (3)");
	/* a field of the row names the row; a field of the request does not */
	expect_reject("{'id':'r','imp':[{'w':1},{'w':'x'}]}", "invalid_value", "w", "imp[1]: not a number: \"x\"");
	expect_reject("{'imp':[{'w':1}]}", "missing_required", "id", "missing required field");
}

Test(rows, root_and_absolute_paths)
{
	load(HEAD "root: request\nrows: imp\nfields:\n"
	     "  - {name: id, source: id, type: string}\n"
	     "  - {name: w, source: 'imp[].w', type: int}\n"
	     "  - {name: click, source: /label.click, type: int}\n");
	expect_rows("{'request':{'id':'r','imp':[{'w':1},{'w':2}]},'label':{'click':1},'id':'outer'}",
		    "id=\"r\" w=1 click=1 | id=\"r\" w=2 click=1");
}

Test(rows, the_shipped_openrtb_rules_load_and_read_a_request)
{
	bn_error err;
	bn_error_clear(&err);
	cr_assert_eq(bn_rules_load(&rules, "openrtb", &err), BN_OK, "%s:%u:%u: %s", err.source, err.line, err.column,
		     err.message);
	cr_assert_str_eq(bn_rules_source_name(rules), "<openrtb>");
	cr_assert_eq(bn_normalizer_new(&norm, rules, &err), BN_OK, "%s", err.message);
	size_t len, nrows;
	const char *l = jq("{'id':'r1','imp':[{'id':'1','banner':{'w':300,'h':250}},{'id':'2','video':{'w':640,'h':480}}],"
			   "'device':{'devicetype':4,'connectiontype':'6','geo':{'country':'deu'}}}", &len);
	cr_assert_eq(bn_normalize_parse(norm, l, len, &nrows, &err), BN_OK, "%s", err.message);
	cr_assert_eq(nrows, 2);
	cr_assert_eq(bn_normalize_row(norm, 1, &err), BN_OK, "%s", err.message);
	for (size_t f = 0; f < rules->nfields; f++) {
		const char *name = rules->fields[f].name, *got = render(norm, f);
		if (!strcmp(name, "device_type"))
			cr_expect_str_eq(got, "\"phone\"");
		else if (!strcmp(name, "connection_type"))
			cr_expect_str_eq(got, "\"4g\"");
		else if (!strcmp(name, "country"))
			cr_expect_str_eq(got, "\"DEU\"");
		else if (!strcmp(name, "width"))
			cr_expect_str_eq(got, "640");
		else if (!strcmp(name, "ad_formats"))
			cr_expect_str_eq(got, "[\"video\"]");
		else if (!strcmp(name, "imp_index"))
			cr_expect_str_eq(got, "1");
		else if (!strcmp(name, "bidfloor_cur"))
			cr_expect_str_eq(got, "\"USD\"");
	}
	cr_assert_eq(bn_rules_load(&rules, "no-such-rules-file.yaml", &err), BN_EIO);
	cr_assert_str_eq(err.message, "cannot open: No such file or directory");
	cr_assert_eq(bn_rules_load_builtin(&rules, "nope", &err), BN_EUSAGE);
	cr_assert_str_eq(err.message, "no shipped rule set named 'nope' (expected bidlog or openrtb)");
}

Test(rows, a_thousand_rows_and_deep_objects)
{
	static char big[1 << 20];
	size_t o = 0;
	load(HEAD "rows: imp\nfields:\n"
	     "  - {name: i, row_index: true, type: int}\n"
	     "  - {name: id, source: 'imp[].id', type: string}\n"
	     "  - {name: segs, source: 'user.data[*].segment[*].id', type: array<string>, max_items: 2}\n");
	o += (size_t)snprintf(big + o, sizeof(big) - o, "{'user':{'data':[");
	for (int i = 0; i < 5000; i++)
		o += (size_t)snprintf(big + o, sizeof(big) - o, "%s{'segment':[{'id':'s%d'}]}", i ? "," : "", i);
	o += (size_t)snprintf(big + o, sizeof(big) - o, "]},'ext':");
	for (int i = 0; i < 100; i++)
		o += (size_t)snprintf(big + o, sizeof(big) - o, "{'x':");
	o += (size_t)snprintf(big + o, sizeof(big) - o, "1");
	for (int i = 0; i < 100; i++)
		big[o++] = '}';
	o += (size_t)snprintf(big + o, sizeof(big) - o, ",'imp':[");
	for (int i = 0; i < 1000; i++)
		o += (size_t)snprintf(big + o, sizeof(big) - o, "%s{'id':'%d'}", i ? "," : "", i);
	snprintf(big + o, sizeof(big) - o, "]}");
	size_t len, nrows;
	bn_error err;
	const char *l = jq(big, &len);
	cr_assert_eq(bn_normalize_parse(norm, l, len, &nrows, &err), BN_OK, "%s", err.message);
	cr_assert_eq(nrows, 1000);
	cr_assert_eq(bn_normalize_row(norm, 999, &err), BN_OK, "%s", err.message);
	cr_assert_str_eq(render(norm, 0), "999");
	cr_assert_str_eq(render(norm, 1), "\"999\"");
	cr_assert_str_eq(render(norm, 2), "[\"s0\",\"s1\"]");
}

#ifdef COUNT_ALLOCS
Test(rows, no_allocation_after_warm_up)
{
	load(HEAD "rows: imp\nfields:\n"
	     "  - {name: i, row_index: true, type: int}\n"
	     "  - {name: w, source: ['imp[].banner.w', 'imp[].banner.format[0].w'], type: int}\n"
	     "  - {name: segs, source: 'user.data[*].segment[*].id', type: array<string>, unique: true}\n"
	     "  - {name: f, presence: ['imp[].banner', 'imp[].video'], type: array<string>}\n");
	size_t len, nrows;
	bn_error err;
	const char *l = jq("{'imp':[{'banner':{'w':1}},{'video':{},'banner':{'format':[{'w':2}]}}],"
			   "'user':{'data':[{'segment':[{'id':'a'},{'id':'b'}]},{'segment':[{'id':'a'}]}]}}", &len);
	int bad = 0;
	for (int pass = 0; pass < 2; pass++) {
		counting = pass;
		for (int i = 0; i < (pass ? 1000 : 5); i++) {
			bad |= bn_normalize_parse(norm, l, len, &nrows, &err) != BN_OK;
			for (size_t r = 0; r < nrows; r++)
				bad |= bn_normalize_row(norm, r, &err) != BN_OK;
		}
	}
	counting = 0;
	cr_assert_eq(bad, 0);
	cr_assert_eq(allocations, 0, "%ld allocations after warm-up", (long)allocations);
}
#endif
