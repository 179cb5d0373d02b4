"""End-to-end tests of compressed inputs: gzip files written by the gzip tool and by Python's gzip module read like
their text, and the formats that are refused (files made by bzip2, xz, lz4, zip, python3-snappy and lzop themselves) named with advice."""
import glob
import gzip
import json
import os
import shutil
import subprocess
import tempfile
import unittest
import zlib

import zstandard

from e2e import BIDNORM, FolderTest, read_avro_file as read_avro, read_jsonl, SOURCE

SAMPLES = sorted(glob.glob(os.path.join(SOURCE, "samples", "*.jsonl.zst")))


def sample_text(lines=2000):
    """The first lines of the committed samples (dirt included: rejects, CRLF, invalid UTF-8). Not all of them: the
    test process grows with what it reads back, and a later test measures its children's peak memory, which Linux
    starts from the parent's."""
    with open(SAMPLES[0], "rb") as f:
        text = zstandard.ZstdDecompressor().stream_reader(f, read_across_frames=True).read()
    return b"".join(text.splitlines(keepends=True)[:lines])


class Compressed(FolderTest):
    plain = None    # (records, rejects, stats) of the plain samples, read once

    @classmethod
    def setUpClass(cls):
        cls.text = sample_text()

    def write(self, name, data):
        with open(self.path(name), "wb") as f:
            f.write(data)
        return name

    def read(self, name):
        with open(self.path(name), "rb") as f:
            return f.read()

    def tool(self, *args, stdin=None):
        """Run a compression tool in the test folder; its stdout."""
        p = subprocess.run(list(args), input=stdin, capture_output=True, cwd=self.dir)
        self.assertEqual(p.returncode, 0, "%s: %s" % (args, p.stderr.decode()))
        return p.stdout

    def ingest(self, inp, out="out", expect=0, stdin=None, extra=()):
        """bidnorm ingest INPUT -o OUT.avro, accepting every reject; the completed process."""
        p = subprocess.run([BIDNORM, "ingest", "-q", "--max-reject-rate", "1", "-o", out + ".avro", *extra, inp],
                           input=stdin, capture_output=True, cwd=self.dir)
        self.assertEqual(p.returncode, expect, p.stderr.decode())
        return p

    def outputs(self, out="out"):
        _, records = read_avro(self.path(out + ".avro"))
        rejects = read_jsonl(self.path(out + ".rejects.jsonl"))
        with open(self.path(out + ".stats.json")) as f:
            stats = json.load(f)
        return records, rejects, stats

    def assert_same_as_plain(self, name, members):
        """name reads exactly like the plain samples: records, rejects (line, offset, reason, raw), counts."""
        if not Compressed.plain:
            self.write("plain.jsonl", self.text)
            self.ingest("plain.jsonl", "plain")
            Compressed.plain = self.outputs("plain")
        self.ingest(name, "gz")
        want_records, want_rejects, want_stats = Compressed.plain
        want_rejects = [dict(r, source=name) for r in want_rejects]
        records, rejects, stats = self.outputs("gz")
        self.assertGreater(len(want_rejects), 3, "the samples must hold rejects, to compare lines and offsets")
        self.assertEqual(records, want_records)
        self.assertEqual(rejects, want_rejects)
        inp, want_inp = stats["inputs"][0], want_stats["inputs"][0]
        self.assertEqual((inp["compression"], inp["gzip_members"], inp["zstd_frames"]), ("gzip", members, 0))
        self.assertEqual((inp["bytes_read"], inp["bytes_decoded"]), (len(self.read(name)), len(self.text)))
        for key in ("records_read", "records_written", "records_rejected", "blank_lines", "repaired_bytes"):
            self.assertEqual(inp[key], want_inp[key], key)
        self.assertEqual((want_inp["compression"], want_inp["gzip_members"]), ("none", 0))

    # --- gzip read ------------------------------------------------------------

    def test_file_made_by_the_gzip_tool_reads_like_its_text(self):
        self.write("bidlog.jsonl", self.text)
        self.tool("gzip", "bidlog.jsonl")          # bidlog.jsonl.gz, with the name in its header
        self.assertEqual(self.read("bidlog.jsonl.gz")[3] & 0x08, 0x08, "FNAME set")
        self.assert_same_as_plain("bidlog.jsonl.gz", 1)

    def test_members_concatenated_by_cat_and_appended_by_python(self):
        # Three members: one by the gzip tool, then two appended by Python's gzip module
        # (mode "ab" starts a new member), each cut inside a line.
        a, b = len(self.text) // 3 + 11, 2 * len(self.text) // 3 + 5
        self.write("p1", self.text[:a])
        first = self.tool("gzip", "-c", "p1")
        self.write("multi.jsonl.gz", first)
        for part in (self.text[a:b], self.text[b:]):
            with gzip.open(self.path("multi.jsonl.gz"), "ab") as f:
                f.write(part)
        self.assert_same_as_plain("multi.jsonl.gz", 3)
        # and `cat a.gz b.gz`
        self.write("p2", self.text[a:])
        self.write("cat.gz", first + self.tool("gzip", "-c", "-9", "p2"))
        self.assert_same_as_plain("cat.gz", 2)

    def test_gzip_on_stdin_and_without_an_extension_is_detected_by_content(self):
        data = self.tool("gzip", "-c", stdin=self.text)
        self.ingest("-", "stdin", stdin=data)
        self.write("noext", data)
        self.ingest("noext", "noext")
        for out in ("stdin", "noext"):
            with open(self.path(out + ".stats.json")) as f:
                stats = json.load(f)
            self.assertEqual((stats["inputs"][0]["compression"], stats["records_read"]), ("gzip", 2000), out)
            self.assertGreater(stats["records_written"], 1900)

    def test_truncated_gzip_fails_naming_the_member_and_publishes_nothing(self):
        self.write("p1", self.text[:5000])
        self.write("p2", self.text[5000:])
        first = self.tool("gzip", "-c", "p1")
        whole = first + self.tool("gzip", "-c", "p2")
        self.write("cut.jsonl.gz", whole[:-10])
        p = self.ingest("cut.jsonl.gz", expect=5)
        self.assertIn("bidnorm ingest: cut.jsonl.gz: truncated gzip input: ends at byte offset %d inside member 2 "
                      "starting at byte offset %d\n" % (len(whole) - 10, len(first)), p.stderr.decode())
        self.assertFalse(os.path.exists(self.path("out.avro")))
        with open(self.path("out.stats.json")) as f:
            stats = json.load(f)
        self.assertEqual(stats["status"], "failed")
        self.assertFalse(stats["inputs"][0]["complete"])
        self.assertEqual(stats["inputs"][0]["gzip_members"], 1)

    def test_crc_mismatch_fails_naming_the_member(self):
        first = gzip.compress(self.text[:3000], mtime=0)
        second = bytearray(gzip.compress(self.text[3000:], mtime=0))
        second[-8] ^= 0x40                          # the CRC-32 in the trailer
        self.write("crc.jsonl.gz", first + bytes(second))
        p = self.ingest("crc.jsonl.gz", expect=5)
        self.assertIn("bidnorm ingest: crc.jsonl.gz: corrupt gzip input in member 2 starting at byte offset %d: "
                      "CRC-32 mismatch: the data does not match the member's checksum\n" % len(first),
                      p.stderr.decode())
        self.assertFalse(os.path.exists(self.path("out.avro")))

    def test_garbage_after_a_member_fails(self):
        data = self.tool("gzip", "-c", stdin=self.text[:4000])
        self.write("tail.jsonl.gz", data + b"\n")
        p = self.ingest("tail.jsonl.gz", expect=5)
        self.assertIn("bidnorm ingest: tail.jsonl.gz: corrupt gzip input: the bytes at byte offset %d, after member 1, "
                      "are not a gzip member\n" % len(data), p.stderr.decode())

    def peak_rss_kb(self, *args):
        """Exit code and peak RSS (KiB) of one bidnorm run, from GNU time: the wait4 figure of a child of this
        process would start from this process's own peak."""
        p = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", "rss.txt", BIDNORM, *args], capture_output=True,
                           cwd=self.dir)
        with open(self.path("rss.txt")) as f:
            return p.returncode, int(f.read().split()[-1])

    def test_memory_stays_bounded_for_a_half_gigabyte_line_and_fifty_thousand_members(self):
        ok = self.text.split(b"\n")[0] + b"\n"
        z = zlib.compressobj(9, zlib.DEFLATED, 31)  # one gzip member, written piece by piece
        with open(self.path("bomb.jsonl.gz"), "wb") as f:
            f.write(z.compress(ok + b'{"event_id":"'))
            chunk = b"x" * (1 << 20)
            for _ in range(512):
                f.write(z.compress(chunk))
            f.write(z.compress(b'"}\n' + ok) + z.flush())
        size = os.path.getsize(self.path("bomb.jsonl.gz"))
        self.assertLess(size, 1 << 20)
        small = gzip.compress(ok * 3, mtime=0)
        self.write("small.jsonl.gz", small)
        # written piece by piece: this process must stay small (see sample_text)
        z = zlib.compressobj(6, zlib.DEFLATED, 31)
        with open(self.path("members.jsonl.gz"), "wb") as many, open(self.path("one.jsonl.gz"), "wb") as one:
            for _ in range(50000):
                many.write(small)
                one.write(z.compress(ok * 3))
            one.write(z.flush())
        args = ("ingest", "-q", "--max-reject-rate", "0.5", "-o")
        code, base = self.peak_rss_kb(*args, "small.avro", "small.jsonl.gz")
        self.assertEqual(code, 0)
        code, bomb = self.peak_rss_kb(*args, "bomb.avro", "bomb.jsonl.gz")
        self.assertEqual(code, 0)
        _, rejects, stats = self.outputs("bomb")
        self.assertEqual((stats["records_written"], rejects[0]["reason"], rejects[0]["line"]), (2, "line_too_long", 2))
        self.assertEqual(rejects[0]["raw_size"], (512 << 20) + len('{"event_id":""}'))
        self.assertEqual(stats["inputs"][0]["bytes_read"], size)
        code, many = self.peak_rss_kb(*args, "members.avro", "members.jsonl.gz")
        self.assertEqual(code, 0)
        code, one = self.peak_rss_kb(*args, "one.avro", "one.jsonl.gz")
        self.assertEqual(code, 0)
        with open(self.path("members.stats.json")) as f:
            stats = json.load(f)
        self.assertEqual((stats["inputs"][0]["gzip_members"], stats["records_written"]), (50000, 150000))
        # a line cannot be over 1 MiB, so the window never holds more than about 1.1 MiB
        self.assertLess(bomb, base + 8 * 1024, "small: %d KiB, 512 MiB line: %d KiB" % (base, bomb))
        # The same records either way; what may differ is whether the kernel had a free huge page when
        # the chain-result cache first touched its table and storage (2 MiB each, or 4 KiB pages).
        self.assertLess(many, one + 4 * 1024, "one member: %d KiB, 50,000 members: %d KiB" % (one, many))

    # --- refused ---------------------------------------------------------------

    REFUSED = [
        # (format, name, command that makes it from plain.jsonl, advised decompression)
        ("xz", "x.jsonl.xz", "xz -c plain.jsonl > x.jsonl.xz", "xz -dc"),
        ("bzip2", "x.jsonl.bz2", "bzip2 -c plain.jsonl > x.jsonl.bz2", "bzip2 -dc"),
        ("lz4", "x.jsonl.lz4", "lz4 -q -c plain.jsonl > x.jsonl.lz4", "lz4 -dc"),
        ("lz4", "legacy.lz4", "lz4 -q -l -c plain.jsonl > legacy.lz4", "lz4 -dc"),
        ("zip", "x.zip", "zip -q x.zip plain.jsonl", "unzip -p"),
        # the framing format, as Kinesis Firehose's "Snappy" writes it, made and read by python-snappy
        ("snappy", "x.jsonl.sz", "python3 -m snappy -c plain.jsonl > x.jsonl.sz", "python3 -m snappy -d"),
        ("lzop", "x.jsonl.lzo", "lzop -q -c plain.jsonl > x.jsonl.lzo", "lzop -dc"),
    ]
    NEEDS = {"snappy": ", with python-snappy 0.6 or later"}
    # python3 is Debian's, which has python3-snappy, as on a Debian machine; snappy_shim gives its 0.5.3 the
    # checksum fix of 0.6 (see there), so the advised command runs as it is.
    ENV = dict(os.environ, PATH="/usr/bin:" + os.environ.get("PATH", ""),
               PYTHONPATH=os.path.join(os.path.dirname(os.path.abspath(__file__)), "snappy_shim"))

    def test_refused_formats_fail_before_any_line_and_the_advice_works(self):
        self.write("plain.jsonl", self.text)
        self.ingest("plain.jsonl", "plain")
        with open(self.path("plain.stats.json")) as f:
            want = json.load(f)["records_written"]
        for fmt, name, make, decompress in self.REFUSED:
            with self.subTest(name=name):
                subprocess.run(make, shell=True, check=True, cwd=self.dir, env=self.ENV)
                advice = "%s %s | bidnorm ingest -" % (decompress, name)
                needs = self.NEEDS.get(fmt, "")
                p = self.ingest(name, "refused", expect=5)
                self.assertEqual(p.stderr.decode().split("\n")[0] + "\n",
                                 "bidnorm ingest: %s: %s-compressed input is not supported (decompress it first: %s%s)\n"
                                 % (name, fmt, advice, needs))
                self.assertEqual(self.read("refused.rejects.jsonl"), b"")
                self.assertFalse(os.path.exists(self.path("refused.avro")))
                with open(self.path("refused.stats.json")) as f:
                    stats = json.load(f)
                self.assertEqual((stats["records_read"], stats["inputs"][0]["compression"]), (0, "none"))
                # standard input: detected by content too
                p = self.ingest("-", "refused", expect=5, stdin=self.read(name))
                self.assertEqual(p.stderr.decode().split("\n")[0] + "\n",
                                 "bidnorm ingest: <stdin>: %s-compressed input is not supported (decompress it first: "
                                 "... | %s | bidnorm ingest -%s)\n" % (fmt, decompress, needs))
                # what the message advises reads the file
                cmd = advice.replace("bidnorm ingest -", "%s ingest -q --max-reject-rate 1 -o advised.avro -" % BIDNORM)
                p = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, cwd=self.dir,
                                   env=self.ENV)
                self.assertEqual(p.returncode, 0, p.stderr.decode())
                with open(self.path("advised.stats.json")) as f:
                    self.assertEqual(json.load(f)["records_written"], want)

    # --- watch ------------------------------------------------------------------

    def watch_once(self, *args):
        p = subprocess.run([BIDNORM, "watch", "--inbox", "in", "--outbox", "out", "--done", "done", "--settle", "0.2",
                            "--once", *args], capture_output=True, cwd=self.dir, timeout=60)
        return p

    def test_watch_takes_gzip_by_default_and_quarantines_a_refused_format_it_is_told_to_take(self):
        os.mkdir(self.path("in"))
        self.write("in/app.jsonl.gz", self.tool("gzip", "-c", stdin=self.text))
        self.write("in/app.log.1.gz", gzip.compress(self.text[:20000]))
        self.write("in/other.jsonl.xz", self.tool("xz", "-c", stdin=self.text[:1000]))
        p = self.watch_once("--max-reject-rate", "1")
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        with open(self.path("out/app.stats.json")) as f:
            stats = json.load(f)
        self.assertEqual((stats["inputs"][0]["compression"], stats["inputs"][0]["gzip_members"]), ("gzip", 1))
        self.assertGreater(stats["records_written"], 1000)
        self.assertTrue(os.path.exists(self.path("out/app.log.1.avro")))
        self.assertEqual(sorted(os.listdir(self.path("done"))), ["app.jsonl.gz", "app.log.1.gz"])
        self.assertEqual([n for n in os.listdir(self.path("in")) if n[0] != "."], ["other.jsonl.xz"], "not taken by default")
        p = self.watch_once("--include", "*.xz")
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        with open(self.path("in/.quarantine/other.jsonl.xz.error.json")) as f:
            err = json.load(f)
        self.assertEqual((err["status"], err["exit_code"]), ("corrupt", 5))
        self.assertRegex(err["message"], r"^(\S*/)?other\.jsonl\.xz: xz-compressed input is not supported "
                         r"\(decompress it first: xz -dc (\S*/)?other\.jsonl\.xz \| bidnorm ingest -\)$")


if __name__ == "__main__":
    unittest.main()
