"""Imports point one way: model/ ← training/, model/ ← serving/, and only cli/ sees both.

Every import counts, also those inside functions (ast.walk visits them all)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _imports(package: str) -> set[str]:
    found = set()
    for path in (REPO / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return found


def test_model_imports_neither_torch_nor_the_other_layers():
    assert not _imports("model") & {"torch", "transformers", "training", "serving", "cli",
                                    "fastapi"}


def test_training_and_serving_never_import_each_other_or_the_command_line():
    assert not _imports("training") & {"serving", "cli"}
    assert not _imports("serving") & {"training", "cli", "torch", "transformers"}


def test_importing_the_router_does_not_load_torch():
    code = "import sys, model.router, model.index; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         check=True)
    assert out.stdout.strip() == "False"
