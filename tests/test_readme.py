"""The README works as written: the demo's printed sign-in details sign in, and the API
walkthrough (the block between the walkthrough markers) runs in bash against a served app
after the demo data is loaded, as a newcomer would paste it after ``scripts/run``."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.browser.conftest import LiveServer

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _cli_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASK_", "DATABASE_URL"))}
    return {**env, "APP_ENV": "development", "DATABASE_URL": database_url, "SECRET_KEY": "readme-test-secret",
            "MAIL_SERVER": "", **extra}


def _flask(database_url: str, *args: str) -> str:
    flask = Path(sys.executable).with_name("flask")
    result = subprocess.run([str(flask), "--app", "wsgi", *args], cwd=ROOT, env=_cli_env(database_url),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_readme_needs_nothing_outside_the_repository():
    assert "](../" not in README and "../shared" not in README and "SPEC.md" not in README
    for link in re.findall(r"\]\(([^)#]+)\)", README):
        if not link.startswith(("http://", "https://")):
            assert (ROOT / link).exists(), link


@pytest.mark.skipif(not shutil.which("curl") or not shutil.which("bash"), reason="needs curl and bash")
def test_demo_sign_ins_and_the_api_walkthrough_work(app, client, auth, database_url):
    printed = _flask(database_url, "seed-demo")
    pairs = set(re.findall(r"([\w.+-]+@example\.com) / (\S+)", printed))
    assert ("sam@example.com", "demo-staff-pass-2026") in pairs and len(pairs) >= 4
    assert ("ada.admin@example.com", "demo-admin-pass-2026") in pairs
    for email, password in sorted(pairs):
        response = auth.login(email, password)
        assert response.status_code == 302 and "/login" not in response.headers["Location"], email
        if email.startswith("ada.admin@"):  # the admin reaches what only admins may
            assert client.get("/crm/webhooks").status_code == 200
        client.post("/logout", data={"csrf_token": auth.csrf("/dashboard")})

    block = re.search(r"<!-- walkthrough:start -->\s*```sh\n(.*?)```", README, re.S).group(1)
    with LiveServer(app) as server:
        env = _cli_env(database_url, BASE=f"{server.url}/api/v1",
                       PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
        # .venv/bin/... as the README says: point it at this interpreter's environment.
        script = block.replace(".venv/bin/", f"{Path(sys.executable).parent}/")
        result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert re.search(r"^contact \d+$", out, re.M)
    assert "QUALIFIED" in out and '"user_id"' in out and '"status":"ONBOARDING"' in out.replace(" ", "")
    assert '"required_completed":1' in out.replace(" ", "") or "accept-terms" in out
