"""MkDocs hook: turn the reST roles of the package's docstrings into code cross-references.

The docstrings use Sphinx roles (``:class:`~deepfake_mlc.models.GraphClassifier```, ``:func:`x```),
which Markdown renders as the role's name followed by inline code. This rewrites each one into the
inline code alone, wrapped in an optional mkdocs-autorefs reference: it becomes a link when the target
is documented in the API reference and stays plain code otherwise (no warning either way).
"""

from __future__ import annotations

import html
import re

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|attr|exc|data|obj|const):<code>(~?)([^<]+)</code>")


def _replace(match: re.Match[str]) -> str:
    short, target = match.group(1), html.unescape(match.group(2)).strip()
    shown = target.rsplit(".", 1)[-1] if short else target
    if not re.fullmatch(r"[A-Za-z_][\w.]*", target):
        return f"<code>{html.escape(shown)}</code>"
    return f'<autoref optional identifier="{target}"><code>{html.escape(shown)}</code></autoref>'


def on_page_content(html_text: str, **kwargs: object) -> str:
    return ROLE.sub(_replace, html_text)
