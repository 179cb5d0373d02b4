"""Where the bidnorm binary and libbidnorm.so are: the environment, the build tree, or an install."""
import ctypes.util
import os
import shutil
from typing import Callable, Optional

_HERE = os.path.dirname(os.path.abspath(__file__))
# python/bidnorm/ -> the source tree, whose build/ tools/build fills
_SOURCE = os.path.dirname(os.path.dirname(_HERE))


def _build_dirs() -> list:
    dirs = []
    if os.environ.get("BIDNORM_BUILD_DIR"):
        dirs.append(os.environ["BIDNORM_BUILD_DIR"])
    dirs.append(os.path.join(_SOURCE, "build"))
    return dirs


def _find(env: str, name: str, usable: Callable[[str], bool], elsewhere: Callable[[], Optional[str]],
          what: str, advice: str, bad_env: str) -> str:
    """$env, else build-tree/name when usable, else elsewhere(); FileNotFoundError naming every place."""
    given = os.environ.get(env)
    if given:
        if not usable(given):
            raise FileNotFoundError(f"{env}={given}: {bad_env}")
        return os.path.abspath(given)
    tried = []
    for d in _build_dirs():
        p = os.path.join(d, name)
        tried.append(p)
        if usable(p):
            return p
    found = elsewhere()
    if found:
        return found
    raise FileNotFoundError(f"no {what}: set {env}, build with tools/build, or install it "
                            f"(looked at {', '.join(tried)} and {advice})")


def find_binary() -> str:
    """The `bidnorm` executable: $BIDNORM_BIN, else the build tree beside this package, else PATH.

    Raises FileNotFoundError naming every place looked at.
    """
    return _find("BIDNORM_BIN", "bidnorm", lambda p: os.path.isfile(p) and os.access(p, os.X_OK),
                 lambda: shutil.which("bidnorm"), "bidnorm executable", "PATH", "not an executable file")


def find_library() -> str:
    """libbidnorm.so: $BIDNORM_LIB, else the build tree beside this package, else the system's (ldconfig).

    Raises FileNotFoundError naming every place looked at.
    """
    return _find("BIDNORM_LIB", "libbidnorm.so", os.path.isfile, lambda: ctypes.util.find_library("bidnorm"),
                 "libbidnorm.so", "the linker's paths", "no such file")
