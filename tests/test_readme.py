"""Every command of the README's console block runs as written (from a copy of the repository root)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```console\n(.*?)```", text, re.S)
    assert blocks, "the README has no console block"
    return [line[2:] for block in blocks for line in block.splitlines() if line.startswith("$ ")]


def test_readme_commands_run_as_written(tmp_path: Path) -> None:
    for name in ("examples", "policies", "tests"):
        (tmp_path / name).symlink_to(ROOT / name)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENFORCER_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    cmds = commands()
    assert len(cmds) >= 10
    outputs = {}
    for cmd in cmds:
        res = subprocess.run(
            ["bash", "-c", cmd], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
        )
        assert res.returncode == 0, f"{cmd}\n{res.stdout}\n{res.stderr}"
        assert "Traceback" not in res.stderr, cmd
        outputs[cmd] = res.stdout
    allowed = next(v for k, v in outputs.items() if k.endswith("runinstances-p5.json"))
    assert '"effect": "allow"' in allowed
    assert "denied: exit 3" in next(v for k, v in outputs.items() if "runinstances-p5-cn.json" in k)
    assert (tmp_path / "report.html").exists() and (tmp_path / "decisions.jsonl").exists()
    assert list((tmp_path / "scp").glob("*.json"))
