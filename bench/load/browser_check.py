"""Correctness in real browsers (--browser): Chromium sessions draw digits, each heading must name its digit."""

from __future__ import annotations

import argparse
import json

from bench.load.protocol import predicted_digit


def browser_check(url: str, sessions: int, rounds: int) -> dict:
    """`sessions` Chromium contexts at once, each drawing digits in turn; the heading must name the digit."""
    from playwright.sync_api import sync_playwright

    from bench import harness

    drawn, wrong, errors = 0, [], []
    with sync_playwright() as playwright:
        browser = harness.launch_chromium(playwright)
        try:
            pages = []
            for _ in range(sessions):
                page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
                page.goto(url + "/")
                pages.append(page)
            for r in range(rounds):
                for i, page in enumerate(pages):
                    digit = (r * sessions + i) % 10
                    try:
                        harness.draw_digit(page, digit)
                        heading = harness.prediction_heading(page)
                        drawn += 1
                        if predicted_digit(heading) != digit:
                            wrong.append(f"session {i} drew a {digit}: {heading!r}")
                        page.get_by_role("button", name="Clear").click()
                        page.locator(harness.PREDICTION_SELECTOR).filter(has_text="Draw a digit").wait_for()
                    except Exception as exc:  # noqa: BLE001 - every failure counts
                        errors.append(f"session {i} digit {digit}: {type(exc).__name__}: {str(exc)[:200]}")
        finally:
            browser.close()
    return {"browser_sessions": sessions, "drawings": drawn, "wrong": wrong, "errors": errors}


def report_browser(result: dict, args: argparse.Namespace) -> int:
    print(f"browser check: {result['drawings']} digits drawn in {result['browser_sessions']} Chromium sessions")
    for line in result["wrong"] + result["errors"]:
        print(f"  ERROR {line}")
    if args.json:
        print(json.dumps({**result, "errors": len(result["errors"]), "wrong": len(result["wrong"])}), flush=True)
    return 1 if result["wrong"] or result["errors"] else 0
