"""A report section from a table of papers' claims, each with its measured numbers and verdict.

The layer-science analysis ``analyses/layer_science_papers.py`` writes one row per claim of the
papers it rests on (Sun et al. 2024, Ben-Artzy & Schwartz 2024, Skean et al. 2025): the claim
in one line, the measured checks with their standard errors, and a verdict computed by a stated
rule. :func:`papers_claims_section` turns that table (and the optional "bridge" table: the
change of LM loss beside the change of the brain and reading-time profiles) into a
:class:`~neuroenc.report.ReportSection` for :func:`~neuroenc.report.make_report`;
:func:`claims_markdown` writes the same as Markdown and :func:`section_html` as a small
stand-alone HTML page.
"""
from __future__ import annotations

import html

import pandas as pd

from .figures import require_columns
from .sections import ReportSection

#: The columns a claims table needs.
CLAIMS_COLUMNS = ("paper", "claim_id", "claim", "measured", "verdict")
#: The verdicts a claims table may hold.
VERDICTS = ("holds", "partly", "not on this model")


def _check_claims(claims: pd.DataFrame) -> pd.DataFrame:
    require_columns(claims, CLAIMS_COLUMNS, "the claims table")
    bad = sorted(set(claims["verdict"].astype(str)) - set(VERDICTS))
    if bad:
        raise ValueError(f"the claims table has verdict(s) {bad}; allowed verdicts are {list(VERDICTS)} "
                         "(computed by the analysis's verdict rule).")
    return claims


def _summary(claims: pd.DataFrame) -> str:
    counts = claims["verdict"].value_counts()
    return ", ".join(f"{int(counts.get(v, 0))} {v}" for v in VERDICTS)


def papers_claims_section(claims: pd.DataFrame, *, bridge: pd.DataFrame | None = None, rule: str = "",
                          model: str = "",
                          title: str = "Layer science: the papers' claims on this model") -> ReportSection:
    """The report section of a claims table.

    Parameters
    ----------
    claims : DataFrame
        One row per claim with at least :data:`CLAIMS_COLUMNS`; ``verdict`` in :data:`VERDICTS`.
    bridge : DataFrame | None
        Optional: one row per intervention (``intervention`` and any numbers), shown as a table.
    rule : str
        The verdict rule, in words (shown in the text).
    model : str
        What the model is (e.g. "SmolLM2-135M-Instruct, Q4_1 de-quantised").
    title : str

    Returns
    -------
    section : ReportSection
        Text (model, rule, verdict counts), one table per paper, and the bridge table.

    Examples
    --------
    >>> t = pd.DataFrame({"paper": ["Sun"], "claim_id": ["P1"], "claim": ["x"],
    ...                   "measured": ["a: +1 ± 0.1"], "verdict": ["holds"]})
    >>> papers_claims_section(t).text.splitlines()[-1]
    'Verdicts: 1 holds, 0 partly, 0 not on this model.'
    """
    claims = _check_claims(claims)
    text = []
    if model:
        text.append(f"Model: {model}.")
    if rule:
        text.append(f"Verdict rule: {rule}")
    text.append(f"Verdicts: {_summary(claims)}.")
    section = ReportSection(title=title, text="\n\n".join(text))
    for paper, sub in claims.groupby("paper", sort=False):
        section.tables.append((f"{paper}: {_summary(sub)}.",
                               sub[["claim_id", "claim", "measured", "verdict"]].reset_index(drop=True)))
    if bridge is not None and len(bridge):
        require_columns(bridge, ("intervention",), "the bridge table")
        section.tables.append(("The bridge: change of the model's loss (bits/word, paired SE) beside the change "
                               "of the per-layer brain and reading-time profiles under the same intervention.",
                               bridge.reset_index(drop=True)))
    return section


def _md_cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _md_table(df: pd.DataFrame) -> list[str]:
    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * df.shape[1]]
    lines += ["| " + " | ".join(_md_cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return lines


def claims_markdown(claims: pd.DataFrame, *, bridge: pd.DataFrame | None = None, rule: str = "",
                    model: str = "") -> str:
    """The section of :func:`papers_claims_section` as Markdown (one table per paper)."""
    section = papers_claims_section(claims, bridge=bridge, rule=rule, model=model)
    lines = [f"## {section.title}", ""] + [p + "\n" for p in section.text.split("\n\n")]
    for caption, table in section.tables:
        lines += [f"**{caption}**", ""] + _md_table(table) + [""]
    return "\n".join(lines)


def section_html(section: ReportSection) -> str:
    """A small stand-alone HTML page of a section's text and tables (figures left out)."""
    parts = [f"<!doctype html><meta charset='utf-8'><title>{html.escape(section.title)}</title>",
             f"<h2>{html.escape(section.title)}</h2>"]
    parts += [f"<p>{html.escape(p)}</p>" for p in section.text.split("\n\n") if p]
    for caption, table in section.tables:
        parts.append(f"<h3>{html.escape(caption)}</h3>")
        parts.append(table.to_html(index=False, float_format=lambda v: f"{v:.3g}", escape=True))
    return "\n".join(parts) + "\n"


__all__ = ["CLAIMS_COLUMNS", "VERDICTS", "claims_markdown", "papers_claims_section", "section_html"]
