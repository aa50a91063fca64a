"""docs/SPEC.md is generated from the schema and must not go stale (issue 9, item 6)."""

from __future__ import annotations

from pathlib import Path

from training.spec import RankerSpec
from training.spec.doc import render, sections

SPEC_DOC = Path(__file__).resolve().parents[3] / "docs" / "SPEC.md"


def test_spec_reference_is_up_to_date() -> None:
    assert SPEC_DOC.read_text() == render(), (
        "docs/SPEC.md is stale: regenerate it with `.venv/bin/python -m training.spec.doc > docs/SPEC.md`")


def test_every_key_of_every_section_is_in_the_reference() -> None:
    text = SPEC_DOC.read_text()
    keys = [(prefix, name) for prefix, model in sections(RankerSpec) for name in model.model_fields]
    assert len(keys) > 60
    for prefix, name in keys:
        assert f"| `{name}` |" in text, f"{prefix}{name}"
    for must in ("`group`", "`seed`", "`threads`", "`weight_decay`", "`early_stopping_patience`", "`ndcg_k`",
                 "`score_weights`", "`gain_weights`", "`expert_hidden`"):
        assert must in text
