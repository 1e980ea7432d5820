"""Every output DVC does not cache reaches a clone through git (issue 19, item 12).

An output with ``cache: false`` is in no DVC remote: if git ignored it too, a teammate's clone
would lack it after ``dvc pull`` and ``dvc status`` would say its stage (and the stages that
read it, as forecast reads reports/registered.json) changed.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def uncached_outputs() -> list[str]:
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    found = []
    for stage in stages.values():
        for kind in ("outs", "metrics", "plots"):
            for entry in stage.get(kind) or []:
                if isinstance(entry, dict):
                    (path, opts), *_ = entry.items()
                    if opts and opts.get("cache") is False:
                        found.append(str(path))
    return found


def test_no_uncached_output_is_ignored_by_git() -> None:
    outs = uncached_outputs()
    assert "reports/registered.json" in outs
    proc = subprocess.run(
        ["git", "check-ignore", "--no-index", *outs], cwd=REPO, capture_output=True, text=True
    )
    assert proc.stdout.split() == [], f"cache: false but git-ignored, so no clone gets them: {proc.stdout}"
