"""Platform-controlled text made inert before the dashboard shows it.

Ids, platform names, regions, labels and evidence text come from the platform's logs (or a
registry upload) and are never interpreted: a ``platform`` of
``[Verify evidence here](https://…)`` or ``![x](https://…/i.png)`` must show those characters,
not a link and not an image fetched from someone else's host with the dashboard as referrer.

* :func:`visible` (:mod:`monitor.core.textsafe`) — for any text a person reads (markdown, plain
  labels, the pack README): control characters become a space, and invisible *format*
  characters (bidi overrides and isolates such as U+202E, zero-width spaces and joiners,
  U+FEFF) are shown as ``⟨U+202E⟩``, so that a hostile id cannot reorder or hide what an
  analyst reads.
* :func:`md` — :func:`visible`, then every ASCII punctuation character backslash-escaped
  (CommonMark §2.4: any ASCII punctuation may be escaped, and an escaped character is always
  literal text).  No Markdown construct — link, image, autolink (``https\\://``,
  ``www\\.``), emphasis, heading, HTML, Streamlit's ``:color[…]`` / ``:material/…:``
  directives, LaTeX ``$…$`` — can start from escaped text.  GFM autolink *literals*
  (``https://…``, ``www.…``, ``a@b.org``) are recognised in the text after escapes are
  resolved, so a WORD JOINER (U+2060, invisible) is put after the ``:`` of ``://``, after
  ``www`` and after ``@``: the browser shows the same characters, as text.  Use it for every value
  interpolated into ``st.markdown``, ``st.caption``, ``st.header``, ``st.info`` and the like.
"""

from __future__ import annotations

import re
from typing import Any

from monitor.core.textsafe import visible

__all__ = ["md", "visible"]

_PUNCT = re.compile(r"([!-/:-@\[-`{-~])")  # every ASCII punctuation character
# Where GFM's autolink literals would start (``scheme://``, ``www.``, ``name@host``): they
# are found in the parsed *text*, after escapes are resolved, so escaping cannot stop them;
# an invisible WORD JOINER (U+2060) there does, and changes nothing a reader sees.
_AUTOLINK = re.compile(r"(?<=:)(?=//)|(?i:(?<=\bwww)(?=\.))|(?<=@)")


def md(value: Any) -> str:
    """``value`` as literal Markdown text (see module docstring)."""
    text = _AUTOLINK.sub("\u2060", visible(value))
    return _PUNCT.sub(r"\\\1", text)
