"""test_readme.py - the README's shell examples run as written: every ```sh block, in order, in a fresh folder
holding the samples under logs/, and every `$ command` shown with its output. A block that cannot run here is
preceded by an explicit `<!-- readme-test: skip (why) -->` line; that list is kept small."""
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from e2e import BIDNORM, SOURCE

SKIP = re.compile(r"<!-- readme-test: skip \((.+)\) -->")
FENCE = re.compile(r"^( *)```(\w*)\s*$")


def readme_blocks():
    """(language, code, skip reason or None, first line number) of every fenced block of the README."""
    with open(os.path.join(SOURCE, "README.md"), encoding="utf-8") as f:
        lines = f.read().splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, lang, start = len(m.group(1)), m.group(2), i
        j = i + 1
        while not FENCE.match(lines[j]):
            j += 1
        code = "\n".join(x[indent:] for x in lines[i + 1:j])
        before = next((lines[k] for k in range(start - 1, -1, -1) if lines[k].strip()), "")
        skip = SKIP.search(before)
        blocks.append((lang, code, skip.group(1) if skip else None, start + 1))
        i = j + 1
    return blocks


def matches(shown, got):
    """Whether output lines `got` are the lines `shown`, where a line "..." stands for any number of lines."""
    if not shown:
        return not got
    if shown[0].strip() == "...":
        return any(matches(shown[1:], got[k:]) for k in range(len(got) + 1))
    return bool(got) and got[0] == shown[0] and matches(shown[1:], got[1:])


class Readme(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.blocks = readme_blocks()

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name
        os.mkdir(os.path.join(self.dir, "logs"))
        for name in os.listdir(os.path.join(SOURCE, "samples")):
            if name.endswith(".jsonl.zst"):
                shutil.copy(os.path.join(SOURCE, "samples", name), os.path.join(self.dir, "logs", name))
        self.env = dict(os.environ, PATH=os.path.dirname(BIDNORM) + os.pathsep + os.environ["PATH"])

    def tearDown(self):
        self.tmp.cleanup()

    def test_skipped_examples_are_few_and_say_why(self):
        skipped = [(line, why) for lang, _, why, line in self.blocks if why]
        self.assertLessEqual(len(skipped), 2, skipped)

    def test_shell_blocks_run_as_written(self):
        ran = 0
        for lang, code, why, line in self.blocks:
            if lang != "sh" or why:
                continue
            with self.subTest(line=line):
                p = subprocess.run(["sh", "-eu", "-c", code], cwd=self.dir, env=self.env, capture_output=True)
                self.assertEqual(p.returncode, 0, "README.md:%d:\n%s\n%s" % (line, code, p.stderr.decode()))
                ran += 1
        self.assertGreaterEqual(ran, 2)
        # what the examples promise is there
        self.assertTrue(os.path.isfile(os.path.join(self.dir, "out", "2026-11-20T12.avro")))
        with open(os.path.join(self.dir, "vocab", "install", "app_bundle.txt"), encoding="utf-8") as f:
            self.assertGreater(len(f.read().splitlines()), 0)

    def test_shown_commands_print_what_is_shown(self):
        shown = 0
        for lang, code, why, line in self.blocks:
            lines = code.splitlines()
            if why or not lines or not lines[0].startswith("$ "):
                continue
            with self.subTest(line=line):
                p = subprocess.run(["sh", "-eu", "-c", lines[0][2:]], cwd=self.dir, env=self.env,
                                   capture_output=True)
                self.assertEqual(p.returncode, 0, p.stderr.decode())
                got = p.stdout.decode().splitlines()
                self.assertTrue(matches(lines[1:], got), "README.md:%d shows\n%s\nbut the command printed\n%s"
                                % (line, "\n".join(lines[1:]), "\n".join(got)))
                shown += 1
        self.assertGreaterEqual(shown, 1)


if __name__ == "__main__":
    unittest.main()
