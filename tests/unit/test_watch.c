/* test_watch.c - unit tests of the watcher's naming, readiness, file identity, journal and file operations. */
#include <criterion/criterion.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bidnorm/watch.h"
#include "watch/inbox.h"
#include "watch/journal.h"

/* A fresh temporary folder per test, removed by the caller with rm_tree. */
static char *tmpdir(void)
{
	char tmpl[512];
	const char *base = getenv("TMPDIR");
	snprintf(tmpl, sizeof(tmpl), "%s/test_watch.XXXXXX", base && *base ? base : P_tmpdir);
	char *d = mkdtemp(tmpl);
	cr_assert_not_null(d);
	return strdup(d);
}

static void rm_tree(char *dir)
{
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
	free(dir);
}

static void write_file(const char *path, const char *text, size_t n)
{
	FILE *f = fopen(path, "wb");
	cr_assert_not_null(f);
	cr_assert_eq(fwrite(text, 1, n, f), n);
	fclose(f);
}

static bn_watch_identity identity_of(const char *path, const char *name)
{
	bn_watch_identity id;
	bn_error err;
	int fd = open(path, O_RDONLY);
	cr_assert(fd >= 0);
	cr_assert_eq(bn_watch_identity_fd(&id, fd, name, &err), BN_OK);
	close(fd);
	return id;
}

Test(watch, stem_drops_one_known_extension)
{
	static const struct { const char *name, *stem; } cases[] = {
		{ "bidlog-2026-11-20T12.jsonl.zst", "bidlog-2026-11-20T12" },
		{ "a.jsonl", "a" },
		{ "a.json", "a" },
		{ "a.zst", "a" },
		{ "a.json.zst", "a.json" },
		{ "bidlog-2026-11-20T12.jsonl.gz", "bidlog-2026-11-20T12" },
		{ "app.log.1.gz", "app.log.1" },
		{ "a.jsonl.xz", "a.jsonl.xz" },
		{ "noext", "noext" },
		{ ".jsonl", ".jsonl" },
	};
	char out[64];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t n = bn_watch_stem(out, sizeof(out), cases[i].name);
		cr_assert_str_eq(out, cases[i].stem, "%s", cases[i].name);
		cr_assert_eq(n, strlen(cases[i].stem));
	}
	cr_assert_eq(bn_watch_stem(out, 3, "abcdef.jsonl"), 6);
	cr_assert_str_eq(out, "ab");
}

Test(watch, names_wanted_by_default_and_with_include_globs)
{
	static const struct { const char *name; int wanted; } cases[] = {
		{ "a.jsonl", 1 }, { "a.jsonl.zst", 1 }, { "a.json", 1 }, { "a.zst", 1 },
		{ ".a.jsonl", 0 }, { "a.jsonl.tmp", 0 }, { "a.jsonl.part", 0 }, { "a.tmp", 0 },
		{ "a.jsonl.gz", 1 }, { "app.log.1.gz", 1 },
		{ "a.txt", 0 }, { "a.jsonl.xz", 0 }, { "a.jsonl.bz2", 0 }, { "", 0 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		cr_assert_eq(bn_watch_name_wanted(cases[i].name, NULL, 0), cases[i].wanted, "%s", cases[i].name);
	const char *inc[] = { "unity-*.jsonl.zst" };
	cr_assert_eq(bn_watch_name_wanted("unity-1.jsonl.zst", inc, 1), 1);
	cr_assert_eq(bn_watch_name_wanted("vungle-1.jsonl.zst", inc, 1), 0);
	/* A glob never brings back what is always ignored. */
	const char *all[] = { "*" };
	cr_assert_eq(bn_watch_name_wanted("x.part", all, 1), 0);
	cr_assert_eq(bn_watch_name_wanted(".x", all, 1), 0);
}

static bn_inbox_file file_at(int64_t mtime_ns, double seen)
{
	bn_inbox_file f;
	memset(&f, 0, sizeof(f));
	f.mtime_ns = mtime_ns;
	f.seen_change = seen;
	return f;
}

Test(watch, ready_only_when_complete)
{
	const int64_t s = 1000000000;
	const int64_t wall = 1000 * s;
	bn_inbox_file f = file_at(wall - s / 10, 100.0);   /* modified 0.1 s ago, first seen at t=100 */

	/* Renamed in: complete at once, unless a writer still has it open. */
	f.moved_in = 1;
	cr_assert_eq(bn_inbox_ready(&f, 100.0, wall, 5, 0), 1);
	cr_assert_eq(bn_inbox_ready(&f, 100.0, wall, 5, 1), 0);
	f.moved_in = 0;

	/* Closed, or known to have no writer: needs settle seconds of mtime age. */
	f.closed = 1;
	cr_assert_eq(bn_inbox_ready(&f, 100.0, wall, 5, -1), 0);
	cr_assert_eq(bn_inbox_ready(&f, 100.0, wall + 5 * s, 5, -1), 1);
	f.closed = 0;
	cr_assert_eq(bn_inbox_ready(&f, 100.0, wall + 5 * s, 5, 0), 1);
	cr_assert_eq(bn_inbox_ready(&f, 100.0, wall + 5 * s, 5, 1), 0);

	/* Found by a rescan, writers unknown: also observed unchanged for settle seconds. */
	cr_assert_eq(bn_inbox_ready(&f, 104.9, wall + 5 * s, 5, -1), 0);
	cr_assert_eq(bn_inbox_ready(&f, 105.0, wall + 5 * s, 5, -1), 1);

	/* Running or waiting for a retry: not ready. */
	f.state = BN_INBOX_RUNNING;
	cr_assert_eq(bn_inbox_ready(&f, 200.0, wall + 60 * s, 5, 0), 0);
	f.state = BN_INBOX_RETRY;
	f.retry_at = 210.0;
	cr_assert_eq(bn_inbox_ready(&f, 200.0, wall + 60 * s, 5, 0), 0);
	cr_assert_eq(bn_inbox_ready(&f, 210.0, wall + 60 * s, 5, 0), 1);
}

Test(watch, observe_forgets_completeness_when_the_file_changes)
{
	bn_inbox in = { 0 };
	struct stat st;
	memset(&st, 0, sizeof(st));
	st.st_mode = S_IFREG | 0644;
	st.st_size = 10;
	bn_inbox_file *f = bn_inbox_observe(&in, "a.jsonl", &st, 1.0);
	cr_assert_not_null(f);
	f->moved_in = f->closed = 1;
	f = bn_inbox_observe(&in, "a.jsonl", &st, 2.0);
	cr_assert_eq(f->moved_in, 1);
	cr_assert_eq(f->seen_change, 1.0);
	st.st_size = 20;
	f = bn_inbox_observe(&in, "a.jsonl", &st, 3.0);
	cr_assert_eq(f->moved_in, 0);
	cr_assert_eq(f->closed, 0);
	cr_assert_eq(f->seen_change, 3.0);
	cr_assert_eq(f->size, 20);
	/* Gone: forgotten, unless a worker has it. */
	f->state = BN_INBOX_RUNNING;
	cr_assert_null(bn_inbox_observe(&in, "a.jsonl", NULL, 4.0));
	cr_assert_eq(in.n, 1);
	in.files[0].state = BN_INBOX_WAITING;
	bn_inbox_observe(&in, "a.jsonl", NULL, 4.0);
	cr_assert_eq(in.n, 0);
	bn_inbox_free(&in);
}

Test(watch, backlog_order_is_oldest_mtime_then_name)
{
	bn_inbox_file a = file_at(20, 0), b = file_at(10, 0), c = file_at(10, 0);
	a.name = "a";
	b.name = "c";
	c.name = "b";
	bn_inbox_file *v[] = { &a, &b, &c };
	qsort(v, 3, sizeof(v[0]), bn_inbox_order);
	cr_assert_str_eq(v[0]->name, "b");
	cr_assert_str_eq(v[1]->name, "c");
	cr_assert_str_eq(v[2]->name, "a");
}

Test(watch, identity_is_content_based)
{
	char *d = tmpdir();
	char p1[300], p2[300];
	snprintf(p1, sizeof(p1), "%s/1", d);
	snprintf(p2, sizeof(p2), "%s/2", d);
	/* Same size, same first and last 64 KiB boundaries: only one byte in the head differs. */
	size_t n = 200000;
	char *buf = malloc(n);
	memset(buf, 'x', n);
	write_file(p1, buf, n);
	buf[10] = 'y';
	write_file(p2, buf, n);
	bn_watch_identity a = identity_of(p1, "a.jsonl"), b = identity_of(p2, "a.jsonl");
	cr_assert_eq(a.size, n);
	cr_assert_eq(strlen(a.head), 64);
	cr_assert_str_eq(a.tail, b.tail);
	cr_assert_str_neq(a.head, b.head);
	cr_assert_eq(bn_watch_identity_equal(&a, &b), 0);
	cr_assert_eq(bn_watch_identity_equal(&a, &a), 1);
	bn_watch_identity c = identity_of(p1, "b.jsonl");
	cr_assert_eq(bn_watch_identity_equal(&a, &c), 0);   /* the name is part of it */
	/* A small file: head and tail are the same bytes. */
	write_file(p1, "abc", 3);
	a = identity_of(p1, "a.jsonl");
	cr_assert_str_eq(a.head, a.tail);
	cr_assert_str_eq(a.head, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	free(buf);
	rm_tree(d);
}

static bn_journal_entry entry(const char *name, int status, char fill)
{
	bn_journal_entry e;
	memset(&e, 0, sizeof(e));
	snprintf(e.id.name, sizeof(e.id.name), "%s", name);
	e.id.size = 123;
	memset(e.id.head, fill, 64);
	memset(e.id.tail, 'f', 64);
	bn_watch_stem(e.stem, sizeof(e.stem), name);
	e.status = status;
	snprintf(e.where, sizeof(e.where), "%s", name);
	e.records_written = 7;
	e.records_rejected = 1;
	snprintf(e.time, sizeof(e.time), "2026-11-20T12:00:00Z");
	return e;
}

Test(watch, journal_line_round_trips)
{
	bn_journal_entry e = entry("we\"ird\\name.jsonl", BN_JOURNAL_DONE, 'a'), back;
	bn_buf b = { 0 };
	cr_assert_eq(bn_journal_format_line(&b, &e), 0);
	cr_assert_eq(b.data[b.size - 1], '\n');
	cr_assert_eq(bn_journal_parse_line(&back, b.data, b.size - 1), 0);
	cr_assert_str_eq(back.id.name, e.id.name);
	cr_assert_str_eq(back.stem, "we\"ird\\name");
	cr_assert_eq(bn_watch_identity_equal(&back.id, &e.id), 1);
	cr_assert_eq(back.status, BN_JOURNAL_DONE);
	cr_assert_eq(back.records_written, 7);
	cr_assert_str_eq(back.time, e.time);
	/* Torn or foreign lines are not entries. */
	cr_assert_eq(bn_journal_parse_line(&back, b.data, b.size / 2), -1);
	cr_assert_eq(bn_journal_parse_line(&back, "{\"status\":\"done\"}", 17), -1);
	const char *unknown = "{\"status\":\"maybe\",\"file\":\"a\",\"head\":\"\",\"tail\":\"\"}";
	cr_assert_eq(bn_journal_parse_line(&back, unknown, strlen(unknown)), -1);
	bn_buf_free(&b);
}

Test(watch, journal_survives_a_torn_last_line_and_keeps_the_newest_entry_per_name)
{
	char *d = tmpdir();
	char path[300];
	bn_journal *j = NULL;
	bn_error err;
	snprintf(path, sizeof(path), "%s/journal.jsonl", d);

	cr_assert_eq(bn_journal_open(&j, path, &err), BN_OK);
	bn_journal_entry a = entry("a.jsonl", BN_JOURNAL_PUBLISHED, 'a');
	bn_journal_entry b = entry("b.jsonl", BN_JOURNAL_DONE, 'b');
	cr_assert_eq(bn_journal_append(j, &a, &err), BN_OK);
	cr_assert_eq(bn_journal_append(j, &b, &err), BN_OK);
	a.status = BN_JOURNAL_DONE;
	cr_assert_eq(bn_journal_append(j, &a, &err), BN_OK);
	bn_journal_free(j);

	/* A crash in the middle of the next line. */
	int fd = open(path, O_WRONLY | O_APPEND);
	cr_assert_eq(write(fd, "{\"time\":\"2026", 13), 13);
	close(fd);

	j = NULL;
	cr_assert_eq(bn_journal_open(&j, path, &err), BN_OK);
	cr_assert_eq(bn_journal_count(j), 2);
	cr_assert_eq(bn_journal_last_status(j, &a.id), BN_JOURNAL_DONE);
	cr_assert_eq(bn_journal_last_status(j, &b.id), BN_JOURNAL_DONE);
	bn_journal_entry other = entry("a.jsonl", BN_JOURNAL_DONE, 'c');   /* same name, other content */
	cr_assert_eq(bn_journal_last_status(j, &other.id), 0);
	bn_journal_entry q = entry("c.jsonl", BN_JOURNAL_QUARANTINED, 'q');
	cr_assert_eq(bn_journal_append(j, &q, &err), BN_OK);
	bn_journal_free(j);

	/* The torn line ended on its own line: the entry after it is whole. */
	j = NULL;
	cr_assert_eq(bn_journal_open(&j, path, &err), BN_OK);
	cr_assert_eq(bn_journal_count(j), 3);
	cr_assert_eq(bn_journal_last_status(j, &q.id), BN_JOURNAL_QUARANTINED);
	bn_journal_free(j);
	rm_tree(d);
}

Test(watch, journal_finds_another_input_with_the_same_stem)
{
	char *d = tmpdir();
	char path[300], owner[256] = "";
	bn_journal *j = NULL;
	bn_error err;
	snprintf(path, sizeof(path), "%s/journal.jsonl", d);
	cr_assert_eq(bn_journal_open(&j, path, &err), BN_OK);
	bn_journal_entry a = entry("s.jsonl", BN_JOURNAL_DONE, 'a');
	cr_assert_eq(bn_journal_append(j, &a, &err), BN_OK);
	cr_assert_eq(bn_journal_stem_owner(j, "s", "s.jsonl.zst", owner, sizeof(owner)), 1);
	cr_assert_str_eq(owner, "s.jsonl");
	cr_assert_eq(bn_journal_stem_owner(j, "s", "s.jsonl", owner, sizeof(owner)), 0);
	cr_assert_eq(bn_journal_stem_owner(j, "t", "t.jsonl", owner, sizeof(owner)), 0);
	/* A quarantined file owns no outputs. */
	bn_journal_entry q = entry("q.jsonl", BN_JOURNAL_QUARANTINED, 'q');
	cr_assert_eq(bn_journal_append(j, &q, &err), BN_OK);
	cr_assert_eq(bn_journal_stem_owner(j, "q", "q.json", owner, sizeof(owner)), 0);
	bn_journal_free(j);
	rm_tree(d);
}

Test(watch, journal_that_is_mostly_history_is_compacted_on_open)
{
	char *d = tmpdir();
	char path[300];
	bn_journal *j = NULL;
	bn_error err;
	struct stat st;
	snprintf(path, sizeof(path), "%s/journal.jsonl", d);
	cr_assert_eq(bn_journal_open(&j, path, &err), BN_OK);
	bn_journal_entry a = entry("a.jsonl", BN_JOURNAL_PUBLISHED, 'a');
	for (int i = 0; i < 1100; i++) {
		a.status = i % 2 ? BN_JOURNAL_DONE : BN_JOURNAL_PUBLISHED;
		cr_assert_eq(bn_journal_append(j, &a, &err), BN_OK);
	}
	bn_journal_free(j);
	j = NULL;
	cr_assert_eq(bn_journal_open(&j, path, &err), BN_OK);
	cr_assert_eq(bn_journal_count(j), 1);
	cr_assert_eq(bn_journal_last_status(j, &a.id), BN_JOURNAL_DONE);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_lt(st.st_size, 1000);
	bn_journal_free(j);
	rm_tree(d);
}

Test(watch, journal_open_error_names_the_file)
{
	bn_journal *j = NULL;
	bn_error err;
	bn_error_clear(&err);
	char *d = tmpdir();
	char path[300];
	snprintf(path, sizeof(path), "%s/missing/journal.jsonl", d);
	cr_assert_eq(bn_journal_open(&j, path, &err), BN_EIO);
	cr_assert_null(j);
	cr_assert_str_eq(err.source, path);
	cr_assert_str_eq(err.message, "cannot open the journal: No such file or directory");
	rm_tree(d);
}

Test(watch, free_names_temporaries_and_moves)
{
	char *d = tmpdir();
	char p[300], q[300];
	bn_error err;

	char *n = bn_fs_free_name(d, "a.jsonl", ".error.json");
	snprintf(p, sizeof(p), "%s/a.jsonl", d);
	cr_assert_str_eq(n, p);
	free(n);
	write_file(p, "x", 1);
	n = bn_fs_free_name(d, "a.jsonl", ".error.json");
	snprintf(q, sizeof(q), "%s/a.jsonl.1", d);
	cr_assert_str_eq(n, q);
	free(n);
	/* A left-over NAME.1.error.json also makes NAME.1 taken. */
	snprintf(q, sizeof(q), "%s/a.jsonl.1.error.json", d);
	write_file(q, "{}", 2);
	n = bn_fs_free_name(d, "a.jsonl", ".error.json");
	snprintf(q, sizeof(q), "%s/a.jsonl.2", d);
	cr_assert_str_eq(n, q);
	free(n);

	snprintf(q, sizeof(q), "%s/sub/deeper", d);
	cr_assert_eq(bn_fs_mkdirs(q, &err), BN_OK);
	cr_assert_eq(bn_fs_mkdirs(q, &err), BN_OK);
	snprintf(q, sizeof(q), "%s/sub/deeper/a.jsonl", d);
	cr_assert_eq(bn_fs_move(p, q, &err), BN_OK);
	cr_assert_eq(access(p, F_OK), -1);
	cr_assert_eq(access(q, F_OK), 0);
	bn_error_clear(&err);
	cr_assert_eq(bn_fs_move(p, q, &err), BN_EIO);
	cr_assert_str_eq(err.source, p);
	char msg[700];
	snprintf(msg, sizeof(msg), "cannot move to '%s': No such file or directory", q);
	cr_assert_str_eq(err.message, msg);

	snprintf(p, sizeof(p), "%s/.a.avro.tmp-AbC123", d);
	write_file(p, "x", 1);
	snprintf(q, sizeof(q), "%s/.hidden", d);
	write_file(q, "x", 1);
	cr_assert_eq(bn_fs_remove_temporaries(d), 1);
	cr_assert_eq(access(p, F_OK), -1);
	cr_assert_eq(access(q, F_OK), 0);

	/* A plain file where a folder should be. */
	snprintf(q, sizeof(q), "%s/.hidden/x", d);
	bn_error_clear(&err);
	cr_assert_eq(bn_fs_mkdirs(q, &err), BN_EIO);
	snprintf(msg, sizeof(msg), "cannot create folder '%s/.hidden/x': Not a directory", d);
	cr_assert_str_eq(err.message, msg);
	rm_tree(d);
}

Test(watch, writer_detection_with_a_read_lease)
{
	char *d = tmpdir();
	char p[300];
	snprintf(p, sizeof(p), "%s/a.jsonl", d);
	write_file(p, "x\n", 2);
	int r = bn_inbox_writer_open(p);
	if (r == -1) {
		rm_tree(d);
		cr_skip_test("leases are not available here");
	}
	cr_assert_eq(r, 0);
	int fd = open(p, O_WRONLY | O_APPEND);
	cr_assert_eq(bn_inbox_writer_open(p), 1);
	close(fd);
	cr_assert_eq(bn_inbox_writer_open(p), 0);
	rm_tree(d);
}

Test(watch, options_are_checked)
{
	bn_watch_options opt;
	bn_watch *w = NULL;
	bn_error err;
	bn_watch_options_init(&opt);
	cr_assert_eq(opt.settle_seconds, 5);
	cr_assert_eq(opt.workers, 1);
	bn_error_clear(&err);
	cr_assert_eq(bn_watch_new(&w, &opt, &err), BN_EUSAGE);
	cr_assert_str_eq(err.message, "--inbox is required");
	opt.inbox = "in";
	opt.outbox = "out";
	cr_assert_eq(bn_watch_new(&w, &opt, &err), BN_EUSAGE);
	cr_assert_str_eq(err.message, "give --done DIR or --delete (what happens to a processed input)");
	opt.delete_done = 1;
	opt.workers = 65;
	cr_assert_eq(bn_watch_new(&w, &opt, &err), BN_EUSAGE);
	cr_assert_str_eq(err.message, "workers must be between 1 and 64");
	cr_assert_null(w);
	bn_watch_free(NULL);
}
