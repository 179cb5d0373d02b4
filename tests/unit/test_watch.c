/* test_watch.c - unit tests of the watcher's naming, readiness, identity, journal, file operations, output safety. */
#include <criterion/criterion.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bidnorm/ingest.h"
#include "bidnorm/rules.h"
#include "bidnorm/watch.h"
#include "sink/output.h"
#include "sink/rejects.h"
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
	cr_assert_eq(bn_fs_move(p, q, NULL, &err), BN_OK);
	cr_assert_eq(access(p, F_OK), -1);
	cr_assert_eq(access(q, F_OK), 0);
	bn_error_clear(&err);
	cr_assert_eq(bn_fs_move(p, q, NULL, &err), BN_EIO);
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
	opt.workers = 1;
	opt.nallow_uids = 1;
	cr_assert_eq(bn_watch_new(&w, &opt, &err), BN_EUSAGE);
	cr_assert_str_eq(err.message, "allow_uids/allow_gids missing for their counts");
	opt.nallow_uids = 0;
	opt.reject_raw = 3;
	cr_assert_eq(bn_watch_new(&w, &opt, &err), BN_EUSAGE);
	cr_assert_str_eq(err.message, "reject_raw must be a bn_reject_raw");
	cr_assert_null(w);
	bn_watch_free(NULL);
}

Test(rejects, ingest_checks_the_raw_policy)
{
	bn_rules *rules = NULL;
	bn_ingest_options opt;
	bn_error err;
	cr_assert_eq(bn_rules_load_default(&rules, &err), BN_OK);
	bn_ingest_options_init(&opt);
	cr_assert_eq(opt.reject_raw, BN_REJECT_RAW_FULL);
	opt.rules = rules;
	opt.output = "/nonexistent/out.avro";
	opt.reject_raw = -1;
	cr_assert_eq(bn_ingest_run(&opt, NULL, &err), BN_EUSAGE);
	cr_assert_str_eq(err.message, "reject_raw must be a bn_reject_raw");
	bn_rules_free(rules);
}

Test(watch, observe_times_several_hard_links_from_when_they_were_first_seen)
{
	bn_inbox in = { 0 };
	struct stat st;
	memset(&st, 0, sizeof(st));
	st.st_mode = S_IFREG | 0644;
	st.st_nlink = 1;
	bn_inbox_file *f = bn_inbox_observe(&in, "a.jsonl", &st, 1.0);
	cr_assert_lt(f->linked_since, 0);
	/* link(tmp, inbox/a.jsonl) seen at 2, still two links at 3: timed from 2. */
	st.st_nlink = 2;
	f = bn_inbox_observe(&in, "a.jsonl", &st, 2.0);
	cr_assert_eq(f->linked_since, 2.0);
	f = bn_inbox_observe(&in, "a.jsonl", &st, 3.0);
	cr_assert_eq(f->linked_since, 2.0);
	/* unlink(tmp): one link again. */
	st.st_nlink = 1;
	f = bn_inbox_observe(&in, "a.jsonl", &st, 4.0);
	cr_assert_lt(f->linked_since, 0);
	/* New with two links; a symbolic link's count is not a regular file's. */
	st.st_nlink = 2;
	f = bn_inbox_observe(&in, "b.jsonl", &st, 5.0);
	cr_assert_eq(f->linked_since, 5.0);
	st.st_mode = S_IFLNK | 0777;
	f = bn_inbox_observe(&in, "c.jsonl", &st, 5.0);
	cr_assert_lt(f->linked_since, 0);
	bn_inbox_free(&in);
}

Test(watch, observe_keeps_links_and_fifos_to_quarantine_them_at_once_and_forgets_folders)
{
	bn_inbox in = { 0 };
	struct stat st;
	memset(&st, 0, sizeof(st));
	st.st_mode = S_IFLNK | 0777;
	bn_inbox_file *f = bn_inbox_observe(&in, "evil.jsonl", &st, 1.0);
	cr_assert_not_null(f);
	cr_assert_eq(f->special, 1);
	/* Nothing to wait for: it is never read. */
	cr_assert_eq(bn_inbox_ready(f, 1.0, 0, 5, -1), 1);
	st.st_mode = S_IFIFO | 0644;
	f = bn_inbox_observe(&in, "pipe.jsonl", &st, 1.0);
	cr_assert_eq(f->special, 1);
	st.st_mode = S_IFDIR | 0755;
	cr_assert_null(bn_inbox_observe(&in, "dir.jsonl", &st, 1.0));
	cr_assert_null(bn_inbox_find(&in, "dir.jsonl"));
	/* A link replaced by a regular file is an ordinary candidate again. */
	st.st_mode = S_IFREG | 0644;
	f = bn_inbox_observe(&in, "evil.jsonl", &st, 2.0);
	cr_assert_eq(f->special, 0);
	bn_inbox_free(&in);
}

Test(watch, move_with_identity_moves_only_the_file_it_was_given_and_never_follows_a_link)
{
	char *d = tmpdir();
	char a[300], b[300], link[300], dst[300], msg[700];
	struct stat sa, sl;
	bn_error err;

	snprintf(a, sizeof(a), "%s/a.jsonl", d);
	snprintf(b, sizeof(b), "%s/b.jsonl", d);
	snprintf(dst, sizeof(dst), "%s/moved", d);
	write_file(a, "first\n", 6);
	cr_assert_eq(lstat(a, &sa), 0);
	/* a.jsonl is replaced by another file after it was opened: that one stays. */
	write_file(b, "second\n", 7);
	cr_assert_eq(rename(b, a), 0);
	bn_error_clear(&err);
	cr_assert_eq(bn_fs_move(a, dst, &sa, &err), BN_EIO);
	snprintf(msg, sizeof(msg), "cannot move to '%s': replaced by another file meanwhile", dst);
	cr_assert_str_eq(err.message, msg);
	cr_assert_str_eq(err.source, a);
	cr_assert_eq(access(a, F_OK), 0);
	cr_assert_eq(access(dst, F_OK), -1);
	cr_assert_eq(bn_fs_is(a, &sa), 0);

	/* A link is moved as a link: its target stays where it is. */
	snprintf(link, sizeof(link), "%s/evil.jsonl", d);
	cr_assert_eq(symlink(a, link), 0);
	cr_assert_eq(lstat(link, &sl), 0);
	cr_assert_eq(bn_fs_move(link, dst, &sl, &err), BN_OK);
	cr_assert_eq(lstat(dst, &sl), 0);
	cr_assert(S_ISLNK(sl.st_mode));
	cr_assert_eq(access(a, F_OK), 0);
	rm_tree(d);
}

Test(watch, output_mode_is_never_more_readable_than_the_inputs)
{
	bn_outmode m;
	struct stat st;
	mode_t old = umask(022);

	memset(&st, 0, sizeof(st));
	bn_outmode_init(&m);
	cr_assert_eq(bn_outmode_for(NULL, 0), 0644);
	cr_assert_eq(bn_outmode_for(&m, 0), 0644);
	/* Standard input, pipes: no restriction. */
	st.st_mode = S_IFIFO | 0600;
	bn_outmode_add(&m, &st);
	cr_assert_eq(bn_outmode_for(&m, 0), 0644);
	st.st_mode = S_IFREG | 0600;
	st.st_gid = 7;
	bn_outmode_add(&m, &st);
	cr_assert_eq(bn_outmode_for(&m, 7), 0600);
	bn_outmode_init(&m);
	st.st_mode = S_IFREG | 0640;
	bn_outmode_add(&m, &st);
	cr_assert_eq(bn_outmode_for(&m, 7), 0640);
	/* Group bits name other people when the output has another group. */
	cr_assert_eq(bn_outmode_for(&m, 8), 0600);
	/* Two inputs: the bits both allow, and no group bits when their groups differ. */
	st.st_mode = S_IFREG | 0664;
	st.st_gid = 9;
	bn_outmode_add(&m, &st);
	cr_assert_eq(bn_outmode_for(&m, 7), 0600);
	/* The umask still applies. */
	umask(077);
	bn_outmode_init(&m);
	st.st_mode = S_IFREG | 0644;
	bn_outmode_add(&m, &st);
	cr_assert_eq(bn_outmode_for(&m, 9), 0600);
	umask(old);
}

Test(rejects, raw_policy_parses_formats_and_rejects_bad_text)
{
	int mode = -1;
	size_t bytes = 99;
	char text[32];
	bn_error err;

	cr_assert_eq(bn_reject_raw_parse(&mode, &bytes, "full", &err), BN_OK);
	cr_assert_eq(mode, BN_REJECT_RAW_FULL);
	cr_assert_eq(bn_reject_raw_parse(&mode, &bytes, "none", &err), BN_OK);
	cr_assert_eq(mode, BN_REJECT_RAW_NONE);
	cr_assert_eq(bn_reject_raw_parse(&mode, &bytes, "truncate:200", &err), BN_OK);
	cr_assert_eq(mode, BN_REJECT_RAW_TRUNCATE);
	cr_assert_eq(bytes, 200);
	bn_reject_raw_format(text, sizeof(text), mode, bytes);
	cr_assert_str_eq(text, "truncate:200");
	cr_assert_eq(bn_reject_raw_parse(&mode, &bytes, "truncate:1048576", &err), BN_OK);
	const char *bad[] = { "truncate:", "truncate:-1", "truncate:1048577", "truncate:1k", "partial", "" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char want[128];
		bn_error_clear(&err);
		cr_assert_eq(bn_reject_raw_parse(&mode, &bytes, bad[i], &err), BN_EUSAGE);
		snprintf(want, sizeof(want), "must be full, none or truncate:BYTES (0 to 1048576), not '%s'", bad[i]);
		cr_assert_str_eq(err.message, want);
	}
}

/* One reject line under a policy, as text. */
static void format_reject(char *out, size_t size, const char *data, int too_long, uint64_t raw_size, int mode,
			  size_t bytes)
{
	bn_buf b = { 0 };
	bn_error why;
	bn_line line = { .data = data, .size = strlen(data), .number = 3, .offset = 40, .raw_size = raw_size,
			 .too_long = too_long };
	bn_error_clear(&why);
	why.reason = BN_REJECT_INVALID_VALUE;
	bn_error_field(&why, "ts");
	bn_error_set(&why, BN_EREJECT, "not an ISO-8601 time or epoch number: \"yesterday\"");
	bn_rejects_redact(&why, mode);
	cr_assert_eq(bn_rejects_format(&b, "x.jsonl", &line, &why, mode, bytes), BN_OK);
	cr_assert_lt(b.size, size);
	memcpy(out, b.data, b.size);
	out[b.size] = '\0';
	bn_buf_free(&b);
}

Test(rejects, raw_line_kept_whole_truncated_at_a_character_or_not_at_all)
{
	char got[1024];
	const char *head = "{\"source\":\"x.jsonl\",\"line\":3,\"offset\":40,\"reason\":\"invalid_value\",\"field\":\"ts\","
			   "\"column\":null,";
	char want[1024];

	format_reject(got, sizeof(got), "{\"ts\":\"yesterday\",\"city\":\"S\xc3\xa3o\"}", 0, 34, BN_REJECT_RAW_FULL, 0);
	snprintf(want, sizeof(want), "%s\"message\":\"not an ISO-8601 time or epoch number: \\\"yesterday\\\"\","
		 "\"raw\":\"{\\\"ts\\\":\\\"yesterday\\\",\\\"city\\\":\\\"S\xc3\xa3o\\\"}\"}\n", head);
	cr_assert_str_eq(got, want);
	/* 28 bytes would cut the two-byte character in half: 27 are kept. */
	format_reject(got, sizeof(got), "{\"ts\":\"yesterday\",\"city\":\"S\xc3\xa3o\"}", 0, 34, BN_REJECT_RAW_TRUNCATE,
		      28);
	snprintf(want, sizeof(want), "%s\"message\":\"not an ISO-8601 time or epoch number: \\\"...\\\"\","
		 "\"raw\":\"{\\\"ts\\\":\\\"yesterday\\\",\\\"city\\\":\\\"S\",\"raw_truncated\":true,\"raw_size\":34}\n",
		 head);
	cr_assert_str_eq(got, want);
	/* Shorter than the limit: whole, but the message still quotes nothing (one rule for every line). */
	format_reject(got, sizeof(got), "{}", 0, 2, BN_REJECT_RAW_TRUNCATE, 100);
	snprintf(want, sizeof(want), "%s\"message\":\"not an ISO-8601 time or epoch number: \\\"...\\\"\","
		 "\"raw\":\"{}\"}\n", head);
	cr_assert_str_eq(got, want);
	format_reject(got, sizeof(got), "{\"ts\":\"yesterday\"}", 0, 18, BN_REJECT_RAW_NONE, 0);
	snprintf(want, sizeof(want), "%s\"message\":\"not an ISO-8601 time or epoch number: \\\"...\\\"\","
		 "\"raw\":null,\"raw_size\":18}\n", head);
	cr_assert_str_eq(got, want);
	/* An over-long line keeps its 1 KiB prefix under full, and is cut further under truncate. */
	format_reject(got, sizeof(got), "{\"ts\":", 1, 5000000, BN_REJECT_RAW_TRUNCATE, 3);
	snprintf(want, sizeof(want), "%s\"message\":\"not an ISO-8601 time or epoch number: \\\"...\\\"\","
		 "\"raw\":\"{\\\"t\",\"raw_truncated\":true,\"raw_size\":5000000}\n", head);
	cr_assert_str_eq(got, want);
}

Test(rejects, redaction_removes_everything_between_the_outermost_quotes)
{
	bn_error e;
	bn_error_clear(&e);
	bn_error_set(&e, BN_EREJECT, "value \"a\"b\" does not match pattern '^[a-z]+$'");
	bn_rejects_redact(&e, BN_REJECT_RAW_FULL);
	cr_assert_str_eq(e.message, "value \"a\"b\" does not match pattern '^[a-z]+$'");
	bn_rejects_redact(&e, BN_REJECT_RAW_NONE);
	cr_assert_str_eq(e.message, "value \"...\" does not match pattern '^[a-z]+$'");
	bn_error_set(&e, BN_EREJECT, "missing required field");
	bn_rejects_redact(&e, BN_REJECT_RAW_NONE);
	cr_assert_str_eq(e.message, "missing required field");
	/* A message at the size limit with a short quoted value does not overflow. */
	char big[BN_ERROR_MESSAGE_MAX];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	big[10] = '"';
	big[11] = '"';
	bn_error_set(&e, BN_EREJECT, "%s", big);
	bn_rejects_redact(&e, BN_REJECT_RAW_TRUNCATE);
	cr_assert_eq(strlen(e.message), BN_ERROR_MESSAGE_MAX - 1);
	cr_assert_eq(strncmp(e.message, "xxxxxxxxxx\"...\"xxx", 18), 0);
}

Test(watch, remove_with_identity_leaves_a_file_that_took_the_name)
{
	char *d = tmpdir();
	char a[300], b[300];
	struct stat sa;
	bn_error err;

	snprintf(a, sizeof(a), "%s/a.jsonl", d);
	snprintf(b, sizeof(b), "%s/b.jsonl", d);
	write_file(a, "first\n", 6);
	cr_assert_eq(lstat(a, &sa), 0);
	write_file(b, "second\n", 7);
	cr_assert_eq(rename(b, a), 0);
	bn_error_clear(&err);
	cr_assert_eq(bn_fs_remove(a, &sa, &err), BN_EIO);
	cr_assert_str_eq(err.message, "cannot delete: replaced by another file meanwhile");
	cr_assert_str_eq(err.source, a);
	cr_assert_eq(access(a, F_OK), 0);
	cr_assert_eq(lstat(a, &sa), 0);
	cr_assert_eq(bn_fs_remove(a, &sa, &err), BN_OK);
	cr_assert_eq(access(a, F_OK), -1);
	/* Gone already: nothing to do. */
	cr_assert_eq(bn_fs_remove(a, &sa, &err), BN_OK);
	rm_tree(d);
}

Test(watch, move_to_another_file_system_copies_only_a_regular_file_and_keeps_its_mode_limit)
{
	char *d = tmpdir();
	char other[] = "/dev/shm/test_watch.XXXXXX";
	char a[300], fifo[300], dst[300], msg[700];
	struct stat sa, so, sf;
	bn_error err;
	mode_t old = umask(022);

	if (!mkdtemp(other)) {
		rm_tree(d);
		cr_skip_test("no /dev/shm");
	}
	cr_assert_eq(stat(d, &sa), 0);
	cr_assert_eq(stat(other, &so), 0);
	if (sa.st_dev == so.st_dev) {
		rmdir(other);
		rm_tree(d);
		cr_skip_test("/dev/shm is on the same file system as the temporary folder");
	}
	snprintf(a, sizeof(a), "%s/a.jsonl", d);
	write_file(a, "private\n", 8);
	cr_assert_eq(chmod(a, 0600), 0);
	cr_assert_eq(lstat(a, &sa), 0);
	snprintf(dst, sizeof(dst), "%s/a.jsonl", other);
	cr_assert_eq(bn_fs_move(a, dst, &sa, &err), BN_OK);
	cr_assert_eq(access(a, F_OK), -1);
	cr_assert_eq(stat(dst, &so), 0);
	cr_assert_eq(so.st_mode & 0777, 0600);
	cr_assert_eq(so.st_size, 8);

	snprintf(fifo, sizeof(fifo), "%s/p.jsonl", d);
	cr_assert_eq(mkfifo(fifo, 0644), 0);
	cr_assert_eq(lstat(fifo, &sf), 0);
	snprintf(dst, sizeof(dst), "%s/p.jsonl", other);
	bn_error_clear(&err);
	cr_assert_eq(bn_fs_move(fifo, dst, &sf, &err), BN_EIO);
	snprintf(msg, sizeof(msg), "cannot move to '%s': not a regular file, and on another file system", dst);
	cr_assert_str_eq(err.message, msg);
	cr_assert_str_eq(err.source, fifo);
	cr_assert_eq(access(dst, F_OK), -1);
	umask(old);
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", other);
	cr_assert_eq(system(cmd), 0);
	rm_tree(d);
}
