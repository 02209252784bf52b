"""How the hostile-artifact cases tamper with an artifact folder, as a forger who controls its files would.

Shared by test_artifact_hostile.py and test_gated_hostile.py: the scripts a case runs in its child
interpreter (:data:`LOAD`, :data:`PREDICT`, formatted with ``folder=``) and manifest edits that keep or
re-record the file hashes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

LOAD = "import edgefuse; s = edgefuse.load({folder!r})\n"
PREDICT = (
    LOAD
    + "import numpy as np\n"
    + "x = {{'audio': np.ones((2, 1, 8, 12), np.float32), 'image': np.ones((2, 1, 8, 8), np.float32)}}\n"
    + "p = s.predict(x); RESULT['finite'] = bool(np.isfinite(p.logits).all())\n"
)


def manifest(folder: Path) -> dict[str, Any]:
    """The folder's manifest.json, parsed."""
    return json.loads((folder / "manifest.json").read_text())


def write_manifest(folder: Path, data: dict[str, Any]) -> None:
    """Replace the folder's manifest.json with ``data``."""
    (folder / "manifest.json").write_text(json.dumps(data))


def edit(folder: Path, change: Callable[[dict[str, Any]], None]) -> None:
    """Apply ``change`` to the parsed manifest and write it back."""
    data = manifest(folder)
    change(data)
    write_manifest(folder, data)


def rehash(folder: Path, rel: str, *, target: Path | None = None) -> None:
    """Record the current size and sha256 of ``rel`` (read from ``target`` when given) in the manifest."""
    raw = (target or folder / rel).read_bytes()

    def change(data: dict[str, Any]) -> None:
        for entry in data["files"]:
            if entry["path"] == rel:
                entry["sha256"], entry["size"] = hashlib.sha256(raw).hexdigest(), len(raw)

    edit(folder, change)
