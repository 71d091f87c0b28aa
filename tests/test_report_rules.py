"""Rule ids in the report link to the section that explains them (docs/playbook.md in brief)."""

from __future__ import annotations

import re

from tunepipe.playbook_rules import RULES, cited
from tunepipe.report.citations import link_rules, rules_section


def test_ids_in_text_become_links_but_not_inside_tags_or_words() -> None:
    body = '<p class="P5">lower it (playbook P5, L1); MO1 too</p><img alt="E1" src="x#B1">P10 XP3'
    out = link_rules(body)
    assert re.findall(r'href="#rule-(\w+)"', out) == ["P5", "L1", "MO1"]
    assert '<p class="P5">' in out and 'alt="E1"' in out and 'src="x#B1"' in out
    assert out.endswith("P10 XP3")  # not ids: a longer word, a prefix


def test_the_section_explains_each_cited_id_once_in_playbook_order() -> None:
    section = rules_section("<p>(P6, E1)</p><p>P5 and again P6</p>")
    rows = re.findall(r'<tr id="rule-(\w+)"><td><b>\1</b></td><td>([^<]+)</td>', section)
    assert rows == [("P5", RULES["P5"][0]), ("P6", RULES["P6"][0]), ("E1", RULES["E1"][0])]
    assert "cites no playbook rule" in rules_section("<p>no ids here</p>")


def test_cited_finds_every_id_of_the_table() -> None:
    assert cited(" ".join(reversed(list(RULES)))) == list(RULES)
    assert cited("RB1 but not RB12 or xL1") == ["RB1"]
