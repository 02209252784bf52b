"""Hostile program checkpoints: a forged torch.export graph never reaches torch's deserializer.

torch's own loader unpickles constants, ``sympify``s (evaluates) shape expressions and compiles
``guards_code``; EdgeFuse stores graph JSON only and checks it first. Each case forges a private copy the
way an attacker controlling the whole folder would (recomputing every recorded hash), then loads it in
its own process under a memory limit and a timeout.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _harness import expect_error, expect_ok

pytestmark = pytest.mark.backend("torch")

LOAD = "from edgefuse.checkpoint import load_checkpoint; load_checkpoint({folder!r})\n"
PWNED = "import os; os.environ.get('X')"


def forge_program(folder: Path, graph: str, change: Callable[[dict[str, Any]], None]) -> None:
    """Edit ``programs/<graph>.json`` and record its new sha256 and size in model.json."""
    path = folder / "programs" / f"{graph}.json"
    data = json.loads(path.read_text())
    change(data)
    raw = json.dumps(data).encode()
    path.write_bytes(raw)
    info = json.loads((folder / "model.json").read_text())
    info["programs"][graph].update(sha256=hashlib.sha256(raw).hexdigest(), size=len(raw))
    (folder / "model.json").write_text(json.dumps(info))


def nodes(data: dict[str, Any]) -> list[dict[str, Any]]:
    return data["graph_module"]["graph"]["nodes"]


def test_pristine_program_checkpoint_loads_and_predicts(program_copy: Path) -> None:
    res = expect_ok(
        f"import edgefuse, numpy as np; s = edgefuse.load({str(program_copy)!r}); r = s.verify()\n"
        "RESULT['ok'] = r.passed; RESULT['n'] = len(s.predict({'audio': np.ones((3, 1, 8, 12), np.float32)}).labels)\n"
    )
    assert res.result == {"ok": True, "n": 3}


def test_a_node_calling_a_python_function_is_refused(program_copy: Path) -> None:
    forge_program(program_copy, "head", lambda d: nodes(d)[0].update(target="builtins.eval"))
    expect_error(
        LOAD.format(folder=str(program_copy)), "CheckpointError", "builtins.eval", "not an aten operator"
    )


@pytest.mark.parametrize("target", ["_operator.attrgetter", "torch.ops.higher_order.cond", "#ext:op"])
def test_operator_gadgets_and_higher_order_ops_are_refused(program_copy: Path, target: str) -> None:
    forge_program(program_copy, "encoder_image", lambda d: nodes(d)[-1].update(target=target))
    expect_error(LOAD.format(folder=str(program_copy)), "CheckpointError", target, "encoder_image.json")


def test_shape_expressions_cannot_run_code(program_copy: Path) -> None:
    def evil(d: dict[str, Any]) -> None:
        found = []

        def walk(x: Any) -> None:
            if isinstance(x, dict):
                if "expr_str" in x:
                    found.append(x)
                for v in x.values():
                    walk(v)
            elif isinstance(x, list):
                for v in x:
                    walk(v)

        walk(d)
        assert found, "the program has no symbolic size to forge"
        found[0]["expr_str"] = f"__import__('os').system('touch {program_copy}/pwned')"

    forge_program(program_copy, "encoder_audio", evil)
    expect_error(LOAD.format(folder=str(program_copy)), "CheckpointError", "shape expression", "__import__")
    assert not (program_copy / "pwned").exists()


def test_guards_code_is_refused(program_copy: Path) -> None:
    forge_program(program_copy, "head", lambda d: d.update(guards_code=[PWNED]))
    expect_error(LOAD.format(folder=str(program_copy)), "CheckpointError", "guards_code")


def test_custom_objects_are_refused(program_copy: Path) -> None:
    def smuggle(d: dict[str, Any]) -> None:
        d["graph_module"]["graph"]["custom_obj_values"] = {"obj": {"name": "x", "class_fqn": "os.system"}}

    forge_program(program_copy, "encoder_image", smuggle)
    expect_error(LOAD.format(folder=str(program_copy)), "CheckpointError", "custom objects", "unpickled")


def test_a_modified_program_file_is_caught_by_its_hash(program_copy: Path) -> None:
    path = program_copy / "programs" / "head.json"
    path.write_bytes(path.read_bytes().replace(b"aten.relu", b"aten.tanh"))
    expect_error(LOAD.format(folder=str(program_copy)), "CheckpointError", "head.json", "was modified")


def test_program_paths_outside_the_folder_are_refused(program_copy: Path) -> None:
    info = json.loads((program_copy / "model.json").read_text())
    info["programs"]["head"]["file"] = "../../etc/passwd"
    (program_copy / "model.json").write_text(json.dumps(info))
    expect_error(
        LOAD.format(folder=str(program_copy)), "CheckpointError", "programs['head']", "programs/head.json"
    )


def test_weights_that_do_not_match_the_program_are_named(program_copy: Path) -> None:
    def widen(d: dict[str, Any]) -> None:
        values = d["graph_module"]["graph"]["tensor_values"]
        for spec in d["graph_module"]["signature"]["input_specs"]:
            if spec.get("parameter"):
                values[spec["parameter"]["arg"]["name"]]["sizes"][0] = {"as_int": 1 << 40}
                return

    forge_program(program_copy, "head", widen)
    expect_error(LOAD.format(folder=str(program_copy)), "CheckpointError", "wrong shapes", "head.")


def test_a_recorded_factory_is_never_imported_without_trust_code(program_copy: Path, tmp_path: Path) -> None:
    (tmp_path / "evil_factory.py").write_text(f"open({str(tmp_path / 'imported')!r}, 'w').close()\n")
    info = json.loads((program_copy / "model.json").read_text())
    info["factory"] = {"callable": "evil_factory:build", "kwargs": {}}
    (program_copy / "model.json").write_text(json.dumps(info))
    res = expect_ok(
        f"import sys; sys.path.insert(0, {str(tmp_path)!r})\n"
        f"from edgefuse.checkpoint import load_checkpoint; c = load_checkpoint({str(program_copy)!r})\n"
        "RESULT['trainable'] = c.trainable\n"
    )
    assert res.result == {"trainable": False}
    assert not (tmp_path / "imported").exists()
    expect_error(
        f"import sys; sys.path.insert(0, {str(tmp_path)!r})\n"
        f"from edgefuse.checkpoint import load_checkpoint; load_checkpoint({str(program_copy)!r}, trust_code=True)\n",
        "FactoryError",
        "evil_factory",
        "has no attribute",
    )
