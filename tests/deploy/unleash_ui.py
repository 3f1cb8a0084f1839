"""What an SRE does in the Unleash web UI (7.5.1), as Playwright steps.

Log in, open the rollout's flag, open its gradual-rollout strategy in an environment,
move the rollout slider, save through the "Changing production environment!" dialog.
Selectors are the UI's visible labels, so a new Unleash UI that moves them fails here
before it surprises someone on call.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from playwright.sync_api import TimeoutError as PlaywrightTimeout

WELCOME_TIMEOUT_MS = 10_000
DEFAULT_LOGIN = ("admin", "unleash4all")  # Unleash's first-start admin user


def log_in(page: Any, unleash_url: str) -> None:
    page.goto(f"{unleash_url}/login")
    page.fill("input[name=username]", DEFAULT_LOGIN[0])
    page.fill("input[name=password]", DEFAULT_LOGIN[1])
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)


def open_strategy(page: Any, unleash_url: str, flag: str, environment: str) -> None:
    """From the flag's page: expand the environment, click its strategy's edit link."""
    page.goto(f"{unleash_url}/projects/default/features/{flag}")
    # A new user's first page gets a welcome dialog, drawn a moment after the page: wait
    # for it briefly rather than race it (it would swallow the next click).
    welcome = page.get_by_role("button", name="Got it, let's get started!")
    with contextlib.suppress(PlaywrightTimeout):  # not shown: this user saw it already
        welcome.click(timeout=WELCOME_TIMEOUT_MS)
    page.get_by_text(environment, exact=True).click()
    page.locator(f"a[href*='strategies/edit?environmentId={environment}']").first.click()
    page.locator("input[type=range]").wait_for()


def rollout_shown(page: Any) -> int:
    """The percentage the open strategy form shows."""
    return int(page.locator("input[type=number]").input_value())


def move_rollout(page: Any, percent: int) -> None:
    """Drag the slider with the keyboard (one step per arrow key) and save, confirming."""
    slider = page.locator("input[type=range]")
    slider.focus()
    # React applies each key press in its own render; on a loaded machine the number
    # field can lag the last presses, so read it again (with a deadline) before saving.
    deadline = time.monotonic() + 20
    shown = rollout_shown(page)
    while shown != percent and time.monotonic() < deadline:
        key = "ArrowRight" if percent > shown else "ArrowLeft"
        for _ in range(abs(percent - shown)):
            page.keyboard.press(key)
        page.wait_for_function(
            "([want, before]) => { const v = +document.querySelector('input[type=number]').value;"
            " return v === want || v !== before; }",
            arg=[percent, shown],
            timeout=5_000,
        )
        shown = rollout_shown(page)
    assert shown == percent, f"the slider shows {shown} %, not {percent} %"
    page.get_by_role("button", name="Save strategy").click()
    confirm = page.get_by_role("dialog").filter(has_text="Changing production environment!")
    if confirm.count():
        confirm.get_by_role("button", name="Save strategy").click()
    page.wait_for_url(lambda url: "strategies/edit" not in url)
