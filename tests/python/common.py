"""common.py - what the Python package's tests share: the source tree, the binary, the library, sample data."""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.environ.get("BIDNORM_SOURCE", os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, os.path.join(SOURCE, "python"))
BIDNORM = os.path.abspath(os.environ.get("BIDNORM", os.path.join(SOURCE, "build", "bidnorm")))
LIB = os.path.join(os.path.dirname(BIDNORM), "libbidnorm.so")
SAMPLE_12 = os.path.join(SOURCE, "samples", "bidlog-2026-11-20T12.jsonl.zst")
SAMPLE_13 = os.path.join(SOURCE, "samples", "bidlog-2026-11-20T13.jsonl.zst")
SANITIZED = os.environ.get("BIDNORM_SANITIZED") == "1"
# the package finds them itself; the tests make it use this build's
os.environ["BIDNORM_BIN"] = BIDNORM
os.environ["BIDNORM_LIB"] = LIB
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [os.path.join(SOURCE, "python"),
                                                         os.environ.get("PYTHONPATH")]))


def bidnorm(*args, cwd=None):
    """Run the binary; the CompletedProcess."""
    return subprocess.run([BIDNORM, *args], capture_output=True, cwd=cwd, check=False)


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()
