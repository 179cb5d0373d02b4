"""test_install.py - installs bidnorm into a temporary prefix and builds the README's serving snippet
against it from a scratch project, once with pkg-config and once with CMake's find_package, then runs it."""
import os
import re
import shutil
import subprocess
import tempfile
import unittest

SOURCE = os.environ["BIDNORM_SOURCE"]
BUILD = os.environ["BIDNORM_BUILD_DIR"]
SAMPLE = os.path.join(SOURCE, "samples", "bidlog-2026-11-20T12.jsonl.zst")


def readme_serving_snippet():
    """The README's C block, split into its #include lines and its statements."""
    with open(os.path.join(SOURCE, "README.md"), encoding="utf-8") as f:
        blocks = re.findall(r"^```c\n(.*?)^```", f.read(), re.S | re.M)
    assert len(blocks) == 1, "the README should hold exactly one C block (the serving snippet)"
    lines = blocks[0].splitlines()
    includes = [x for x in lines if x.startswith("#include")]
    body = [x for x in lines if not x.startswith("#include")]
    cut = body.index("/* per request: */")
    indent = lambda xs, n: "\n".join("\t" * n + x for x in xs)
    return "\n".join(includes), indent(body[:cut], 1), indent(body[cut:], 2)


def program_source():
    """A whole program around the snippet: each stdin line is one request; prints what it computed."""
    includes, setup, per_request = readme_serving_snippet()
    return f"""#include <stdio.h>
#include <string.h>
{includes}
int main(void)
{{
	static char raw[1 << 20];
	size_t raw_len, n = 0, requests = 0, encoded = 0;
	uint32_t idx = 0;
	const uint32_t *ids = NULL;
	double x = 0;
	int is_null = 0;
	unsigned long long sum = 0;
{setup}
	if (!model || !enc)
		return 1;
	while (fgets(raw, sizeof(raw), stdin)) {{
		raw_len = strlen(raw);
		requests++;
		idx = 0;
		ids = NULL;
{per_request}
		if (bn_encoder_encode_json(enc, raw, raw_len, &err) == BN_OK)
			encoded++;
		sum += idx + (ids ? ids[0] : 0) + (size_t)(x != 0) + (size_t)is_null + n * 0;
	}}
	printf("requests %zu encoded %zu\\n", requests, encoded);
	bn_encoder_free(enc);
	bn_model_free(model);
	bn_rules_free(rules);
	return sum == (unsigned long long)-1;
}}
"""


def run(cmd, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if p.returncode != 0:
        raise AssertionError(f"{cmd} exited {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}")
    return p.stdout


class InstalledPrefix(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="bidnorm-install-")
        cls.prefix = os.path.join(cls.tmp, "opt", "bidnorm")
        run(["cmake", "--install", BUILD, "--prefix", cls.prefix])
        # The installed tool makes the vocabulary the snippet loads, from the samples.
        bidnorm = os.path.join(cls.prefix, "bin", "bidnorm")
        cls.work = os.path.join(cls.tmp, "app")
        os.makedirs(cls.work)
        run([bidnorm, "ingest", "-q", "-o", "clean.avro", SAMPLE], cwd=cls.work)
        run([bidnorm, "vocab", "build", "-o", "vocab/install", "--field", "app_bundle,installed_apps,country",
             "clean.avro"], cwd=cls.work)
        with open(os.path.join(cls.work, "main.c"), "w", encoding="utf-8") as f:
            f.write(program_source())
        cls.requests = subprocess.run(["zstd", "-dc", SAMPLE], capture_output=True, check=True).stdout

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    def libdir(self):
        for d in ("lib", "lib64"):
            if os.path.isdir(os.path.join(self.prefix, d, "pkgconfig")):
                return os.path.join(self.prefix, d)
        self.fail("no pkgconfig folder in the installed prefix")

    def run_app(self, exe):
        env = dict(os.environ, LD_LIBRARY_PATH=self.libdir())
        p = subprocess.run([exe], input=self.requests, capture_output=True, cwd=self.work, env=env)
        self.assertEqual(p.returncode, 0, p.stderr)
        out = p.stdout.decode()
        m = re.fullmatch(r"requests (\d+) encoded (\d+)\n", out)
        self.assertIsNotNone(m, out)
        self.assertEqual(int(m.group(1)), self.requests.count(b"\n"))
        # Most lines encode; the sample's broken ones (not JSON, missing event_id...) do not.
        self.assertGreater(int(m.group(2)), 4900)
        self.assertLess(int(m.group(2)), int(m.group(1)))

    def test_pkg_config_names_the_install_prefix(self):
        env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(self.libdir(), "pkgconfig"))
        cflags = run(["pkg-config", "--cflags", "bidnorm"], env=env).split()
        libs = run(["pkg-config", "--libs", "bidnorm"], env=env).split()
        inc = [x[2:] for x in cflags if x.startswith("-I")]
        self.assertEqual([os.path.realpath(x) for x in inc], [os.path.join(os.path.realpath(self.prefix), "include")])
        self.assertIn(f"-L{os.path.join(self.libdir(), 'pkgconfig', '..', '..', 'lib')}", libs)
        exe = os.path.join(self.work, "app-pkgconfig")
        run(["cc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-o", exe, "main.c"] + cflags + libs, cwd=self.work)
        self.run_app(exe)

    def test_cmake_find_package(self):
        src = os.path.join(self.tmp, "cmake-app")
        os.makedirs(src, exist_ok=True)
        shutil.copy(os.path.join(self.work, "main.c"), src)
        with open(os.path.join(src, "CMakeLists.txt"), "w", encoding="utf-8") as f:
            f.write("cmake_minimum_required(VERSION 3.18)\nproject(app C)\n"
                    "find_package(bidnorm 0.1 CONFIG REQUIRED)\n"
                    "add_executable(app main.c)\n"
                    "target_link_libraries(app PRIVATE bidnorm::bidnorm)\n")
        build = os.path.join(src, "build")
        run(["cmake", "-S", src, "-B", build, f"-DCMAKE_PREFIX_PATH={self.prefix}"])
        run(["cmake", "--build", build])
        self.run_app(os.path.join(build, "app"))

    def test_cmake_refuses_an_incompatible_version(self):
        src = os.path.join(self.tmp, "cmake-old")
        os.makedirs(src, exist_ok=True)
        with open(os.path.join(src, "CMakeLists.txt"), "w", encoding="utf-8") as f:
            f.write("cmake_minimum_required(VERSION 3.18)\nproject(app C)\n"
                    "find_package(bidnorm 1.0 CONFIG REQUIRED)\n")
        p = subprocess.run(["cmake", "-S", src, "-B", os.path.join(src, "build"), f"-DCMAKE_PREFIX_PATH={self.prefix}"],
                           capture_output=True, text=True)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn('compatible with requested version "1.0"', p.stderr)


if __name__ == "__main__":
    unittest.main()
