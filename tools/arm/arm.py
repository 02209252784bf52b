"""Build EdgeFuse for aarch64 on this x86-64 Debian host and test it under qemu-aarch64 (user mode).

Usage (from the project root, with the project's venv Python; `make wheel-arm` / `make test-arm`)::

    python tools/arm/arm.py wheel            # dist/edgefuse-*-cp311-cp311-linux_aarch64.whl
    python tools/arm/arm.py test [--full]    # sysroot + aarch64 site + kernel tests + artifact checks

Needs (Debian, as root: `.ci/run` installs them): ``qemu-user-static``, ``g++-aarch64-linux-gnu``, the arm64
architecture in dpkg (``dpkg --add-architecture arm64 && apt-get update``) so that ``apt-get download`` can
fetch Debian's arm64 Python 3.11 (its .debs are extracted, never installed). Downloads (.debs and aarch64
wheels) are cached in ``~/.cache/edgefuse/arm`` (``$EDGEFUSE_ARM_CACHE``); the extracted sysroot, the
installed aarch64 site and the artifacts live in the git-ignored ``.cache/arm`` of the project.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WORK = ROOT / ".cache" / "arm"
USER_CACHE = Path(os.environ.get("EDGEFUSE_ARM_CACHE", Path.home() / ".cache" / "edgefuse" / "arm"))
TOOLCHAIN = ROOT / "cmake" / "aarch64-linux-gnu.cmake"
EXT_SUFFIX = ".cpython-311-aarch64-linux-gnu.so"

#: Debian arm64 packages whose files make the aarch64 Python 3.11 (and the C++ runtime the wheels need).
DEBS = (
    "libc6", "libgcc-s1", "libstdc++6", "zlib1g", "libexpat1", "libbz2-1.0", "liblzma5", "libffi8", "libssl3",
    "libsqlite3-0", "libuuid1", "libncursesw6", "libtinfo6", "libreadline8", "libcrypt1",
    "libpython3.11-minimal", "libpython3.11-stdlib", "python3.11-minimal", "libpython3.11", "libpython3.11-dev",
)  # fmt: skip
#: The newest onnxruntime whose aarch64 wheel imports under Debian 12's qemu 7.2 (see docs/arm.md):
#: 1.28.0 and later die with SIGSEGV at import because qemu-user 7.2 shows the guest the host's x86
#: /proc/cpuinfo (no ARM cores to parse) and their cpuinfo code dereferences the missing core record.
ONNXRUNTIME_UNDER_QEMU = "1.27.0"
#: aarch64 platform tags pip may pick: every manylinux up to the sysroot's glibc (2.36), plus our own wheel's.
PLATFORMS = [f"manylinux_2_{minor}_aarch64" for minor in range(17, 37)] + [
    "manylinux2014_aarch64",
    "linux_aarch64",
]
#: The runtime wheel's deps and the kernel tests' pure-Python tools (these go to a separate folder).
TEST_TOOLS = ("pytest>=8", "hypothesis>=6.100")
#: Profile -> qemu CPU model: the closest model qemu 7.2 has to the device's cores (A76 has fp16 + dotprod).
CPU_OF = {
    "raspberrypi/pi5-usb-mic": "cortex-a76",
    "nvidia/jetson-orin-nano": "cortex-a76",  # Cortex-A78AE: closest available
    "google/pixel-8": "cortex-a76",  # Cortex-X3/A715/A510: closest available
}
BASELINE_CPU = "cortex-a53"  # Armv8.0-A without fp16 arithmetic: the portable wheel's floor
#: MIDR part numbers (implementer 0x41, Arm) and hwcap features of the CPU models used, for the ARM
#: /proc/cpuinfo shown to the guest: qemu-user 7.2 passes the host's x86 file through, and the CPU detection
#: of onnxruntime >= 1.28 and of LiteRT 2.x (cpuinfo) crash on it (see docs/arm.md).
CPUINFO = {
    "cortex-a53": ("0xd03", "0x0", "0x4", "fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid"),
    "cortex-a76": (
        "0xd0b",
        "0x4",
        "0x1",
        "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp",
    ),
}


class SetupError(RuntimeError):
    """A missing tool or a failed step, with the command that fixes it."""


def say(msg: str) -> None:
    """Print a progress line.

    Args:
        msg: The message.
    """
    print(f"[arm] {msg}", flush=True)


def run(
    cmd: list[str],
    *,
    env: dict[str, str] | None = None,
    what: str,
    timeout: float = 900,
    cwd: Path | None = None,
) -> str:
    """Run ``cmd``; raise :class:`SetupError` naming ``what`` with the output's tail when it fails.

    Args:
        cmd: The command.
        env: Extra environment variables.
        what: What the command does (for the error).
        timeout: Seconds before it is killed.
        cwd: Working directory.

    Returns:
        Its stdout and stderr.

    Raises:
        SetupError: When it exits non-zero or times out.
    """
    try:
        proc = subprocess.run(
            cmd,
            env={**os.environ, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=cwd,
        )
    except subprocess.TimeoutExpired:
        raise SetupError(f"{what}: timed out after {timeout:.0f} s: {' '.join(cmd)}") from None
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-3000:]
        raise SetupError(f"{what} failed (exit {proc.returncode}): {' '.join(cmd)}\n{tail}")
    return proc.stdout + proc.stderr


def require_tools(*, qemu: bool) -> None:
    """Check the host tools; name the Debian package and the command for each missing one.

    Args:
        qemu: Whether qemu-aarch64-static is needed too.

    Raises:
        SetupError: A tool or the arm64 dpkg architecture is missing.
    """
    needed = {"aarch64-linux-gnu-g++": "g++-aarch64-linux-gnu", "apt-get": "apt", "dpkg-deb": "dpkg"}
    if qemu:
        needed["qemu-aarch64-static"] = "qemu-user-static"
    missing = sorted({pkg for tool, pkg in needed.items() if shutil.which(tool) is None})
    if missing:
        raise SetupError(
            f"missing Debian package(s) {', '.join(missing)}; install them as root with: "
            f"apt-get update && apt-get install -y --no-install-recommends {' '.join(missing)} (.ci/run does this)"
        )
    foreign = subprocess.run(
        ["dpkg", "--print-foreign-architectures"], capture_output=True, text=True, check=False
    ).stdout
    if "arm64" not in foreign.split():
        raise SetupError(
            "dpkg does not know the arm64 architecture, so Debian's arm64 Python cannot be downloaded; "
            "as root run: dpkg --add-architecture arm64 && apt-get update (.ci/run does this)"
        )


def sysroot() -> Path:
    """Download (cached) and extract Debian's arm64 Python 3.11 and its libraries into ``.cache/arm/sysroot``.

    Returns:
        The sysroot folder (``QEMU_LD_PREFIX``; also holds the headers the cross build uses).

    Raises:
        SetupError: When ``apt-get download`` fails.
    """
    debs = USER_CACHE / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    have = {p.name.split("_")[0] for p in debs.glob("*_arm64.deb")}
    missing = [f"{name}:arm64" for name in DEBS if name not in have]
    if missing:
        say(f"apt-get download {len(missing)} arm64 .debs into {debs}")
        # apt-get download writes into its working directory.
        run(
            ["apt-get", "download", *missing],
            what="apt-get download (arm64 Python 3.11)",
            timeout=600,
            cwd=debs,
        )
    root = WORK / "sysroot"
    files = sorted(debs.glob("*_arm64.deb"))
    stamp = root / ".debs"
    key = "\n".join(p.name for p in files if p.name.split("_")[0] in DEBS)
    if not stamp.exists() or stamp.read_text() != key:
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        for deb in files:
            if deb.name.split("_")[0] in DEBS:
                run(["dpkg-deb", "-x", str(deb), str(root)], what=f"extracting {deb.name}")
        stamp.write_text(key)
    python = root / "usr" / "bin" / "python3.11"
    if not python.exists():
        raise SetupError(
            f"{python} missing after extracting the .debs in {debs}; delete that folder and retry"
        )
    return root


def wheel() -> Path:
    """Cross-compile the aarch64 wheel into ``dist/`` with the CMake toolchain file.

    Returns:
        The wheel's path.

    Raises:
        SetupError: When the build fails or does not produce a ``linux_aarch64`` wheel.
    """
    require_tools(qemu=False)
    root = sysroot()
    dist = ROOT / "dist"
    dist.mkdir(exist_ok=True)
    for old in dist.glob("edgefuse-*-linux_aarch64.whl"):
        old.unlink()
    t0 = time.perf_counter()
    env = {
        "CMAKE_TOOLCHAIN_FILE": str(TOOLCHAIN),
        "EDGEFUSE_ARM_SYSROOT": str(root),
        "_PYTHON_HOST_PLATFORM": "linux-aarch64",  # scikit-build-core's wheel tag: linux_aarch64
        "SETUPTOOLS_EXT_SUFFIX": EXT_SUFFIX,
        "EDGEFUSE_NATIVE": "OFF",  # portable: no -march=native
    }
    cmd = [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-w", str(dist)]
    cmd += ["-Cbuild-dir=build/cp311-cp311-linux_aarch64"]
    run(cmd, env=env, what="cross build of the aarch64 wheel", timeout=900)
    found = sorted(dist.glob("edgefuse-*-cp311-cp311-linux_aarch64.whl"))
    if not found:
        raise SetupError(f"the build wrote no edgefuse-*-cp311-cp311-linux_aarch64.whl into {dist}")
    whl = found[-1]
    import zipfile

    with zipfile.ZipFile(whl) as z:
        sos = [n for n in z.namelist() if n.endswith(".so")]
    if sos != [f"edgefuse/_fusion{EXT_SUFFIX}"]:
        raise SetupError(f"{whl.name} holds {sos}; expected exactly edgefuse/_fusion{EXT_SUFFIX}")
    say(f"built {whl.relative_to(ROOT)} in {time.perf_counter() - t0:.0f} s")
    return whl


def _pip_target(target: Path, reqs: list[str], *, constraints: Path | None, what: str) -> None:
    """Install aarch64 wheels into ``target``: offline from the cache first, else download into it.

    Args:
        target: The ``--target`` folder.
        reqs: Requirements (or wheel paths).
        constraints: A constraints file, or ``None``.
        what: What is installed (for errors).
    """
    wheels = USER_CACHE / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    plat = [arg for p in PLATFORMS for arg in ("--platform", p)]
    common = ["--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp", *plat]
    if constraints is not None:
        common += ["-c", str(constraints)]
    shutil.rmtree(target, ignore_errors=True)
    install = [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(target), *common]
    try:
        run([*install, "--no-index", "--find-links", str(wheels), *reqs], what=f"{what} (offline)")
        return
    except SetupError:
        say(f"downloading aarch64 wheels for {what} into {wheels}")
    download = [sys.executable, "-m", "pip", "download", "--quiet", "-d", str(wheels), *common, *reqs]
    run(download, what=f"pip download of the aarch64 wheels for {what} (needs PyPI)", timeout=900)
    shutil.rmtree(target, ignore_errors=True)
    run([*install, "--no-index", "--find-links", str(wheels), *reqs], what=what)


def site(whl: Path) -> tuple[Path, Path]:
    """Install the wheel with its runtime extras only, and the kernel tests' tools, for aarch64.

    Args:
        whl: The aarch64 wheel.

    Returns:
        ``(runtime site, test tools site)``.

    Raises:
        SetupError: When torch or onnx ended up in the runtime site.
    """
    constraints = WORK / "constraints.txt"
    constraints.parent.mkdir(parents=True, exist_ok=True)
    constraints.write_text(f"onnxruntime=={ONNXRUNTIME_UNDER_QEMU}\n")
    runtime = WORK / "site"
    _pip_target(
        runtime, [f"{whl}[onnxruntime,litert]"], constraints=constraints, what="edgefuse[onnxruntime,litert]"
    )
    heavy = [p.name for p in runtime.iterdir() if p.name.split("-")[0] in {"torch", "onnx", "coremltools"}]
    if heavy:
        raise SetupError(
            f"the runtime extras pulled {heavy} into {runtime}: the device install must stay light"
        )
    tools = WORK / "testsite"
    _pip_target(tools, list(TEST_TOOLS), constraints=None, what="pytest + hypothesis")
    return runtime, tools


def fake_cpuinfo(cpu: str) -> Path:
    """Write an ARM ``/proc/cpuinfo`` for ``cpu`` (one core per host CPU) and return its path.

    Args:
        cpu: A key of :data:`CPUINFO`.

    Returns:
        The file.
    """
    part, variant, revision, features = CPUINFO[cpu]
    blocks = [
        f"processor\t: {i}\nBogoMIPS\t: 50.00\nFeatures\t: {features}\nCPU implementer\t: 0x41\n"
        f"CPU architecture: 8\nCPU variant\t: {variant}\nCPU part\t: {part}\nCPU revision\t: {revision}\n"
        for i in range(os.cpu_count() or 1)
    ]
    path = WORK / f"cpuinfo-{cpu}"
    path.write_text("\n".join(blocks) + "\n")
    return path


def require_namespace() -> None:
    """Check that a private mount namespace can show the guest an ARM ``/proc/cpuinfo``.

    Raises:
        SetupError: Not root, or ``unshare``/``mount`` missing (util-linux / mount packages).
    """
    if os.geteuid() != 0:
        raise SetupError(
            "the emulated checks bind-mount an ARM /proc/cpuinfo in a private mount namespace (qemu 7.2 shows "
            "the guest the host's x86 one, on which onnxruntime >= 1.28 and LiteRT 2.x crash): run as root"
        )
    for tool, pkg in (("unshare", "util-linux"), ("mount", "mount")):
        if shutil.which(tool) is None:
            raise SetupError(f"missing {tool}: apt-get install -y {pkg}")


def qemu(root: Path, args: list[str], *, cpu: str, pythonpath: list[Path], timeout: float) -> int:
    """Run the aarch64 Python under qemu-aarch64-static with an ARM ``/proc/cpuinfo``, streaming its output.

    Args:
        root: The sysroot (``QEMU_LD_PREFIX``).
        args: Arguments for the aarch64 ``python3.11``.
        cpu: ``QEMU_CPU`` model.
        pythonpath: Folders for ``PYTHONPATH``.
        timeout: Seconds before it is killed.

    Returns:
        Its exit code.
    """
    python = root / "usr" / "bin" / "python3.11"
    # The guest cannot execve an aarch64 binary itself (no binfmt_misc here): children of sys.executable
    # (e.g. `python -m edgefuse run`) go through this host-side wrapper, which on_device.py installs.
    wrapper = WORK / "bin" / "python3.11-aarch64"
    wrapper.parent.mkdir(parents=True, exist_ok=True)
    wrapper.write_text(f'#!/bin/sh\nexec qemu-aarch64-static "{python}" "$@"\n')
    wrapper.chmod(0o755)
    env = {
        **os.environ,
        "QEMU_LD_PREFIX": str(root),
        "QEMU_CPU": cpu,
        "PYTHONPATH": os.pathsep.join(map(str, pythonpath)),
        "PYTHONNOUSERSITE": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "EDGEFUSE_EMULATED": f"qemu-aarch64 {cpu}",  # bench refuses to call these timings latency
        "EDGEFUSE_ARM_PYTHON": str(wrapper),
    }
    env.pop("VIRTUAL_ENV", None)
    script = 'mount --bind "$1" /proc/cpuinfo && shift && exec "$@"'
    cmd = [
        "unshare",
        "-m",
        "sh",
        "-c",
        script,
        "sh",
        str(fake_cpuinfo(cpu)),
        "qemu-aarch64-static",
        str(python),
    ]
    try:
        return subprocess.run([*cmd, *args], env=env, cwd=ROOT, timeout=timeout, check=False).returncode
    except subprocess.TimeoutExpired:
        say(f"timed out after {timeout:.0f} s: {' '.join(args)}")
        return 124


def recording() -> Path | None:
    """A spoken-digit WAV: FSDD's first recording when present, else a generated tone burst.

    Returns:
        The WAV path.
    """
    fsdd = Path(os.environ.get("EDGEFUSE_FSDD", ROOT.parent / "shared" / "data" / "fsdd")) / "recordings"
    found = sorted(fsdd.glob("*.wav")) if fsdd.is_dir() else []
    if found:
        return found[0]
    import math
    import struct
    import wave

    path = WORK / "tone.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        frames = (
            int(8000 * math.sin(2 * math.pi * 440 * t / 8000) * math.exp(-t / 3000)) for t in range(6000)
        )
        w.writeframes(b"".join(struct.pack("<h", f) for f in frames))
    return path


def table(rows: list[dict]) -> str:
    """Render the per-profile x format x precision table.

    Args:
        rows: The JSON rows of on_device.py.

    Returns:
        The table as text.
    """
    head = f"{'profile':26} {'format':7} {'prec':5} {'backend':12} {'qemu cpu':11} {'verify':7} {'max |Δ| vs x86':>15} {'tol (atol+rtol|x|)':>19} {'run --wav':10}"
    lines = [head, "-" * len(head)]
    for r in rows:
        tol = f"{r.get('atol', float('nan')):g}+{r.get('rtol', float('nan')):g}"
        wav = str(r.get("run_wav", r.get("error", "")))[:40]
        verdict = "passed" if r.get("verify") else "FAILED"
        delta = f"{r.get('max_delta', float('nan')):.3g}" + ("" if r.get("within_tolerance") else " !")
        lines.append(
            f"{r['profile']:26} {r['format']:7} {r['precision']:5} {r['backend']:12} {r.get('cpu', ''):11} "
            f"{verdict:7} {delta:>15} {tol:>19} {wav:10}"
        )
    return "\n".join(lines)


def test(*, full: bool) -> int:
    """The whole flow: wheel, sysroot, aarch64 site, x86 artifacts, kernel tests and artifact checks.

    Args:
        full: Every ARM profile (``make test-arm``); else the reduced set (inside ``make test``).

    Returns:
        Exit code (0 when everything passed).
    """
    t0 = time.perf_counter()
    require_tools(qemu=True)
    require_namespace()
    whl = wheel()
    root = sysroot()
    runtime, tools = site(whl)
    say(f"aarch64 site ready ({time.perf_counter() - t0:.0f} s): {runtime}")
    art = WORK / ("artifacts-full" if full else "artifacts")
    x86 = [sys.executable, str(ROOT / "tools" / "arm" / "x86_side.py"), "--out", str(art)]
    run([*x86, *(["--full"] if full else [])], what="x86-64 exports and reference outputs", timeout=900)
    say(f"x86 artifacts ready ({time.perf_counter() - t0:.0f} s)")

    failures = []
    say(f"kernel tests (tests/csrc) under qemu-aarch64 -cpu {BASELINE_CPU}")
    code = qemu(
        root,
        ["-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", "tests/csrc"],
        cpu=BASELINE_CPU,
        pythonpath=[runtime, tools],
        timeout=900,
    )
    if code != 0:
        failures.append(f"tests/csrc under qemu exited {code}")
    plan = json.loads((art / "plan.json").read_text())["artifacts"]
    by_cpu: dict[str, list[str]] = {}
    for entry in plan:
        by_cpu.setdefault(CPU_OF.get(entry["profile"], BASELINE_CPU), []).append(entry["profile"])
    rows: list[dict] = []
    wav = recording()
    for cpu, profiles in by_cpu.items():
        out = WORK / f"rows-{cpu}.json"
        out.unlink(missing_ok=True)
        args = [str(ROOT / "tools" / "arm" / "on_device.py"), "--root", str(art), "--json", str(out)]
        args += ["--only", ",".join(sorted(set(profiles)))] + (["--wav", str(wav)] if wav else [])
        say(f"artifact checks under qemu-aarch64 -cpu {cpu}: {', '.join(sorted(set(profiles)))}")
        code = qemu(root, args, cpu=cpu, pythonpath=[runtime], timeout=900)
        got = json.loads(out.read_text()) if out.exists() else []
        rows += [{**r, "cpu": cpu} for r in got]
        if code != 0:
            failures.append(f"artifact checks on {cpu} exited {code}")
    rows.sort(key=lambda r: (r["profile"], r["format"], r["precision"]))
    print("\naarch64 (emulated: qemu-aarch64 user mode) vs x86-64, per ARM profile and format:")
    print(table(rows))
    (WORK / "report.json").write_text(json.dumps(rows, indent=1))
    expected = len(plan)
    if len(rows) != expected:
        failures.append(f"{len(rows)} of {expected} artifacts reported")
    say(
        f"{'FAILED: ' + '; '.join(failures) if failures else 'all passed'} in {time.perf_counter() - t0:.0f} s"
    )
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    """Entry point.

    Args:
        argv: ``wheel`` or ``test [--full]``.

    Returns:
        Exit code.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("wheel", help="cross-compile dist/edgefuse-*-linux_aarch64.whl")
    t = sub.add_parser("test", help="build, set up and run the aarch64 checks under qemu")
    t.add_argument("--full", action="store_true", help="every ARM profile x format x precision")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "wheel":
            wheel()
            return 0
        return test(full=args.full)
    except SetupError as exc:
        print(f"[arm] error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
