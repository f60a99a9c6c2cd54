"""Reading the governance console's policy editor (CodeMirror 6) as a person sees it: which
line number and which text sit at the height of each error marker, and of each line number.

Lines are matched by where they are drawn (their top edge, within a pixel), not by the DOM's
order, so that a gutter that scrolled apart from the text would show as a mismatch.
"""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Page

from tests.api.conftest import Hub

__all__ = ["MARKERS", "active_text", "aligned_lines", "marked_lines"]

#: The error markers in the editor's lint gutter (one per line with an error).
MARKERS = ".policy-editor .cm-gutter-lint .cm-lint-marker-error"

_AT_HEIGHT = """(tops) => {
  const editor = document.querySelector('.policy-editor');
  const drawn = (selector) => [...editor.querySelectorAll(selector)]
    .filter((el) => el.offsetHeight > 0);
  const at = (els, top) => els.find((el) => Math.abs(el.getBoundingClientRect().top - top) < 1);
  const numbers = drawn('.cm-lineNumbers .cm-gutterElement');
  const lines = drawn('.cm-content .cm-line');
  const from = tops === 'markers'
    ? drawn('.cm-gutter-lint .cm-lint-marker-error').map((m) => m.closest('.cm-gutterElement'))
    : numbers;
  return from.map((el) => {
    const top = el.getBoundingClientRect().top;
    const number = at(numbers, top);
    const line = at(lines, top);
    return [number ? Number(number.textContent) : null, line ? line.textContent : null];
  });
}"""


def _pairs(page: Page, which: str) -> list[tuple[Any, Any]]:
    return [tuple(pair) for pair in page.evaluate(_AT_HEIGHT, which)]


def marked_lines(page: Page) -> list[tuple[int, str]]:
    """(line number, text) drawn level with each error marker the editor has rendered."""
    return _pairs(page, "markers")


def aligned_lines(page: Page) -> list[tuple[int, str]]:
    """(line number, text drawn level with it) for every line number the editor rendered."""
    return _pairs(page, "numbers")


def active_text(hub: Hub, dataset: str) -> str:
    """The active policy's text, as the console loads it into the editor."""
    return next(v.text for v in hub.services.policy_changes.active_versions()
                if v.dataset == dataset)
