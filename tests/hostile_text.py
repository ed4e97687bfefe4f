"""Hostile strings a platform can put in any text field it controls (ids, platform, labels,
evidence), shared by the dashboard's and the audit report's rendering tests."""

from __future__ import annotations

OUTSIDE = "evil.example"
LINK = f"[Verify evidence here](https://{OUTSIDE}/verify)"
IMAGE = f"![x](https://{OUTSIDE}/pixel.png)"
HTML = f'<img src="https://{OUTSIDE}/i.png" onerror="alert(1)"><a href="https://{OUTSIDE}">x</a>'
SCRIPT = "<script>alert(document.cookie)</script>"
FORMULA = f'=HYPERLINK("https://{OUTSIDE}/f","Click")'
BIDI = "acc\u202egnp.exe\u200b"  # right-to-left override, zero-width space
DIRECTIVE = ":red[ALERT] :material/warning: $\\frac{1}{0}$ www.evil.example"

PLATFORM = f"{LINK} {IMAGE}"
EVERY = (LINK, IMAGE, HTML, SCRIPT, FORMULA, BIDI, DIRECTIVE)
