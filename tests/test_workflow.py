"""The book's GitHub Actions workflow: valid, and building with the README's command."""

import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "book.yml"


def test_workflow_is_valid_for_github_actions():
    # check-jsonschema ships SchemaStore's GitHub-workflow schema: no download at test time
    done = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema",
                           "vendor.github-workflows", str(WORKFLOW)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_workflow_builds_with_the_readmes_command_caches_runs_and_deploys():
    readme = (ROOT / "README.md").read_text().split("## Set-up", 1)[1].split("\n## ", 1)[0]
    build_command = re.findall(r"```bash\n(.+?)\n```", readme)[0]
    jobs = yaml.safe_load(WORKFLOW.read_text())["jobs"]
    steps = jobs["build"]["steps"]
    assert [s["run"] for s in steps if "run" in s] == [build_command]
    cache = next(s for s in steps if s.get("uses", "").startswith("actions/cache@"))
    assert set(cache["with"]["path"].split()) == {"data/prepared", "runs", "_build/vendor"}
    # the package (profiles included), its metadata, the notebooks and the shipped runs
    for part in ("pggan_core/**", "pyproject.toml", "notebooks/**", "data/pretrained/**"):
        assert part in cache["with"]["key"], part
    upload = next(s for s in steps if s.get("uses", "").startswith(
        "actions/upload-pages-artifact@"))
    assert upload["with"]["path"] == "_build/demo/html"
    assert jobs["deploy"]["steps"][0]["uses"].startswith("actions/deploy-pages@")
    assert jobs["deploy"]["permissions"] == {"pages": "write", "id-token": "write"}
