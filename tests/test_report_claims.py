"""neuroenc.report.claims: a report section, Markdown and HTML from a table of papers' claims."""
from __future__ import annotations

import pandas as pd
import pytest

from neuroenc.report import ReportSection
from neuroenc.report.claims import claims_markdown, papers_claims_section, section_html


def _claims():
    return pd.DataFrame({
        "paper": ["Sun", "Sun", "Skean"],
        "claim_id": ["P1", "P2", "L1"],
        "claim": ["first block is critical", "parallel beats skip | mostly", "compression valley"],
        "measured": ["skip 0 - skip 15: +12.9 ± 0.4", "skip - parallel: +2 ± 0.3", "layer 0 - layer 9: -0.1 ± 0.2"],
        "verdict": ["holds", "partly", "not on this model"],
        "min_z": [30.0, 1.2, -0.5],
    })


def test_section_has_one_table_per_paper_and_the_bridge():
    bridge = pd.DataFrame({"intervention": ["skip middle"], "delta_bits_per_word": [4.4], "se": [0.2]})
    section = papers_claims_section(_claims(), bridge=bridge, rule="z >= 2 passes", model="SmolLM2-135M-Instruct")
    assert isinstance(section, ReportSection)
    assert [c.split(":")[0] for c, _ in section.tables] == ["Sun", "Skean", "The bridge"]
    sun = section.tables[0][1]
    assert list(sun.columns) == ["claim_id", "claim", "measured", "verdict"]
    assert list(sun.verdict) == ["holds", "partly"]
    assert section.tables[0][0] == "Sun: 1 holds, 1 partly, 0 not on this model."
    assert "Model: SmolLM2-135M-Instruct." in section.text and "Verdict rule: z >= 2 passes" in section.text
    assert section.text.endswith("Verdicts: 1 holds, 1 partly, 1 not on this model.")
    pd.testing.assert_frame_equal(section.tables[-1][1], bridge)


def test_markdown_and_html_hold_every_claim():
    md = claims_markdown(_claims(), rule="z >= 2 passes")
    assert "| P2 | parallel beats skip \\| mostly | skip - parallel: +2 ± 0.3 | partly |" in md
    assert md.startswith("## Layer science: the papers' claims on this model")
    page = section_html(papers_claims_section(_claims()))
    assert page.count("<table") == 2 and "parallel beats skip | mostly" in page and "not on this model" in page


def test_bad_claims_tables_are_refused():
    with pytest.raises(ValueError, match="lacks column.*verdict"):
        papers_claims_section(_claims().drop(columns="verdict"))
    bad = _claims().assign(verdict=["holds", "maybe", "holds"])
    with pytest.raises(ValueError, match=r"verdict\(s\) \['maybe'\]; allowed verdicts are"):
        papers_claims_section(bad)
    with pytest.raises(TypeError, match="must be a pandas DataFrame"):
        papers_claims_section([{"paper": "Sun"}])
    with pytest.raises(ValueError, match="the bridge table lacks column"):
        papers_claims_section(_claims(), bridge=pd.DataFrame({"x": [1]}))
