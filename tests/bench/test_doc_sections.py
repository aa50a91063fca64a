from pathlib import Path

from bench.doc_sections import write_section


def test_section_is_replaced_in_place_and_other_sections_survive(tmp_path: Path) -> None:
    doc = tmp_path / "BENCHMARKS.md"
    doc.write_text("# Benchmarks\n\n<!-- BEGIN other -->\nkeep me\n<!-- END other -->\n\ntail\n")
    write_section("mine", "first", doc)
    write_section("mine", "second", doc)
    text = doc.read_text()
    assert "keep me" in text and "second" in text and "first" not in text
    assert text.count("<!-- BEGIN mine -->") == 1 and text.count("<!-- END mine -->") == 1
    assert text.index("tail") < text.index("<!-- BEGIN mine -->")  # appended after what was there


def test_missing_doc_starts_with_the_header(tmp_path: Path) -> None:
    doc = tmp_path / "docs" / "BENCHMARKS.md"
    write_section("mine", "body", doc)
    assert doc.read_text().startswith("# Benchmarks") and "<!-- BEGIN mine -->\nbody\n<!-- END mine -->" in doc.read_text()
