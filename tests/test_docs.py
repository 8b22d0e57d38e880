"""The project's documentation holds together: every citation of docs/design.md names a section
(and pitfall item) that exists, links between the Markdown files resolve, README pointers name
README headings, and no file points at a document outside the project."""

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DESIGN = ROOT / "docs" / "design.md"
SECTION_TITLES = {
    1: "pipeline",
    2: "layout",
    3: "run directory",
    4: "hyperparameters",
    5: "pitfalls",
    6: "performance architecture",
    7: "conventions",
    8: "environment and dependency facts",
    9: "budgets",
    10: "reference results",
    11: "training c",
}
TEXT_SUFFIXES = {".py", ".md", ".sh", ".yml", ".yaml", ".toml", ".txt", ".cfg", ".ini"}
SKIPPED_FOLDERS = {"runs", "__pycache__", "node_modules", "_vizdoom"}
# Built by concatenation so this file does not match itself.
OUTSIDE_REFERENCES = ("shared" + "/design", ".." + "/shared", "/work" + "/shared", "/work" + "/wt/", "/work" + "/main")

# "design.md section 5 item 2", "design.md section 5, items 3 and 4", "design.md sections 1 and 6";
# a line break (with a comment marker) inside a citation is folded to a space before matching.
CITATION = re.compile(r"design\.md[,:]?\s+(?P<kind>sections?|pitfalls?|items?)\s+(?P<numbers>\d+(?:(?:,\s*|\s+and\s+)\d+)*)(?=(?P<rest>[^\n]{0,40}))", re.I)
ITEMS = re.compile(r"^,?\s+items?\s+(?P<numbers>\d+(?:(?:,\s*|\s+and\s+)\d+)*)", re.I)
MENTION = re.compile(r"(?P<prefix>[\w./-]*)design\.md", re.I)
LINK = re.compile(r"\]\((?P<target>[^)\s]+)\)")
README_POINTER = re.compile(r"README[\s'\"]+(?:section\s+)?\"(?P<title>[^\"]+)\"")


def project_files() -> list[Path]:
    """Every text file of the project but this one (hidden folders other than .ci, virtual environments and runs are skipped)."""
    files = []
    for folder, subfolders, names in os.walk(ROOT):
        subfolders[:] = [name for name in subfolders if name not in SKIPPED_FOLDERS and (not name.startswith(".") or name == ".ci") and "venv" not in name]
        for name in names:
            path = Path(folder) / name
            if path == Path(__file__).resolve():
                continue  # this file spells out wrong citations on purpose
            if path.suffix in TEXT_SUFFIXES or name.startswith("Dockerfile") or path.parent.name == ".ci":
                files.append(path)
    return sorted(files)


def read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return None


def folded(text: str) -> str:
    """Line breaks inside comments and docstrings folded to single spaces."""
    return re.sub(r"[ \t]*\n[ \t]*(?:#+[ \t]*)?", " ", text)


def numbers_of(text: str) -> list[int]:
    return [int(number) for number in re.findall(r"\d+", text)]


def design_structure(text: str) -> tuple[list[int], dict[int, str], dict[int, list[int]]]:
    """(section numbers in order, their titles, the top-level numbered items of each section)."""
    order, titles, items = [], {}, {}
    current = None
    for line in text.splitlines():
        heading = re.match(r"^## (\d+)\. (.+)$", line)
        if heading:
            current = int(heading.group(1))
            order.append(current)
            titles[current] = heading.group(2).strip()
            items[current] = []
            continue
        if line.startswith("## "):
            current = None
        item = re.match(r"^(\d+)\. ", line)
        if item and current is not None:
            items[current].append(int(item.group(1)))
    return order, titles, items


def citations(text: str) -> list[tuple[list[int], list[int], str]]:
    """Each citation as (sections, items, the matched text); a "pitfall N" or "item N" without
    its section is returned with sections [] so the test reports it."""
    found = []
    for match in CITATION.finditer(folded(text)):
        kind = match.group("kind").lower()
        numbers = numbers_of(match.group("numbers"))
        if not kind.startswith("section"):
            found.append(([], numbers, match.group(0)))
            continue
        items = ITEMS.match(match.group("rest"))
        found.append((numbers, numbers_of(items.group("numbers")) if items else [], match.group(0)))
    return found


def test_design_has_its_sections_in_order_and_numbered_pitfalls():
    order, titles, items = design_structure(DESIGN.read_text(encoding="utf-8"))
    assert order == list(SECTION_TITLES), f"{DESIGN}: sections {order}, expected 1..{len(SECTION_TITLES)} in order"
    for number, title in SECTION_TITLES.items():
        assert titles[number].lower().startswith(title), f"{DESIGN}: section {number} is '{titles[number]}', expected '{title}...'"
    assert items[5] and items[5] == list(range(1, len(items[5]) + 1)), f"{DESIGN}: section 5's items are numbered {items[5]}"


def test_the_citation_parser_reads_every_form():
    text = (
        '"""See docs/design.md section 5 item 2 and docs/design.md\nsection 5, items 3 and 4."""\n'
        "# keeps collection fast (docs/design.md\n# section 8). docs/design.md pitfall 3; docs/design.md sections 1 and 6"
    )
    assert [(sections, items) for sections, items, _ in citations(text)] == [([5], [2]), ([5], [3, 4]), ([8], []), ([], [3]), ([1, 6], [])]


def test_every_citation_names_an_existing_section_and_item():
    _, _, items = design_structure(DESIGN.read_text(encoding="utf-8"))
    problems, count = [], 0
    for path in project_files():
        text = read_text(path)
        if text is None or "design.md" not in text.lower():
            continue
        for sections, cited_items, citation in citations(text):
            count += 1
            where = f"{path.relative_to(ROOT)}: '{citation.strip()}'"
            if not sections:
                problems.append(f"{where}: cite as 'docs/design.md section N item M'")
            for section in sections:
                if section not in items:
                    problems.append(f"{where}: docs/design.md has no section {section}")
                elif cited_items and len(sections) == 1:
                    problems.extend(f"{where}: section {section} has no item {item}" for item in cited_items if item not in items[section])
    assert not problems, "\n".join(problems)
    assert count >= 20, f"found only {count} citations of docs/design.md: is the parser still reading them?"


def test_design_md_is_always_cited_by_its_path_in_the_project():
    problems = []
    for path in project_files():
        text = read_text(path)
        if text is None:
            continue
        inside_docs = path.parent == ROOT / "docs"
        for match in MENTION.finditer(text):
            allowed = ("docs/", "") if inside_docs else ("docs/",)
            if match.group("prefix") not in allowed or not match.group(0).endswith("design.md"):
                problems.append(f"{path.relative_to(ROOT)}: '{match.group(0)}' (cite docs/design.md)")
    assert not problems, "\n".join(problems)


def test_nothing_points_outside_the_project():
    problems = []
    for path in project_files():
        text = read_text(path)
        if text is None:
            continue
        lowered = text.lower()
        problems.extend(f"{path.relative_to(ROOT)}: mentions '{reference}'" for reference in OUTSIDE_REFERENCES if reference in lowered)
    assert not problems, "\n".join(problems)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def headings(path: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    return [match.group(1) for match in re.finditer(r"^#+\s+(.+?)\s*$", text, re.M)]


MARKDOWN_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("path", MARKDOWN_FILES, ids=lambda path: str(path.relative_to(ROOT)))
def test_markdown_links_resolve(path):
    problems = []
    for match in LINK.finditer(path.read_text(encoding="utf-8")):
        target = match.group("target")
        if re.match(r"^[a-z]+:", target):
            continue  # http(s), mailto
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            problems.append(f"{target}: {linked} does not exist")
        elif anchor and linked.suffix == ".md" and anchor not in {slug(heading) for heading in headings(linked)}:
            problems.append(f"{target}: no heading of {linked.name} has the anchor #{anchor}")
    assert not problems, f"{path.relative_to(ROOT)}:\n" + "\n".join(problems)


def test_pointers_to_readme_sections_name_existing_headings():
    titles = {heading.lower() for heading in headings(ROOT / "README.md")}
    problems = []
    for path in project_files():
        text = read_text(path)
        for match in README_POINTER.finditer(text or ""):
            if match.group("title").lower() not in titles:
                problems.append(f"{path.relative_to(ROOT)}: README has no section '{match.group('title')}'")
    assert not problems, "\n".join(problems)
