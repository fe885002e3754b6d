"""Full-text search: how a hit's snippet marks its matches without trusting the text.

PostgreSQL's `ts_headline` marks matches by wrapping them in two strings of our choosing. They
are drawn at random for every search, so no stored text can contain them by chance or design
(a message holding `<b>` or last search's markers is just text); the snippet is then split on
them here and sent as parts, `{"text", "match"}`, which a client renders as text.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from app.domain.dtos import SnippetPart

#: Longest accepted query, in characters.
QUERY_MAX_CHARS = 500

#: `ts_headline` drops what its parser takes for markup (`<b>`, `</div>`): the text's `<` are
#: swapped for this private-use character before, and back after. (A text holding this very
#: character shows `<` in its snippet instead; no match can be forged that way.)
TAG_OPEN_STANDIN = "\ue000"


@dataclass(frozen=True, slots=True)
class Markers:
    start: str
    stop: str

    @classmethod
    def fresh(cls) -> Markers:
        """Two markers no text can guess: 128 random bits each, letters and digits only (so
        `ts_headline`'s option syntax takes them as they are)."""
        return cls(f"hs{secrets.token_hex(16)}", f"he{secrets.token_hex(16)}")

    def split(self, marked: str) -> list[SnippetPart]:
        """The parts of a marked snippet, in order; empty parts left out."""
        parts: list[SnippetPart] = []
        rest = marked.replace(TAG_OPEN_STANDIN, "<")
        while rest:
            begin = rest.find(self.start)
            if begin < 0:
                parts.append(SnippetPart(text=rest, match=False))
                break
            end = rest.find(self.stop, begin + len(self.start))
            if end < 0:  # never produced by ts_headline; keep the text, unmarked
                parts.append(SnippetPart(text=rest.replace(self.start, ""), match=False))
                break
            if begin:
                parts.append(SnippetPart(text=rest[:begin], match=False))
            parts.append(SnippetPart(text=rest[begin + len(self.start) : end], match=True))
            rest = rest[end + len(self.stop) :]
        return _merged(parts)


def _merged(parts: list[SnippetPart]) -> list[SnippetPart]:
    """Neighbouring parts of the same kind as one (`ts_headline` marks each word of a phrase)."""
    merged: list[SnippetPart] = []
    for part in parts:
        if not part.text:
            continue
        if merged and merged[-1].match == part.match:
            merged[-1] = SnippetPart(text=merged[-1].text + part.text, match=part.match)
        else:
            merged.append(part)
    return merged
