"""The engine-neutral unit contract (bidnorm.distributed.run_unit), driven as Spark would drive it:
rdd.pipe (JSON task lines on stdin, result lines back) and mapPartitions (the function in a worker)."""
import errno
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

from common import BIDNORM, SOURCE, SAMPLE_12, SAMPLE_13, bidnorm, read_bytes

from bidnorm import distributed as bd
from bidnorm.distributed import unit

sys.path.insert(0, os.path.join(SOURCE, "tests", "e2e"))
from e2e import read_records  # noqa: E402  pylint: disable=wrong-import-position


def all_files(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


class Unit(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name
        self.out = os.path.join(self.dir, "out")
        self.inputs = []
        for src in (SAMPLE_12, SAMPLE_13):
            p = os.path.join(self.dir, os.path.basename(src))
            shutil.copy(src, p)
            self.inputs.append(p)
        self.bad = os.path.join(self.dir, "bad.jsonl.zst")
        with open(self.bad, "wb") as f:
            f.write(read_bytes(SAMPLE_12)[:3000])

    def tearDown(self):
        self.tmp.cleanup()

    def task(self, inp, **kw):
        return {"op": "ingest", "input": inp, "output_dir": self.out, **kw}

    def test_ingest_commits_once_into_a_layout_spark_can_read(self):
        res = bd.run_unit(self.task(self.inputs[0], name="s3://logs/h12.jsonl.zst"))
        self.assertEqual((res["status"], res["exit_code"], res["stem"]), ("committed", 0, "bidlog-2026-11-20T12"))
        self.assertEqual(res["records_read"], res["records_written"] + res["records_rejected"])
        files = all_files(self.out)
        self.assertEqual(files, ["_bidnorm/committed/bidlog-2026-11-20T12.json",
                                 "_rejects/bidlog-2026-11-20T12.rejects.jsonl",
                                 "_stats/bidlog-2026-11-20T12.stats.json", "bidlog-2026-11-20T12.avro"])
        # what a Hadoop reader lists: no name starting with '_' or '.' but the Avro
        visible = [f for f in os.listdir(self.out) if not f.startswith(("_", "."))]
        self.assertEqual(visible, ["bidlog-2026-11-20T12.avro"])
        with open(os.path.join(self.out, "_stats/bidlog-2026-11-20T12.stats.json")) as f:
            stats = json.load(f)
        self.assertEqual((stats["status"], stats["inputs"][0]["name"]), ("ok", "s3://logs/h12.jsonl.zst"))
        self.assertEqual(stats["records_written"], res["records_written"])
        # run again (a retry, a rerun): the committed result, nothing rewritten
        before = os.stat(os.path.join(self.out, "bidlog-2026-11-20T12.avro"))
        again = bd.run_unit(self.task(self.inputs[0]))
        self.assertEqual(again, res)
        after = os.stat(os.path.join(self.out, "bidlog-2026-11-20T12.avro"))
        self.assertEqual((before.st_ino, before.st_mtime_ns), (after.st_ino, after.st_mtime_ns))

    def test_a_second_successful_attempt_loses_the_claim(self):
        # two attempts finished; the second finds the commit record made in between
        first = bd.run_unit(self.task(self.inputs[1]))
        record = os.path.join(self.out, "_bidnorm/committed/bidlog-2026-11-20T13.json")
        saved = read_bytes(record)
        os.unlink(record)                      # the second attempt starts before the first commits ...
        orig_link = os.link

        def link_after_first(src, dst):        # ... and the first commits just before it claims
            with open(dst, "wb") as f:
                f.write(saved)
            return orig_link(src, dst)
        unit.os.link = link_after_first
        try:
            second = bd.run_unit(self.task(self.inputs[1]))
        finally:
            unit.os.link = orig_link
        self.assertEqual(second["attempt"], first["attempt"])
        self.assertEqual(second["note"], "already committed by attempt " + first["attempt"])
        self.assertEqual(os.listdir(os.path.join(self.out, "_bidnorm/staging")), [])

    def test_a_commit_another_attempt_finished_first_is_still_reported(self):
        # two attempts at once: right after this one claims, the other (its claim refused) finishes this
        # commit, staging folder and all, before this one removes its claim file from that folder
        stem = "bidlog-2026-11-20T12"
        inp = self.inputs[0]
        orig_link = os.link
        claimed = []

        def link_then_the_other_finishes(src, dst):
            orig_link(src, dst)
            if src.endswith("/commit.json"):
                claimed.append(dst)
                unit.committed_record(self.out, stem)
        unit.os.link = link_then_the_other_finishes
        try:
            first = bd.run_unit(self.task(inp))
            shutil.copy(SAMPLE_13, inp)        # and the same for a replacement of a changed input
            again = bd.run_unit(self.task(inp, reingest_changed=True))
        finally:
            unit.os.link = orig_link
        self.assertEqual(claimed, [os.path.join(self.out, "_bidnorm/committed", stem + ".json"),
                                   os.path.join(self.out, "_bidnorm/replaced", first["attempt"] + ".json")])
        self.assertEqual((first["status"], again["status"]), ("committed", "committed"))
        self.assertEqual(self.record()["attempt"], again["attempt"])
        self.assertEqual(len(read_records(again["avro"])), again["records_written"])
        self.assertEqual(os.listdir(os.path.join(self.out, "_bidnorm/staging")), [])

    def test_the_end_of_a_run_removes_records_lost_attempts_were_writing(self):
        # workers lost while writing a record whole under a temporary name: recording a new time (the same
        # content, touched), and installing a replacement
        inp = self.inputs[0]
        first = bd.run_unit(self.task(inp))
        st = os.stat(inp)
        os.utime(inp, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
        orig_replace = os.replace

        def killed(src, dst):
            if src.endswith(".tmp"):
                raise bd.TransientFailure("worker lost")
            return orig_replace(src, dst)
        unit.os.replace = killed
        try:
            with self.assertRaises(bd.TransientFailure):
                bd.run_unit(self.task(inp))
            shutil.copy(SAMPLE_13, inp)
            with self.assertRaises(bd.TransientFailure):
                bd.run_unit(self.task(inp, reingest_changed=True))
        finally:
            unit.os.replace = orig_replace
        committed = os.path.join(self.out, "_bidnorm/committed")
        self.assertEqual(len([n for n in os.listdir(committed) if n.endswith(".tmp")]), 2)
        self.assertEqual(self.record()["attempt"], first["attempt"])
        bd.finish_run(self.out)
        self.assertEqual(os.listdir(committed), ["bidlog-2026-11-20T12.json"])
        self.assertNotEqual(self.record()["attempt"], first["attempt"])     # the replacement rolled forward
        self.assertEqual(os.listdir(os.path.join(self.out, "_bidnorm/replaced")), [])
        self.assertEqual(os.listdir(os.path.join(self.out, "_bidnorm/staging")), [])

    def test_an_interrupted_commit_is_finished_by_the_next_attempt(self):
        # a worker killed right after claiming: the record exists, the files are still in its staging folder
        orig = unit._finish_commit
        unit._finish_commit = lambda record, out: None
        try:
            res = bd.run_unit(self.task(self.inputs[0]))
        finally:
            unit._finish_commit = orig
        self.assertFalse(os.path.exists(res["avro"]))
        again = bd.run_unit(self.task(self.inputs[0]))
        self.assertEqual(again, res)
        self.assertTrue(os.path.exists(res["avro"]))
        self.assertEqual(os.listdir(os.path.join(self.out, "_bidnorm/staging")), [])

    def test_a_permanent_failure_is_quarantined_with_its_reason(self):
        res = bd.run_unit(self.task(self.bad))
        self.assertEqual((res["status"], res["exit_code"]), ("failed", 5))
        self.assertEqual(res["error"], f"{self.bad}: truncated zstd input: ends at byte offset 3000 inside the frame "
                                       "starting at byte offset 0")
        self.assertEqual(all_files(self.out), ["_bidnorm/quarantine/bad.error.json",
                                               "_bidnorm/quarantine/bad.rejects.jsonl",
                                               "_bidnorm/quarantine/bad.stats.json"])
        with open(os.path.join(self.out, "_bidnorm/quarantine/bad.error.json")) as f:
            error = json.load(f)
        # with the input's identity, so a rerun can tell a corrected file from the one that failed
        self.assertEqual(error.pop("identity"), {"size": 3000, "mtime_ns": os.stat(self.bad).st_mtime_ns,
                                                 "sha256": hashlib.sha256(read_bytes(self.bad)).hexdigest()})
        self.assertEqual(error, res)
        # a reject rate above the limit (exit 3) is permanent too
        res = bd.run_unit(self.task(self.inputs[0], options=["--max-reject-rate", "0"]))
        self.assertEqual((res["status"], res["exit_code"]), ("failed", 3))
        self.assertFalse(os.path.exists(res["avro"]))
        # run again (--retry-failed) and committed: the quarantine entry goes
        res = bd.run_unit(self.task(self.inputs[0]))
        self.assertEqual(res["status"], "committed")
        self.assertEqual(sorted(os.listdir(os.path.join(self.out, "_bidnorm/quarantine"))),
                         ["bad.error.json", "bad.rejects.jsonl", "bad.stats.json"])

    # --- an input that changed since it was committed ---------------------

    def record(self, name="bidlog-2026-11-20T12"):
        with open(os.path.join(self.out, "_bidnorm/committed", name + ".json")) as f:
            return json.load(f)

    def test_the_commit_record_keeps_the_inputs_identity(self):
        res = bd.run_unit(self.task(self.inputs[0]))
        st = os.stat(self.inputs[0])
        self.assertEqual(self.record()["identity"], {"size": st.st_size, "mtime_ns": st.st_mtime_ns,
                                                     "sha256": hashlib.sha256(read_bytes(SAMPLE_12)).hexdigest()})
        # touched, or copied again with the same bytes: the content hash says it is the same input
        os.utime(self.inputs[0], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
        self.assertEqual(bd.run_unit(self.task(self.inputs[0])), res)

    def test_a_changed_input_fails_until_it_is_ingested_again(self):
        inp = self.inputs[0]
        first = bd.run_unit(self.task(inp))
        avro = read_bytes(first["avro"])
        shutil.copy(SAMPLE_13, inp)            # delivered again under the same name, other content
        res = bd.run_unit(self.task(inp))
        size12, size13 = os.path.getsize(SAMPLE_12), os.path.getsize(SAMPLE_13)
        self.assertEqual(res, {"op": "ingest", "input": inp, "stem": "bidlog-2026-11-20T12", "status": "changed",
                               "exit_code": 2, "avro": first["avro"], "attempt": first["attempt"],
                               "error": f"{inp}: changed since it was committed (size {size12} -> {size13} bytes): "
                                        "bidlog-2026-11-20T12.avro and its rejects and stats hold the earlier "
                                        "content; ingest it again with --reingest-changed (in a unit task: "
                                        "\"reingest_changed\": true), which replaces them"})
        self.assertEqual(read_bytes(first["avro"]), avro)
        self.assertFalse(os.path.exists(os.path.join(self.out, "_bidnorm/quarantine")))
        # ingested again: the outputs and the record are replaced, the old record kept as replaced
        again = bd.run_unit(self.task(inp, reingest_changed=True))
        self.assertEqual(again["status"], "committed")
        self.assertNotEqual(again["attempt"], first["attempt"])
        one = os.path.join(self.dir, "one.avro")
        self.assertEqual(bidnorm("ingest", "-q", "--source-name", inp, "-o", one, inp).returncode, 0)
        self.assertEqual(read_bytes(again["avro"]), read_bytes(one))
        with open(os.path.join(self.out, "_stats/bidlog-2026-11-20T12.stats.json")) as f:
            self.assertEqual(json.load(f)["records_read"], again["records_read"])
        self.assertEqual((self.record()["attempt"], self.record()["replaces"]), (again["attempt"], first["attempt"]))
        self.assertEqual(all_files(os.path.join(self.out, "_bidnorm")),
                         ["committed/bidlog-2026-11-20T12.json", f"replaced/{first['attempt']}.json"])
        # from now on the new content is the committed one
        self.assertEqual(bd.run_unit(self.task(inp)), again)
        self.assertEqual(bd.run_unit(self.task(inp, reingest_changed=True)), again)
        # same size, other bytes: told by the content hash
        data = bytearray(read_bytes(inp))
        data[-1] ^= 1
        with open(inp, "wb") as f:
            f.write(data)
        old, new = hashlib.sha256(read_bytes(SAMPLE_13)).hexdigest(), hashlib.sha256(data).hexdigest()
        self.assertEqual(bd.run_unit(self.task(inp))["error"],
                         f"{inp}: changed since it was committed (same size, sha256 {old[:12]} -> {new[:12]}): "
                         "bidlog-2026-11-20T12.avro and its rejects and stats hold the earlier content; ingest it "
                         "again with --reingest-changed (in a unit task: \"reingest_changed\": true), which "
                         "replaces them")

    def test_another_input_with_the_same_stem_is_refused_not_taken_for_a_change(self):
        # day 21's h12 given with day 20's output by mistake: neither "changed" nor replaced on request
        day20, day21 = (os.path.join(self.dir, d) for d in ("2026-11-20", "2026-11-21"))
        os.mkdir(day20)
        os.mkdir(day21)
        a, b = os.path.join(day20, "h12.jsonl.zst"), os.path.join(day21, "h12.jsonl.zst")
        shutil.copy(SAMPLE_12, a)
        shutil.copy(SAMPLE_13, b)
        first = bd.run_unit(self.task(a))
        avro, files = read_bytes(first["avro"]), all_files(self.out)
        size12, size13 = os.path.getsize(SAMPLE_12), os.path.getsize(SAMPLE_13)
        want = {"op": "ingest", "input": b, "stem": "h12", "status": "conflict", "exit_code": 2,
                "avro": first["avro"], "attempt": first["attempt"],
                "error": f"{b}: another input with the stem h12 is committed in {self.out}: {a} (size {size12} -> "
                         f"{size13} bytes); two different inputs share the stem: h12.avro and its rejects and stats "
                         "stay the other input's (--reingest-changed does not replace another input's outputs): "
                         "write this input to another output, or rename it"}
        self.assertEqual(bd.run_unit(self.task(b)), want)
        self.assertEqual(bd.run_unit(self.task(b, reingest_changed=True)), want)
        self.assertEqual((read_bytes(first["avro"]), all_files(self.out)), (avro, files))
        # the same file under another path (a link to the folder): its own input, changed
        link = os.path.join(self.dir, "linked")
        os.symlink(day20, link)
        shutil.copy(SAMPLE_13, a)
        res = bd.run_unit(self.task(os.path.join(link, "h12.jsonl.zst")))
        self.assertEqual((res["status"], res["exit_code"]), ("changed", 2))
        shutil.copy(SAMPLE_12, a)
        # moved, the same bytes: still the committed input (kept time: by size and time; new time: by hash)
        os.rename(a, os.path.join(day21, "moved.tmp"))
        os.rename(b, a)
        moved = os.path.join(self.dir, "h12.jsonl.zst")
        os.rename(os.path.join(day21, "moved.tmp"), moved)
        self.assertEqual(bd.run_unit(self.task(moved)), first)
        os.utime(moved, ns=(0, 10**18))
        self.assertEqual(bd.run_unit(self.task(moved)), first)
        # a's path now holds other bytes: the commit's own input, changed, replaced on request
        self.assertEqual(bd.run_unit(self.task(a))["status"], "changed")
        self.assertEqual(bd.run_unit(self.task(a, reingest_changed=True))["status"], "committed")

    def test_inputs_are_told_apart_by_the_name_given(self):
        # local copies of one object, in another folder each run: the name recorded is the input's
        first = bd.run_unit(self.task(self.inputs[0], name="s3://logs/20/h12.jsonl.zst"))
        copy = os.path.join(self.dir, "copy")
        os.mkdir(copy)
        again = os.path.join(copy, os.path.basename(self.inputs[0]))
        shutil.copy(SAMPLE_13, again)
        res = bd.run_unit(self.task(again, name="s3://logs/20/h12.jsonl.zst"))
        self.assertEqual((res["status"], res["exit_code"]), ("changed", 2))
        res = bd.run_unit(self.task(again, name="s3://logs/21/h12.jsonl.zst"))
        self.assertEqual(res["status"], "conflict")
        self.assertTrue(res["error"].startswith(f"{again}: another input with the stem bidlog-2026-11-20T12 is "
                                                f"committed in {self.out}: {self.inputs[0]} (size "), res["error"])
        self.assertEqual(self.record()["name"], "s3://logs/20/h12.jsonl.zst")
        self.assertEqual(self.record()["attempt"], first["attempt"])

    def test_a_record_from_before_names_compares_paths(self):
        first = bd.run_unit(self.task(self.inputs[0]))
        old = self.record()
        del old["name"]
        with open(os.path.join(self.out, "_bidnorm/committed/bidlog-2026-11-20T12.json"), "w") as f:
            json.dump(old, f)
        copy = os.path.join(self.dir, "copy")
        os.mkdir(copy)
        other = os.path.join(copy, os.path.basename(self.inputs[0]))
        shutil.copy(SAMPLE_13, other)
        self.assertEqual(bd.run_unit(self.task(other))["status"], "conflict")
        shutil.copy(SAMPLE_13, self.inputs[0])
        self.assertEqual(bd.run_unit(self.task(self.inputs[0]))["status"], "changed")
        # and one from before inputs were recorded: the content alone tells
        del old["input"]
        with open(os.path.join(self.out, "_bidnorm/committed/bidlog-2026-11-20T12.json"), "w") as f:
            json.dump(old, f)
        self.assertEqual(bd.run_unit(self.task(other))["status"], "changed")
        self.assertEqual(first["status"], "committed")

    def test_an_input_removed_while_it_is_compared_is_transient(self):
        bd.run_unit(self.task(self.inputs[0]))
        st = os.stat(self.inputs[0])
        os.utime(self.inputs[0], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
        orig = unit.unchanged_by_stat

        def then_removed(identity, path):
            answer = orig(identity, path)
            os.unlink(path)
            return answer
        unit.unchanged_by_stat = then_removed
        try:
            with self.assertRaises(bd.TransientFailure) as cm:
                bd.run_unit(self.task(self.inputs[0]))
        finally:
            unit.unchanged_by_stat = orig
        self.assertEqual(str(cm.exception), f"{self.inputs[0]}: removed while it was compared with its commit record")
        # the retry finds it gone: the commit stays
        self.assertEqual(bd.run_unit(self.task(self.inputs[0]))["status"], "committed")

    def test_a_record_from_before_identities_is_trusted(self):
        first = bd.run_unit(self.task(self.inputs[0]))
        path = os.path.join(self.out, "_bidnorm/committed/bidlog-2026-11-20T12.json")
        old = self.record()
        del old["identity"]
        with open(path, "w") as f:
            json.dump(old, f)
        shutil.copy(SAMPLE_13, self.inputs[0])
        self.assertEqual(bd.run_unit(self.task(self.inputs[0])), first)
        # and an input that is gone keeps its commit
        bd.run_unit(self.task(self.inputs[1]))
        os.unlink(self.inputs[1])
        self.assertEqual(bd.run_unit(self.task(self.inputs[1], reingest_changed=True))["status"], "committed")

    def test_an_interrupted_replacement_is_finished_by_the_next_attempt(self):
        inp = self.inputs[0]
        first = bd.run_unit(self.task(inp))
        shutil.copy(SAMPLE_13, inp)
        # killed right after claiming the replacement: the old record and outputs are still in place
        orig_install, orig_finish = unit._install, unit._finish_commit
        unit._install = lambda src, dst: None
        unit._finish_commit = lambda record, out: None
        try:
            again = bd.run_unit(self.task(inp, reingest_changed=True))
        finally:
            unit._install, unit._finish_commit = orig_install, orig_finish
        self.assertEqual(self.record()["attempt"], first["attempt"])
        # the next attempt, even without reingest_changed, finds the replacement and rolls it forward
        self.assertEqual(bd.run_unit(self.task(inp)), again)
        self.assertEqual(self.record()["attempt"], again["attempt"])
        self.assertEqual(len(read_records(again["avro"])), again["records_written"])
        self.assertEqual(os.listdir(os.path.join(self.out, "_bidnorm/staging")), [])

    def test_an_input_that_changes_while_it_is_ingested_is_not_committed(self):
        fake = os.path.join(self.dir, "touching.sh")
        with open(fake, "w") as f:         # bidnorm, then the input is written to again
            f.write(f'#!/bin/sh\n"{BIDNORM}" "$@"\nrc=$?\ntouch -d "+1 hour" "{self.inputs[0]}"\nexit $rc\n')
        os.chmod(fake, 0o755)
        with self.assertRaises(bd.TransientFailure) as cm:
            bd.run_unit(self.task(self.inputs[0], bin=fake))
        self.assertEqual(str(cm.exception), f"{self.inputs[0]}: changed while it was ingested (same size, "
                                            "modified again): not committed")
        self.assertEqual(all_files(self.out), [])
        # changed while its identity is taken (the content read before the ingest)
        orig = unit._sha256_file

        def hash_then_write(path):
            digest = orig(path)
            with open(path, "ab") as f:
                f.write(b"\n")
            return digest
        unit._sha256_file = hash_then_write
        try:
            with self.assertRaises(bd.TransientFailure) as cm:
                bd.run_unit(self.task(self.inputs[1]))
        finally:
            unit._sha256_file = orig
        n = os.path.getsize(SAMPLE_13)
        self.assertEqual(str(cm.exception), f"{self.inputs[1]}: changed while it was read (size {n} -> {n + 1} "
                                            "bytes)")
        self.assertEqual(all_files(self.out), [])

    def test_a_claim_lost_to_other_content_is_tried_again(self):
        first = bd.run_unit(self.task(self.inputs[0]))
        record = os.path.join(self.out, "_bidnorm/committed/bidlog-2026-11-20T12.json")
        saved = self.record()
        saved["identity"]["sha256"] = "0" * 64    # committed from other content by another attempt
        os.unlink(record)
        orig_link = os.link

        def link_after_other(src, dst):
            with open(dst, "w") as f:
                json.dump(saved, f)
            return orig_link(src, dst)
        unit.os.link = link_after_other
        try:
            with self.assertRaises(bd.TransientFailure) as cm:
                bd.run_unit(self.task(self.inputs[0]))
        finally:
            unit.os.link = orig_link
        self.assertEqual(str(cm.exception), f"{self.inputs[0]}: committed meanwhile by another attempt, from other "
                                            "content")
        self.assertEqual(self.record()["attempt"], first["attempt"])
        self.assertEqual(os.listdir(os.path.join(self.out, "_bidnorm/staging")), [])

    def test_a_killed_attempt_is_transient(self):
        fake = os.path.join(self.dir, "killed.sh")
        with open(fake, "w") as f:
            f.write("#!/bin/sh\nkill -9 $$\n")
        os.chmod(fake, 0o755)
        with self.assertRaises(bd.TransientFailure):
            bd.run_unit(self.task(self.inputs[0], bin=fake))
        self.assertEqual(os.listdir(os.path.join(self.out, "_bidnorm/staging")), [])
        self.assertFalse(os.path.exists(os.path.join(self.out, "_bidnorm/quarantine")))

    def test_stems(self):
        self.assertEqual([bd.stem(p) for p in ("a/x.jsonl.zst", "x.json", "x.zst", "x.log.gz", "x.tar", ".zst")],
                         ["x", "x", "x", "x", "x.tar", ".zst"])
        # a stem readers would skip as hidden is refused, nothing written
        for name, first in (("_x.jsonl.zst", "_"), (".x.jsonl.zst", "."), (".zst", ".")):
            p = os.path.join(self.dir, name)
            shutil.copy(SAMPLE_12, p)
            s = bd.stem(p)
            self.assertEqual(bd.run_unit(self.task(p)), {
                "op": "ingest", "input": p, "stem": s, "status": "failed", "exit_code": 2,
                "error": f"{p}: its outputs would be named {s}.avro, which readers of the folder (Spark, "
                         f"Hadoop) skip as hidden (a name starting with '{first}'): rename the input"})
        self.assertFalse(os.path.exists(self.out))
        with self.assertRaises(ValueError) as cm:
            bd.run_unit({"op": "nope"})
        self.assertEqual(str(cm.exception), "unknown op 'nope': expected ingest, count or merge")

    # --- the way Spark drives it --------------------------------------------

    def test_rdd_pipe_contract(self):
        """rdd.pipe: the partition's elements as lines on stdin, the result lines read back."""
        lines = [json.dumps(self.task(p)) for p in (*self.inputs, self.bad)]
        p = subprocess.run([sys.executable, "-m", "bidnorm.distributed", "unit"], input="\n".join(lines) + "\n",
                           capture_output=True, text=True, check=False)
        self.assertEqual(p.returncode, 0, p.stderr)
        results = [json.loads(x) for x in p.stdout.splitlines()]
        self.assertEqual([(r["stem"], r["status"]) for r in results],
                         [("bidlog-2026-11-20T12", "committed"), ("bidlog-2026-11-20T13", "committed"),
                          ("bad", "failed")])
        # Spark re-runs a failed partition whole: committed inputs come back as they were
        again = subprocess.run([sys.executable, "-m", "bidnorm.distributed", "unit"], input="\n".join(lines) + "\n",
                               capture_output=True, text=True, check=False)
        self.assertEqual([json.loads(x) for x in again.stdout.splitlines()][:2], results[:2])
        # an input delivered again with other content: answered as changed (not a retry), then replaced on request
        shutil.copy(SAMPLE_13, self.inputs[0])
        again = subprocess.run([sys.executable, "-m", "bidnorm.distributed", "unit"], input=lines[0] + "\n",
                               capture_output=True, text=True, check=False)
        self.assertEqual(again.returncode, 0, again.stderr)
        changed = json.loads(again.stdout)
        self.assertEqual((changed["status"], changed["exit_code"]), ("changed", 2))
        self.assertTrue(changed["error"].startswith(f"{self.inputs[0]}: changed since it was committed (size "))
        task = dict(json.loads(lines[0]), reingest_changed=True)
        again = subprocess.run([sys.executable, "-m", "bidnorm.distributed", "unit"], input=json.dumps(task) + "\n",
                               capture_output=True, text=True, check=False)
        replaced = json.loads(again.stdout)
        self.assertEqual(replaced["status"], "committed")
        self.assertNotEqual(replaced["attempt"], results[0]["attempt"])
        self.assertNotEqual(replaced["records_read"], results[0]["records_read"])
        # an OSError is that task's result line (here: the output folder under a file), the other tasks'
        # lines still come back and the pipe ends 0: Spark would only retry the same permanent error
        plain = os.path.join(self.dir, "plain")
        with open(plain, "w"):
            pass
        tasks = [dict(self.task(self.inputs[1]), output_dir=os.path.join(plain, "out")), self.task(self.inputs[1])]
        p = subprocess.run([sys.executable, "-m", "bidnorm.distributed", "unit"],
                           input="".join(json.dumps(t) + "\n" for t in tasks), capture_output=True, text=True,
                           check=False)
        self.assertEqual((p.returncode, p.stderr), (0, ""))
        results = [json.loads(x) for x in p.stdout.splitlines()]
        self.assertEqual(results[0], {
            "op": "ingest", "input": self.inputs[1], "stem": "bidlog-2026-11-20T13", "status": "failed",
            "exit_code": 5, "error": f"{plain}/out/_bidnorm/committed/bidlog-2026-11-20T13.json: Not a directory"})
        self.assertEqual(results[1]["status"], "committed")
        # a bad task line is answered, not fatal
        p = subprocess.run([sys.executable, "-m", "bidnorm.distributed", "unit"], input="{nope\n",
                           capture_output=True, text=True, check=False)
        self.assertEqual(p.returncode, 0)
        self.assertEqual(json.loads(p.stdout)["status"], "failed")

    def test_the_pipe_tells_transient_errors_from_permanent_ones(self):
        from bidnorm.distributed.__main__ import _unit  # pylint: disable=import-outside-toplevel
        errors = iter([OSError(errno.ESTALE, "Stale file handle", "/nfs/out/_stats"),
                       OSError(errno.EACCES, "Permission denied", "/nfs/out"),
                       OSError(errno.ENOSPC, "No space left on device", "/nfs/out/_bidnorm"),
                       OSError(errno.EMFILE, "Too many open files"),
                       unit.TransientFailure("/in/y.log: changed while it was ingested (same size, modified again): "
                                             "not committed")])

        def fail(task):
            raise next(errors)
        orig = unit.run_unit
        unit.run_unit = fail
        try:
            tasks = [self.task("h.jsonl.zst"), {"op": "count", "input": "/a.avro", "part": "/p"},
                     {"op": "merge", "parts": [], "output": "/v"}, self.task("/in/x.log"), self.task("/in/y.log")]
            stdout = io.StringIO()
            rc = _unit(io.StringIO("".join(json.dumps(t) + "\n" for t in tasks)), stdout)
        finally:
            unit.run_unit = orig
        self.assertEqual(rc, 1)         # a retry may get past the stale handle and the open files
        self.assertEqual([json.loads(x) for x in stdout.getvalue().splitlines()], [
            {"op": "ingest", "input": os.path.abspath("h.jsonl.zst"), "stem": "h", "status": "retry", "exit_code": 1,
             "error": "/nfs/out/_stats: Stale file handle"},
            {"op": "count", "input": "/a.avro", "status": "failed", "exit_code": 5,
             "error": "/nfs/out: Permission denied"},
            {"op": "merge", "output": "/v", "status": "failed", "exit_code": 5,
             "error": "/nfs/out/_bidnorm: No space left on device"},
            {"op": "ingest", "input": "/in/x.log", "stem": "x", "status": "retry", "exit_code": 1,
             "error": "[Errno 24] Too many open files"},
            # a transient failure of the task itself names its task too, so a Spark user sees which retries
            {"op": "ingest", "input": "/in/y.log", "stem": "y", "status": "retry", "exit_code": 1,
             "error": "/in/y.log: changed while it was ingested (same size, modified again): not committed"}])

    def test_map_partitions_vocab_equals_one_build(self):
        """mapPartitions: count each Avro in the workers, then merge the parts as a tree and once more."""
        avros = []
        for p in self.inputs:
            avros.append(bd.run_unit(self.task(p))["avro"])
        fields = ["app_bundle", "installed_apps"]

        def count_partition(paths):                # what a function given to mapPartitions does
            for i, p in paths:
                yield bd.run_unit({"op": "count", "input": p, "part": os.path.join(self.dir, f"{i}.part"),
                                   "fields": fields})
        parts = [r["part"] for r in count_partition(enumerate(avros))]
        tree = bd.run_unit({"op": "merge", "parts": parts, "output": os.path.join(self.dir, "t.part"), "part": True})
        self.assertEqual(tree["status"], "ok")
        final = bd.run_unit({"op": "merge", "parts": [tree["output"]], "output": os.path.join(self.dir, "v"),
                             "options": ["--min-count", "2"]})
        self.assertEqual(final["status"], "ok")
        self.assertEqual(bidnorm("vocab", "build", "-q", "-o", os.path.join(self.dir, "one"), "--field",
                                 ",".join(fields), "--min-count", "2", *avros).returncode, 0)
        for f in ("app_bundle.txt", "app_bundle.counts.tsv", "installed_apps.txt", "installed_apps.counts.tsv"):
            self.assertEqual(read_bytes(os.path.join(self.dir, "v", f)), read_bytes(os.path.join(self.dir, "one", f)))
        # merging the same part again fails for good, with the CLI's code
        res = bd.run_unit({"op": "merge", "parts": [parts[0], parts[0]], "output": os.path.join(self.dir, "x.part"),
                           "part": True})
        self.assertEqual((res["status"], res["exit_code"]), ("failed", 2))
        self.assertIn("is already counted", res["error"])


if __name__ == "__main__":
    unittest.main()
