"""TfjsPage.goto: a load hit by the machine's network change is repeated; any other failure is not."""

from __future__ import annotations

from typing import Any

from harness.targets.tfjs.page import NETWORK_CHANGED, NETWORK_CHANGED_TRIES, TfjsPage


class FakeServer:
    url = "http://127.0.0.1:1"


class FakePage:
    """Stands in for a Playwright page: each goto() fails the tf.js request with the next reason."""

    def __init__(self, failures: list[str | None]) -> None:
        self.failures = failures
        self.gotos = 0
        self.handlers: dict[str, Any] = {}

    def on(self, event: str, handler: Any) -> None:
        self.handlers[event] = handler

    def goto(self, url: str, **_: Any) -> None:
        reason = self.failures[self.gotos] if self.gotos < len(self.failures) else None
        self.gotos += 1
        if reason:
            request = type("Request", (), {"url": url + "/lib/tfjs/tf.min.js", "failure": reason})()
            self.handlers["requestfailed"](request)


def _page(failures: list[str | None]) -> tuple[TfjsPage, FakePage]:
    fake = FakePage(failures)
    return TfjsPage(fake, FakeServer(), None), fake  # type: ignore[arg-type]  # a stand-in page and server


def test_a_load_hit_by_a_network_change_is_repeated() -> None:
    page, fake = _page([NETWORK_CHANGED, None])
    page.goto()
    assert fake.gotos == 2 and len(page.failed_requests) == 1  # the failure stays in the evidence


def test_repeats_are_bounded() -> None:
    page, fake = _page([NETWORK_CHANGED] * 10)
    page.goto()
    assert fake.gotos == NETWORK_CHANGED_TRIES


def test_other_failures_are_not_repeated() -> None:
    page, fake = _page(["net::ERR_CONNECTION_REFUSED"])
    page.goto()
    assert fake.gotos == 1
