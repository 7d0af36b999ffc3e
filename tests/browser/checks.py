"""Checks every browser test may run on a page: accessibility (axe-core) and screenshots."""

from __future__ import annotations

import json
from pathlib import Path

from playwright.sync_api import Page

from tests.support.services import ROOT

AXE = ROOT / "var" / "npm" / "node_modules" / "axe-core" / "axe.min.js"
WIDTHS = {"desktop": (1280, 800), "phone": (390, 844)}


def accessible_and_photographed(page: Page, name: str, folder: Path) -> None:
    """axe-core finds no serious or critical problem on ``page``; a screenshot at each width
    goes to ``folder``."""
    assert AXE.is_file(), f"{AXE} is missing: `make test` installs axe-core from npm"
    page.add_script_tag(path=str(AXE))
    found = page.evaluate("async () => (await axe.run(document)).violations")
    serious = [
        {"id": item["id"], "nodes": [node["target"] for node in item["nodes"]]}
        for item in found
        if item["impact"] in ("serious", "critical")
    ]
    assert serious == [], f"{name}: {json.dumps(serious)}"
    folder.mkdir(parents=True, exist_ok=True)
    for label, (width, height) in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=str(folder / f"{name}-{label}.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 800})


def sign_in(page: Page, base_url: str, email: str, password: str) -> None:
    """Sign in to the console as ``email``; on the campaigns list afterwards."""
    page.goto(f"{base_url}/console/login")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/console/campaigns")
