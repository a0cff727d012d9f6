"""axe-core on every view (tests/web/views.py), and a keyboard check: every control of a
view is reached with Tab, no control is taken out of the tab order, nothing clickable is
a plain element a keyboard cannot reach.

axe-core comes from the npm registry at the version tests/web/package.json pins
(``scripts/ensure-test-tools.sh`` installs it into tests/web/node_modules, which is not
committed) and is injected with ``page.add_script_tag`` (the pages bypass the CSP for it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Page

from tests.web import harness
from tests.web.views import tour

AXE = Path(__file__).resolve().parents[1] / "node_modules" / "axe-core" / "axe.min.js"
# WCAG 2.1 A and AA, and axe's best practices (landmarks, one main, headings...).
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]

RUN_AXE_JS = """
async (tags) => {
  const results = await axe.run(document, {
    runOnly: { type: 'tag', values: tags },
    resultTypes: ['violations'],
  });
  return results.violations.map((violation) => ({
    id: violation.id,
    impact: violation.impact,
    help: violation.help,
    nodes: violation.nodes.slice(0, 5).map((node) => ({
      target: node.target.join(' '),
      summary: node.failureSummary,
    })),
  }));
}
"""

# The view's controls (visible, enabled; inside an open modal dialog only, as the rest
# is inert then), each marked with an id; what takes a control out of the tab order; and
# what looks clickable (a pointer cursor) without being a control.
CONTROLS_JS = """
() => {
  const visible = (el) => el.checkVisibility({ visibilityProperty: true, opacityProperty: false });
  const modal = document.querySelector('dialog[open]');
  const scope = modal ?? document;
  const selector = 'a[href], button, input:not([type=hidden]), select, textarea, summary, ' +
    '[role=button], [role=link], [contenteditable=true], video[controls]';
  const controls = [...scope.querySelectorAll(selector)].filter(
    (el) => visible(el) && !el.disabled && !el.closest('[inert]'),
  );
  controls.forEach((el, index) => { el.dataset.a11yId = String(index); });
  const describe = (el) => {
    const text = (el.getAttribute('aria-label') || el.textContent || el.value || '').trim();
    return `${el.tagName.toLowerCase()}${el.id ? '#' + el.id : ''} "${text.slice(0, 40)}"`;
  };
  const native = 'a[href], button, input, select, textarea, summary, label, video, option';
  const clickable = [...scope.querySelectorAll('body *')].filter(
    (el) => visible(el) && getComputedStyle(el).cursor === 'pointer' && !el.closest(native) &&
      !(el.tabIndex >= 0),
  );
  return {
    controls: controls.map((el) => ({ id: el.dataset.a11yId, name: describe(el) })),
    untabbable: controls.filter((el) => el.tabIndex < 0).map(describe),
    clickable_divs: clickable.map(describe),
  };
}
"""


def _axe(page: Page) -> list[dict[str, Any]]:
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    violations: list[dict[str, Any]] = page.evaluate(RUN_AXE_JS, AXE_TAGS)
    return violations


def _keyboard(page: Page) -> dict[str, Any]:
    """Tab from the top of the page until every control was focused or we went round."""
    found: dict[str, Any] = page.evaluate(CONTROLS_JS)
    wanted = {control["id"]: control["name"] for control in found["controls"]}
    modal = page.evaluate("Boolean(document.querySelector('dialog[open]'))")
    if not modal:
        page.evaluate("document.activeElement?.blur(); window.scrollTo(0, 0)")
    reached: set[str] = set()
    for _ in range(len(wanted) * 2 + 20):
        page.keyboard.press("Tab")
        focused = page.evaluate("document.activeElement?.dataset.a11yId ?? null")
        if focused is not None:
            reached.add(focused)
        if reached >= wanted.keys():
            break
    return {
        "controls": len(wanted),
        "not_reached": sorted(wanted[key] for key in wanted.keys() - reached),
        "untabbable": found["untabbable"],
        "clickable_divs": found["clickable_divs"],
    }


def scenario(browser: Browser, server: harness.ServerProcess, errors: list[str]) -> dict[str, Any]:
    if not AXE.exists():
        raise harness.ScenarioError(f"{AXE} is missing: run scripts/ensure-test-tools.sh")
    views: dict[str, Any] = {}

    def visit(name: str, page: Page) -> None:
        violations = _axe(page)
        views[name] = {
            "violations": violations,
            "serious": [v for v in violations if v["impact"] in {"serious", "critical"}],
            "keyboard": _keyboard(page),
        }

    tour(browser, server, errors, visit)
    return {"views": views}
