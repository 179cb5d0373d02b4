"""Where the bidnorm binary and libbidnorm.so are: the environment, the build tree, or an install."""
import ctypes.util
import os
import shutil
from typing import Optional

_HERE = os.path.dirname(os.path.abspath(__file__))
# python/bidnorm/ -> the source tree, whose build/ tools/build fills
_SOURCE = os.path.dirname(os.path.dirname(_HERE))


def _build_dirs() -> list:
    dirs = []
    if os.environ.get("BIDNORM_BUILD_DIR"):
        dirs.append(os.environ["BIDNORM_BUILD_DIR"])
    dirs.append(os.path.join(_SOURCE, "build"))
    return dirs


def find_binary() -> str:
    """The `bidnorm` executable: $BIDNORM_BIN, else the build tree beside this package, else PATH.

    Raises FileNotFoundError naming every place looked at.
    """
    env = os.environ.get("BIDNORM_BIN")
    if env:
        if not os.access(env, os.X_OK):
            raise FileNotFoundError(f"BIDNORM_BIN={env}: not an executable file")
        return os.path.abspath(env)
    tried = []
    for d in _build_dirs():
        p = os.path.join(d, "bidnorm")
        tried.append(p)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    found: Optional[str] = shutil.which("bidnorm")
    if found:
        return found
    raise FileNotFoundError("no bidnorm executable: set BIDNORM_BIN, build with tools/build, or install it "
                            f"on PATH (looked at {', '.join(tried)} and PATH)")


def find_library() -> str:
    """libbidnorm.so: $BIDNORM_LIB, else the build tree beside this package, else the system's (ldconfig).

    Raises FileNotFoundError naming every place looked at.
    """
    env = os.environ.get("BIDNORM_LIB")
    if env:
        if not os.path.isfile(env):
            raise FileNotFoundError(f"BIDNORM_LIB={env}: no such file")
        return os.path.abspath(env)
    tried = []
    for d in _build_dirs():
        p = os.path.join(d, "libbidnorm.so")
        tried.append(p)
        if os.path.isfile(p):
            return p
    found = ctypes.util.find_library("bidnorm")
    if found:
        return found
    raise FileNotFoundError("no libbidnorm.so: set BIDNORM_LIB, build with tools/build, or install it "
                            f"(looked at {', '.join(tried)} and the linker's paths)")
