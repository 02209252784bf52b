"""A save or an export killed with SIGKILL at any moment leaves the complete old or the complete new output.

The kill -9 tests run a *zygote*: one interpreter that imports torch and EdgeFuse once, warms up, then
forks a child per kill. Each child first saves once (the "next run" after the previous kill: it must have
removed what the killed child left behind), prints ``ready``, then loops over saves that alternate two
outputs A and B (each replacing the other), printing ``start X`` / ``saved X`` around each. The test
kills it with SIGKILL at a moment drawn uniformly over one save cycle after ``ready``, then checks that
the path holds a complete output whose content is exactly A's or B's, and counts which (the one before
the interrupted save: *old*; the one being saved: *new*).

A third kill test runs ``save_checkpoint`` with the two-rename fallback (no ``RENAME_EXCHANGE``): a kill
between its renames leaves the target missing until the recovery step runs, after which the same check
holds. The deterministic tests cover that fallback (a crash between its two renames, then the recovery
step of the next run; a failure between them), the exchange path, and the recovery rules themselves.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import queue
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from edgefuse import outputs

KILLS = {"checkpoint": 100, "artifact": 60, "fallback": 60}
LINE_TIMEOUT_S = 60

ZYGOTE = textwrap.dedent(
    """
    import hashlib, json, os, sys, time, traceback
    from pathlib import Path

    import torch

    torch.set_num_threads(1)
    from edgefuse.checkpoint import save_checkpoint
    from edgefuse.models.contract import build_model
    from edgefuse.models.reference import reference_architecture
    from edgefuse.specs import ModalitySpec

    kind, root = sys.argv[1], Path(sys.argv[2])
    specs = (ModalitySpec("image", (1, 8, 8)),)
    if sys.argv[3] == "fallback":
        from edgefuse import outputs

        outputs.USE_RENAME_EXCHANGE = False


    def say(line):
        os.write(1, (line + "\\n").encode())


    def model(seed, dim):
        torch.manual_seed(seed)
        return build_model(reference_architecture(specs, dim), specs, ["a", "b"]).eval()


    def sha_of(folder):
        return json.loads((folder / "model.json").read_text())["weights_sha256"]


    if kind == "checkpoint":
        models = {"A": model(1, 64), "B": model(2, 64)}  # ~300 KB of weights: the write takes a while
        target = root / "ckpt"

        def save(name):
            save_checkpoint(models[name], target, overwrite=True, seed=ord(name))

        save("A")
        shas = {"A": sha_of(target)}
        save("B")
        shas["B"] = sha_of(target)
    else:
        from edgefuse.export import export
        from edgefuse.export.formats.onnx import OnnxExporter

        OnnxExporter.__init__.__defaults__ = ("legacy",)  # the swap is under test, not the converter: fast
        inputs = {n: save_checkpoint(model(s, 8), root / "inputs" / n) for n, s in (("A", 1), ("B", 2))}
        shas = {n: sha_of(p) for n, p in inputs.items()}
        target = root / "out" / "art"

        def save(name):
            export(inputs[name], "generic/dashcam", "onnx", target, overwrite=True, precision="fp32")

    times = []
    for name in ("A", "B", "A", "B"):
        t0 = time.perf_counter()
        save(name)
        times.append(time.perf_counter() - t0)
    cycle = sum(times[2:]) / 2
    say("zygote " + json.dumps({"cycle": cycle, "shas": shas, "current": "B", "target": str(target)}))

    for command in sys.stdin:
        verb, first = command.split()
        pid = os.fork()
        if pid == 0:  # the child: never returns into the zygote's loop
            code = 0
            try:
                zygote, deadline, name = os.getppid(), time.monotonic() + 60, first
                say(f"start {name}")
                t0 = time.perf_counter()
                save(name)
                say(f"saved {name}")
                say(f"ready {time.perf_counter() - t0}")
                while verb == "fork" and time.monotonic() < deadline and os.getppid() == zygote:
                    name = "B" if name == "A" else "A"
                    say(f"start {name}")
                    save(name)
                    say(f"saved {name}")
            except BaseException:
                say("error " + json.dumps(traceback.format_exc()))
                code = 1
            finally:
                os._exit(code)
        say(f"child {pid}")
        _, status = os.waitpid(pid, 0)
        say(f"dead {pid} {status}")
    """
)


class _Zygote:
    """The zygote process and a line reader that never blocks the test for longer than a timeout."""

    def __init__(self, kind: str, root: Path, mode: str) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1"}
        self.stderr = (root / "zygote.stderr").open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", ZYGOTE, kind, str(root), mode],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
            env=env,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.root = root
        threading.Thread(target=self._read, daemon=True).start()
        self.child: int | None = None

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def line(self) -> str:
        try:
            line = self.lines.get(timeout=LINE_TIMEOUT_S)
        except queue.Empty:
            pytest.fail(f"no output from the zygote/child within {LINE_TIMEOUT_S} s\n{self.stderr_tail()}")
        if line is None:
            pytest.fail(f"the zygote exited (rc {self.proc.poll()})\n{self.stderr_tail()}")
        if line.startswith("error "):
            pytest.fail(f"a save failed in the child:\n{json.loads(line[6:])}")
        return line

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def stderr_tail(self) -> str:
        self.stderr.flush()
        return (self.root / "zygote.stderr").read_text()[-3000:]

    def close(self) -> None:
        if self.child is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.child, signal.SIGKILL)
        with contextlib.suppress(OSError):
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.stderr.close()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _checkpoint_content(folder: Path, names: dict[str, str]) -> str:
    """The name (A/B) of the complete checkpoint at ``folder``; fails on anything else."""
    assert sorted(os.listdir(folder)) == ["model.json", "model.safetensors"], os.listdir(folder)
    info = json.loads((folder / "model.json").read_text())
    assert info["format"] == "edgefuse-checkpoint"
    digest = _sha256(folder / "model.safetensors")
    assert digest == info["weights_sha256"], "model.json and the weights are from different saves"
    assert digest in names, "the weights are neither A's nor B's"
    assert info["seed"] == ord(names[digest])
    return names[digest]


def _artifact_content(folder: Path, names: dict[str, str]) -> str:
    """The name (A/B) of the checkpoint the complete artifact at ``folder`` was exported from."""
    from edgefuse.manifest import read_manifest

    manifest = read_manifest(folder)
    manifest.verify_files()  # every listed file is there with its recorded sha256 and size
    listed = {"manifest.json"} | {Path(f["path"]).parts[0] for f in manifest.data["files"]}
    assert set(os.listdir(folder)) == listed, sorted(os.listdir(folder))
    digest = manifest.data["checkpoint"]["weights_sha256"]
    assert digest in names, "the artifact was exported from neither A nor B"
    return names[digest]


def _pids(names: list[str]) -> set[int]:
    return {int(n.rsplit("-", 2)[1]) for n in names}


def _kill_loop(kind: str, root: Path, kills: int, mode: str = "exchange") -> dict[str, int]:
    """Kill ``kills`` children at random moments; return how often the output was the old/new one.

    With ``mode="fallback"`` the two-rename swap is used: a kill between its renames leaves the target
    missing until the recovery step runs (counted as ``rolled_back``); the check then follows it.
    """
    rng = random.Random(int.from_bytes(os.urandom(4), "little"))
    zygote = _Zygote(kind, root, mode)
    stats = {"kills": 0, "old": 0, "new": 0, "between_saves": 0, "left_leftovers": 0, "rolled_back": 0}
    try:
        first = zygote.line()
        assert first.startswith("zygote "), first
        setup = json.loads(first[len("zygote ") :])
        cycle, current, target = setup["cycle"], setup["current"], Path(setup["target"])
        names = {sha: name for name, sha in setup["shas"].items()}
        content = _checkpoint_content if kind == "checkpoint" else _artifact_content
        stats["cycle_ms"] = round(cycle * 1000, 1)
        for i in range(kills + 1):
            last = i == kills  # the last child only saves once: the "next run" after the last kill
            zygote.send(f"{'once' if last else 'fork'} {'A' if current == 'B' else 'B'}")
            # the zygote's "child <pid>" and the child's own lines may come in either order
            pid, ready, events = None, False, []
            while pid is None or not ready:
                line = zygote.line()
                if line.startswith("child "):
                    zygote.child = pid = int(line.split()[1])
                elif line.startswith("ready "):
                    ready, first_save = True, float(line.split()[1])
                else:
                    events.append(line)
            # the child's first save was the next run after the previous kill: nothing stale remains
            stale = _pids(outputs.leftovers(target.parent)) - {pid}
            assert not stale, (
                f"leftovers of dead processes after the next run: {outputs.leftovers(target.parent)}"
            )
            if not last:  # uniform over one save cycle (in a fresh child, as long as its first save took)
                time.sleep(rng.uniform(0.0, max(cycle, first_save)))
                os.kill(pid, signal.SIGKILL)
            while not (line := zygote.line()).startswith("dead "):
                events.append(line)
            zygote.child = None
            status = int(line.split()[2])
            if last:
                assert os.WIFEXITED(status), status
                assert os.WEXITSTATUS(status) == 0, status
                assert outputs.leftovers(target.parent) == []
                assert content(target, names) == events[-1].split()[1]
                break
            assert os.WIFSIGNALED(status), status
            assert os.WTERMSIG(status) == signal.SIGKILL, status
            stats["kills"] += 1
            if mode == "fallback" and not os.path.lexists(target):  # killed between the two renames
                assert outputs.recover(target.parent), "the recovery step did not roll back"
                stats["rolled_back"] += 1
            got = content(target, names)  # complete, and exactly A or B
            kind_of_event, name = events[-1].split()
            if kind_of_event == "start":  # killed during a save: the old or the new output, nothing else
                before = "A" if name == "B" else "B"
                assert got in (before, name)
                stats["old" if got == before else "new"] += 1
            else:  # killed between two saves: the last one saved
                assert got == name
                stats["between_saves"] += 1
            stats["left_leftovers"] += bool(outputs.leftovers(target.parent))
            current = got
        return stats
    finally:
        zygote.close()


@pytest.mark.slow
def test_kill9_during_save_checkpoint(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    t0 = time.perf_counter()
    stats = _kill_loop("checkpoint", tmp_path, KILLS["checkpoint"])
    print(f"\nkill -9 save_checkpoint: {stats} in {time.perf_counter() - t0:.1f} s")
    assert stats["kills"] == KILLS["checkpoint"]


@pytest.mark.slow
def test_kill9_during_save_checkpoint_with_the_fallback_swap(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    t0 = time.perf_counter()
    stats = _kill_loop("checkpoint", tmp_path, KILLS["fallback"], mode="fallback")
    print(f"\nkill -9 save_checkpoint (two-rename fallback): {stats} in {time.perf_counter() - t0:.1f} s")
    assert stats["kills"] == KILLS["fallback"]


@pytest.mark.slow
def test_kill9_during_export(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    t0 = time.perf_counter()
    stats = _kill_loop("artifact", tmp_path, KILLS["artifact"])
    print(f"\nkill -9 export: {stats} in {time.perf_counter() - t0:.1f} s")
    assert stats["kills"] == KILLS["artifact"]


# ---- the two-rename fallback and the recovery step (deterministic) ------------------------------------

_FAKE = textwrap.dedent(
    """
    import hashlib, json, sys
    from pathlib import Path


    def write_fake(folder, tag):
        weights = (tag * 1000).encode()
        (folder / "model.safetensors").write_bytes(weights)
        info = {"format": "edgefuse-checkpoint", "tag": tag, "weights_sha256": hashlib.sha256(weights).hexdigest()}
        (folder / "model.json").write_text(json.dumps(info))
    """
)

_CRASH_BETWEEN_RENAMES = _FAKE + textwrap.dedent(
    """
    import os, signal
    from edgefuse import outputs

    outputs.USE_RENAME_EXCHANGE = False
    outputs._between_renames = lambda: os.kill(os.getpid(), signal.SIGKILL)
    with outputs.stage(Path(sys.argv[1]), outputs.CHECKPOINT, overwrite=True) as staging:
        write_fake(staging.path, sys.argv[2])
        staging.commit()
    """
)


def _write_fake(folder: Path, tag: str) -> Path:
    namespace: dict[str, object] = {}
    exec(_FAKE, namespace)  # the same writer the crashing child uses
    folder.mkdir(parents=True, exist_ok=True)
    namespace["write_fake"](folder, tag)  # type: ignore[operator]
    return folder


def _tag(folder: Path) -> str:
    info = json.loads((folder / "model.json").read_text())
    assert _sha256(folder / "model.safetensors") == info["weights_sha256"]
    return str(info["tag"])


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_crash_between_the_fallback_renames_is_rolled_back_by_the_next_run(tmp_path: Path) -> None:
    target = _write_fake(tmp_path / "ckpt", "A")
    proc = subprocess.run(
        [sys.executable, "-c", _CRASH_BETWEEN_RENAMES, str(target), "B"], capture_output=True, text=True
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    # the crash left the target missing, the complete old output under -old-, the new one under -tmp-
    assert not target.exists()
    left = outputs.leftovers(tmp_path)
    assert sorted(n.split(".edgefuse-")[1].split("-")[0] for n in left) == ["old", "tmp"], left
    old = next(tmp_path / n for n in left if ".edgefuse-old-" in n)
    assert _tag(old) == "A"
    # the next run in that parent folder (here: a checkpoint saved under another name) rolls back
    with outputs.stage(tmp_path / "other", outputs.CHECKPOINT, overwrite=False) as staging:
        _write_fake(staging.path, "C")
        staging.commit()
    assert _tag(target) == "A"
    assert _tag(tmp_path / "other") == "C"
    assert outputs.leftovers(tmp_path) == []


def test_fallback_swap_without_a_crash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")
    from edgefuse.checkpoint import load_checkpoint, save_checkpoint
    from edgefuse.models.contract import build_model
    from edgefuse.models.reference import reference_architecture
    from edgefuse.specs import ModalitySpec

    monkeypatch.setattr(outputs, "USE_RENAME_EXCHANGE", False)
    calls = []
    monkeypatch.setattr(outputs, "_between_renames", lambda: calls.append(1))
    specs = (ModalitySpec("image", (1, 8, 8)),)
    torch.manual_seed(0)
    model = build_model(reference_architecture(specs, 8), specs, ["a", "b"]).eval()
    save_checkpoint(model, tmp_path / "ckpt", seed=1)
    save_checkpoint(model, tmp_path / "ckpt", seed=2, overwrite=True)
    assert calls == [1]  # the two-rename path ran
    assert load_checkpoint(tmp_path / "ckpt").info["seed"] == 2
    assert outputs.leftovers(tmp_path) == []


def test_fallback_failure_between_the_renames_puts_the_old_output_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = _write_fake(tmp_path / "ckpt", "A")
    monkeypatch.setattr(outputs, "USE_RENAME_EXCHANGE", False)

    def fail() -> None:
        raise OSError("simulated I/O error between the renames")

    monkeypatch.setattr(outputs, "_between_renames", fail)
    with outputs.stage(target, outputs.CHECKPOINT, overwrite=True) as staging:
        _write_fake(staging.path, "B")
        with pytest.raises(OSError, match="simulated"):
            staging.commit()
    assert _tag(target) == "A"
    assert outputs.leftovers(tmp_path) == []


def test_exchange_is_one_atomic_step_where_available(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if outputs._renameat2 is None:
        pytest.skip("renameat2 is not available here (not Linux, or glibc < 2.28): the fallback is used")
    target = _write_fake(tmp_path / "ckpt", "A")

    def not_here() -> None:
        raise AssertionError("the two-rename fallback ran although RENAME_EXCHANGE is available")

    monkeypatch.setattr(outputs, "_between_renames", not_here)
    probe = tmp_path / "probe"
    probe.mkdir()
    try:
        outputs._renameat2_call(probe, target, outputs._RENAME_EXCHANGE)
    except outputs._UnsupportedError:
        pytest.skip("this filesystem does not support RENAME_EXCHANGE: the fallback is used")
    outputs._renameat2_call(probe, target, outputs._RENAME_EXCHANGE)  # swap back
    probe.rmdir()
    with outputs.stage(target, outputs.CHECKPOINT, overwrite=True) as staging:
        _write_fake(staging.path, "B")
        staging.commit()
    assert _tag(target) == "B"
    assert outputs.leftovers(tmp_path) == []


def test_recovery_rules(tmp_path: Path) -> None:
    dead, live = _dead_pid(), os.getpid()
    # a stale -old- whose target exists: deleted; a stale -tmp- (possibly the old output after an
    # exchange): deleted; live processes' folders and non-matching names: untouched
    _write_fake(tmp_path / "a", "NEW")
    _write_fake(tmp_path / f".a.edgefuse-old-{dead}-00aa", "OLD")
    _write_fake(tmp_path / f".a.edgefuse-tmp-{dead}-00bb", "OLD")
    _write_fake(tmp_path / f".b.edgefuse-tmp-{live}-00cc", "LIVE")
    _write_fake(tmp_path / f".b.edgefuse-old-{live}-00dd", "LIVE")
    _write_fake(tmp_path / f".c.edgefuse-tmp-{dead}-notes", "USER")  # not the pattern (random is hex)
    _write_fake(tmp_path / ".edgefuse-export-abc", "USER")
    (tmp_path / f"d.edgefuse-tmp-{dead}-00ee").mkdir()  # not hidden: not the pattern
    # a -tmp- of a live pid untouched for longer than STALE_AFTER_S (a reused pid): deleted
    aged = _write_fake(tmp_path / f".e.edgefuse-tmp-{live}-00ff", "AGED")
    old_time = time.time() - outputs.STALE_AFTER_S - 60
    os.utime(aged, (old_time, old_time))
    # two runs crashed between their renames with the target missing: the newest old output comes back
    first = _write_fake(tmp_path / f".f.edgefuse-old-{dead}-0001", "F1")
    second = _write_fake(tmp_path / f".f.edgefuse-old-{dead}-0002", "F2")
    os.utime(first, (old_time, old_time))
    done = outputs.recover(tmp_path)
    assert len(done) == 5, done
    assert _tag(tmp_path / "a") == "NEW"
    assert _tag(tmp_path / "f") == "F2"
    assert not second.exists()
    assert not first.exists()
    assert sorted(os.listdir(tmp_path)) == sorted(
        [
            "a",
            "f",
            f".b.edgefuse-tmp-{live}-00cc",
            f".b.edgefuse-old-{live}-00dd",
            f".c.edgefuse-tmp-{dead}-notes",
            ".edgefuse-export-abc",
            f"d.edgefuse-tmp-{dead}-00ee",
        ]
    )
