"""Rule ids in the report link to a section that says what each one means.

The report cites the playbook by id ("playbook P5, L1"). It is read away from the repository (a
mail attachment, an air-gapped cluster), so the meaning travels inside the page: every id cited in
the text becomes a link to its line in the last section, which is written from
`tunepipe.playbook_rules` (docs/playbook.md is the long form).
"""

from __future__ import annotations

import re
from html import escape

from tunepipe.playbook_rules import CITATION, RULES, cited

SECTION_ID = "playbook"
_TAG = re.compile(r"(<[^>]*>)")


def anchor(rule: str) -> str:
    """The element id of a rule's line in the playbook section."""
    return f"rule-{rule}"


def link_rules(body: str) -> str:
    """`body` with each rule id in its text (never inside a tag) made a link to its line."""
    parts = _TAG.split(body)
    for i in range(0, len(parts), 2):  # even parts are text between tags
        parts[i] = CITATION.sub(lambda m: _link(m.group(1)), parts[i])
    return "".join(parts)


def _link(rule: str) -> str:
    title = escape(RULES[rule][0], quote=True)
    return f'<a class="rule" href="#{anchor(rule)}" title="{title}">{rule}</a>'


def rules_section(body: str) -> str:
    """The section that explains every rule id `body` cites, in the playbook's order."""
    ids = cited(_TAG.sub(" ", body))
    rows = "".join(
        f'<tr id="{anchor(r)}"><td><b>{r}</b></td><td>{escape(RULES[r][0])}</td>'
        f"<td>{escape(RULES[r][1])}</td></tr>"
        for r in ids
    )
    table = (
        '<table class="narrow"><thead><tr><th>id</th><th>rule</th><th>what tunepipe does</th>'
        f"</tr></thead><tbody>{rows}</tbody></table>"
        if ids
        else '<p class="note">This report cites no playbook rule.</p>'
    )
    lead = (
        "The tuning playbook's rules this report cites, in brief; docs/playbook.md in tunepipe's "
        "repository explains each at length."
    )
    return (
        f'<section id="{SECTION_ID}"><h2>Playbook rules</h2><p class="lead">{lead}</p>'
        f"{table}</section>"
    )
