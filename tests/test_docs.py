"""The docs are true to the code: every YAML snippet in docs/ and README.md validates, no link
leaves the repository, every rule id has its page, README lists each page once and every exit code.

How snippets are read (the convention is also in docs/README.md, for authors of new pages):

* A ```yaml block is a study, or the top of one: it is laid over a small base study (a name, the
  built-in digits data, an MLP, a loguniform lr) and must pass `tunepipe validate`'s checks. A block
  that names `trainable:` replaces the base's data and model.
* `<!-- snippet: under KEY -->` on the line before the fence: the block is the content of KEY
  (dotted for deeper keys, e.g. `search_space` or `scheduler`), then laid over the base study.
* `<!-- snippet: outline -->`: a sketch with placeholders (`{...}`): only its top-level keys are
  checked, each must be a study key.
* `<!-- snippet: refused -->`: shows a mistake: validate must refuse it.
* `<!-- snippet: not-a-study -->`: YAML of another program (a Prometheus config, a launcher file):
  it must parse, nothing more. Kubernetes manifests (a document with `apiVersion` and `kind`) are
  recognised as such without a marker.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tunepipe.config import StudyConfig
from tunepipe.errors import StudyFileError
from tunepipe.study import parse_study

REPO = Path(__file__).resolve().parents[1]
DOC_FILES = sorted((REPO / "docs").glob("*.md")) + [REPO / "README.md"]
BASE = {
    "name": "docs-snippet",
    "data": {"source": "digits", "label": "label"},
    "model": {"kind": "mlp"},
    "search_space": {"lr": {"type": "loguniform", "low": 1.0e-4, "high": 1.0e-1}},
}
MARKER = re.compile(r"<!--\s*snippet:\s*(.*?)\s*-->")
FENCE = re.compile(r"^```(yaml|yml)\s*$")


@dataclass
class Snippet:
    where: str  # docs/file.md:LINE
    text: str
    marker: str  # "" when none

    def __str__(self) -> str:
        return self.where


def yaml_snippets(path: Path, root: Path = REPO) -> list[Snippet]:
    """Every ```yaml block of a Markdown file, with the marker on the line before its fence."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found, i = [], 0
    while i < len(lines):
        if FENCE.match(lines[i].strip()):
            start = i
            i += 1
            while i < len(lines) and lines[i].strip() != "```":
                i += 1
            mark = MARKER.search(lines[start - 1]) if start else None
            where = f"{path.relative_to(root)}:{start + 1}"
            text = "\n".join(lines[start + 1 : i])
            found.append(Snippet(where, text, mark.group(1) if mark else ""))
        i += 1
    return found


SNIPPETS = [s for f in DOC_FILES for s in yaml_snippets(f)]


def as_study(snippet: Snippet) -> dict:
    """The study a snippet stands for: the base study with the snippet laid over it."""
    raw = yaml.safe_load(snippet.text)
    if snippet.marker.startswith("under "):
        for key in reversed(snippet.marker.removeprefix("under ").split(".")):
            raw = {key: raw}
    assert isinstance(raw, dict), f"{snippet}: a study snippet is a YAML mapping"
    base = {k: v for k, v in BASE.items() if not ("trainable" in raw and k in ("data", "model"))}
    return {**base, **raw}


def is_kubernetes(text: str) -> bool:
    docs = [d for d in yaml.safe_load_all(text) if d is not None]
    return bool(docs) and all(
        isinstance(d, dict) and {"apiVersion", "kind"} <= d.keys() for d in docs
    )


@pytest.mark.parametrize("snippet", SNIPPETS, ids=str)
def test_every_yaml_snippet_in_the_docs_is_true(snippet: Snippet) -> None:
    kind = snippet.marker.split(" ")[0]
    assert kind in ("", "under", "outline", "refused", "not-a-study"), (
        f"{snippet}: unknown snippet marker {snippet.marker!r} (see docs/README.md)"
    )
    if kind == "not-a-study" or (not kind and is_kubernetes(snippet.text)):
        list(yaml.safe_load_all(snippet.text))  # still valid YAML
        return
    if kind == "outline":
        unknown = set(yaml.safe_load(snippet.text)) - set(StudyConfig.model_fields)
        assert not unknown, f"{snippet}: no study key {sorted(unknown)}"
        return
    parsed = yaml.safe_dump(yaml.safe_load(snippet.text))  # comments may say "...", keys not
    assert "..." not in parsed, f"{snippet}: a placeholder ({{...}}) in a snippet shown as real"
    if kind == "refused":
        with pytest.raises(StudyFileError):
            parse_study(as_study(snippet), source=snippet.where)
        return
    try:
        parse_study(as_study(snippet), source=snippet.where)
    except StudyFileError as exc:
        pytest.fail(
            f"{snippet}: the docs show a study that validate refuses:\n{exc}\n"
            "Fix the snippet, or mark it (docs/README.md lists the markers)."
        )


def test_the_snippet_reader_finds_blocks_and_markers(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "text\n```yaml\nname: a\n```\n<!-- snippet: under search_space -->\n```yaml\n"
        "lr: 0.1\n```\n```bash\necho not yaml\n```\n",
        encoding="utf-8",
    )
    found = yaml_snippets(page, root=tmp_path)
    assert [(s.where, s.text, s.marker) for s in found] == [
        ("page.md:2", "name: a", ""),
        ("page.md:6", "lr: 0.1", "under search_space"),
    ]
    assert as_study(found[1])["search_space"] == {"lr": 0.1}


def test_snippets_that_lie_are_caught() -> None:
    # What this test guards against: keys the validator refuses, shown as if they worked.
    lying = Snippet("x.md:1", "stopping:\n  divergence: {enabled: false}", "")
    with pytest.raises(StudyFileError, match="enabled"):
        parse_study(as_study(lying))
    assert is_kubernetes("apiVersion: v1\nkind: Service\n---\napiVersion: v1\nkind: Pod\n")
    assert not is_kubernetes("name: x\nkind: asha\n")


def test_the_docs_hold_yaml_snippets() -> None:
    # Guards the reader itself: if it found nothing, every check above would pass vacuously.
    assert len(SNIPPETS) >= 3
    assert {s.where.split(":")[0] for s in SNIPPETS} >= {"docs/schedulers.md", "docs/study-file.md"}


def _table_fields(page: str, heading: str) -> set[str]:
    """The `field` names in the first column of the first table after a line starting `heading`."""
    text = (REPO / "docs" / page).read_text(encoding="utf-8").split("\n" + heading, 1)[1]
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return set(re.findall(r"^\| `([\w.]+)` \|", "\n".join(lines[start:end]), re.M))


def test_the_data_table_in_study_file_md_is_the_models_fields() -> None:
    from tunepipe.config import DataConfig

    assert _table_fields("study-file.md", "## data") == set(DataConfig.model_fields)


def test_the_field_tables_in_schedulers_md_are_the_models_fields() -> None:
    from tunepipe.config import SchedulerConfig, StoppingConfig

    assert _table_fields("schedulers.md", "`scheduler`") == set(SchedulerConfig.model_fields)
    stopping = {"initial_loss"} | {
        f"{rule}.{key}"
        for rule in ("divergence", "overfitting", "plateau")
        for key in StoppingConfig.model_fields[rule].default_factory.model_fields
    }
    assert _table_fields("schedulers.md", "`stopping`") == stopping


# ---- links -------------------------------------------------------------------------------------

LINK = re.compile(r"\]\(([^)\s]+)\)")
# A relative path climbing out of the repository, or a folder of the machine it was written on.
OUTSIDE = re.compile(r"(?<![\w.])\.\./|/work/")


def _relative_base(lines: list[str], n: int) -> Path | None:
    """Inside a fenced block whose first line is a comment naming a file of the repository (as
    `# k8s/overlays/mine/kustomization.yaml`), relative paths start from that file's folder."""
    for i in range(n - 2, -1, -1):
        if lines[i].startswith("```"):
            first = lines[i + 1].strip() if i + 1 < len(lines) else ""
            named = first[1:].strip() if first.startswith("#") else ""
            return (REPO / named).parent if named and not named.startswith("/") else None
    return None


def test_no_reference_leaves_the_repository() -> None:
    problems = []
    for path in DOC_FILES:
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        for n, line in enumerate(lines, 1):
            base = _relative_base(lines, n) if "../" in line else None
            if base is not None:  # e.g. a kustomize overlay's `../cpu`: inside the repo?
                targets = re.findall(r"((?:\.\./)+[\w./-]*)", line)
                if all((base / t).resolve().is_relative_to(REPO) for t in targets):
                    continue
            for target in LINK.findall(line):
                if target.startswith(("http://127.0.0.1", "http://localhost", "#")):
                    continue
                file = (path.parent / target.split("#")[0]).resolve()
                if not file.is_relative_to(REPO) or not file.exists():
                    problems.append(f"{path.relative_to(REPO)}:{n}: link to {target}")
            if OUTSIDE.search(LINK.sub("]()", line)):
                problems.append(f"{path.relative_to(REPO)}:{n}: path outside the repo: {line}")
    assert problems == []


def test_every_rule_id_has_its_entry_on_the_playbook_page() -> None:
    from tunepipe.playbook_rules import RULES

    page = (REPO / "docs" / "playbook.md").read_text(encoding="utf-8")
    headings = dict(re.findall(r"^### (\w+) — (.+)$", page, re.M))
    assert headings == {rule: title for rule, (title, _) in RULES.items()}
    assert list(headings) == list(RULES)  # the same order too


# ---- README ------------------------------------------------------------------------------------


def _readme_section(title: str) -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    return text.split(f"## {title}", 1)[1].split("\n## ", 1)[0]


def test_readme_lists_every_docs_page_once() -> None:
    listed = re.findall(r"\[docs/([\w.-]+\.md)\]", _readme_section("Documentation"))
    pages = sorted(p.name for p in (REPO / "docs").glob("*.md"))
    assert sorted(listed) == pages  # none missing, none twice


def test_readme_names_every_exit_code() -> None:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    paragraph = text.split("\nExit codes:", 1)[1].split("\n\n", 1)[0]
    codes = {int(c) for c in re.findall(r"(?:^|[:;])\s*(\d+) ", paragraph)}
    assert codes == {0, 1, 2, 3, 130, 143}
