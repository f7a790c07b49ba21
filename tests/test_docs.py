"""Docs that run: every ```bash/```sh/```console and ```python block of README.md and docs/*.md is
executed here, so that the docs cannot rot.

Each Markdown file runs in its own temporary working directory, its blocks in order (a later
block may use the files or names an earlier one made), with what the blocks refer to prepared
there:

- ``story.TextGrid`` (300 words from 20.5 s, 0.4 s apart) and ``bold.npy`` (80 TRs of 2 s x 3
  targets): a story and its responses, for ``neuroenc extract`` / ``fit`` / ``report``;
- ``sentences.csv`` (``id, sentence, passage``: 8 passages of 4 sentences) and ``responses.csv``
  (``id, lang, md``): a sentence-level data set;
- the model aliases ``smollm2-135m`` and ``minilm-l6`` resolve to tiny random models of the
  same families and depths (a Llama of 30 blocks, a BERT of 6, 16 and 32 dimensions wide) saved
  in the directory, so that extraction takes seconds; everything else (the CLI, the library
  calls, their options) is the real one;
- ``NEUROENC_DATA`` is the real data folder (``../shared/data``): a file whose blocks load a
  data set is skipped without it.

Shell blocks may hold only ``neuroenc ...`` commands (run in this process through
:func:`neuroenc.cli.main`, which must return 0); ``# comments`` and ``\\`` continuations are
read as a shell would, and in ``console`` blocks only the lines after a ``$`` prompt are
commands. A block that cannot run here (``make demo`` installs a virtual environment and runs
for minutes) is preceded by ``<!-- doctest: skip (reason) -->``; the reason is required.
"""
from __future__ import annotations

import logging
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
RUN_LANGS = {"bash": "shell", "sh": "shell", "console": "shell", "python": "python"}
SKIP = re.compile(r"<!--\s*doctest:\s*skip\s*(?:\((?P<reason>[^)]*)\))?\s*-->")
FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>[^\n`]*)$")
#: Calls that read a real data set (or its folder): a file with a Python block that makes one
#: needs NEUROENC_DATA.
DATA_CALLS = re.compile(r"\bload_(alice|naturalstories|naturalstories_rt|lebel2023|narratives|lpp|megmasc)\(|"
                        r"NEUROENC_DATA")
#: The most runnable blocks the README and docs/ may skip together (skips must stay few).
MAX_SKIPS = 6


@dataclass
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    skip: str | None  # the reason, if the block is marked to be skipped

    def where(self) -> str:
        return f"{_shown(self.path)}:{self.line}"


def _shown(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def code_blocks(path: Path) -> list[Block]:
    """The fenced code blocks of a Markdown file, with the skip marker right before each."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if m is None:
            i += 1
            continue
        fence, lang = m.group("fence"), m.group("info").strip().split(" ")[0].lower()
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith(fence):
            j += 1
        k = i - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        marker = SKIP.search(lines[k]) if k >= 0 else None
        skip = None
        if marker is not None:
            skip = (marker.group("reason") or "").strip()
            if not skip:
                raise AssertionError(f"{_shown(path)}:{k + 1}: a doctest skip needs a reason: "
                                     "<!-- doctest: skip (why this block cannot run in the test) -->")
        blocks.append(Block(path, i + 1, lang, "\n".join(lines[i + 1:j]) + "\n", skip))
        i = j + 1
    return blocks


def shell_commands(block: Block) -> list[list[str]]:
    """The commands of a shell block, continuations joined and comments dropped."""
    text = block.code
    if block.lang == "console":
        kept, going = [], False
        for line in text.splitlines():
            if line.startswith("$ "):
                kept.append(line[2:])
                going = line.rstrip().endswith("\\")
            elif going:
                kept.append(line)
                going = line.rstrip().endswith("\\")
        text = "\n".join(kept)
    text = re.sub(r"\\\n", " ", text)
    commands = []
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        if words:
            commands.append(words)
    return commands


# ---------------------------------------------------------------------- fixtures
def _write_textgrid(path: Path, words: list[str], onsets: np.ndarray, duration: float) -> None:
    intervals = []
    t = 0.0
    for word, on in zip(words, onsets):
        if on > t:
            intervals.append((t, on, ""))
        intervals.append((on, on + 0.35, word))
        t = on + 0.35
    intervals.append((t, duration, ""))
    rows = ['File type = "ooTextFile"', 'Object class = "TextGrid"', "", "xmin = 0", f"xmax = {duration}",
            "tiers? <exists>", "size = 1", "item []:", "    item [1]:", '        class = "IntervalTier"',
            '        name = "word"', "        xmin = 0", f"        xmax = {duration}",
            f"        intervals: size = {len(intervals)}"]
    for k, (a, b, text) in enumerate(intervals, start=1):
        rows += [f"        intervals [{k}]:", f"            xmin = {a:.3f}", f"            xmax = {b:.3f}",
                 f'            text = "{text}"']
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    """The files the docs' blocks use, and tiny stand-ins for the model aliases."""
    from _stimuli_fixtures import write_sentences

    from neuroenc.testing import TINY_TEXT, tiny_bert, tiny_llama

    root = tmp_path_factory.mktemp("doc-fixtures")
    # as SmolLM2's, its tokenizer has a BOS token but does not add it to a text
    tiny_llama(n_layer=30, hidden_size=16, n_head=2, n_kv_head=1, max_positions=4096, bos=False,
               path=root / "models" / "smollm2-135m")
    tiny_bert(n_layer=6, hidden_size=32, path=root / "models" / "minilm-l6")
    rng = np.random.default_rng(0)
    words = (TINY_TEXT.split() * 2)[:300]
    onsets = 20.5 + 0.4 * np.arange(len(words))
    (root / "files").mkdir()
    _write_textgrid(root / "files" / "story.TextGrid", words, onsets, 170.0)
    np.save(root / "files" / "bold.npy", rng.standard_normal((80, 3)))
    ids = write_sentences(root / "files" / "sentences.csv", n_passages=8, per_passage=4)
    lines = ["id,lang,md"] + [f"{i},{a:.4f},{b:.4f}" for i, (a, b) in zip(ids, rng.standard_normal((len(ids), 2)))]
    (root / "files" / "responses.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


@pytest.fixture
def workdir(fixtures, tmp_path, monkeypatch):
    """A working directory holding the fixture files, with the aliases pointing at tiny models."""
    import shutil

    import neuroenc.features.models as models

    for f in (fixtures / "files").iterdir():
        shutil.copy(f, tmp_path / f.name)
    tiny = {name: fixtures / "models" / name for name in ("smollm2-135m", "minilm-l6")}
    real = models.resolve_alias

    def tiny_alias(name):
        if name in tiny:
            return {**models.MODEL_ALIASES[name], "path": tiny[name], "gguf_file": None}
        return real(name)

    monkeypatch.setattr(models, "resolve_alias", tiny_alias)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _data_dir() -> Path | None:
    for candidate in [os.environ.get("NEUROENC_DATA"), REPO.parent / "shared" / "data"]:
        if candidate and (Path(candidate) / "alice-brennan2016").is_dir():
            return Path(candidate).resolve()
    return None


# ---------------------------------------------------------------------- tests
def test_blocks_are_found_and_skips_are_few_with_reasons():
    blocks = {path.name: code_blocks(path) for path in DOCS}
    readme = [b for b in blocks["README.md"] if b.lang in RUN_LANGS]
    assert sum(b.lang == "python" for b in readme) >= 1 and sum(b.lang == "bash" for b in readme) >= 2
    skipped = [b for bs in blocks.values() for b in bs if b.skip and b.lang in RUN_LANGS]
    assert len(skipped) <= MAX_SKIPS, [b.where() for b in skipped]
    assert all(len(b.skip) >= 10 for b in skipped), [(b.where(), b.skip) for b in skipped]
    # every shell command that runs is a neuroenc command
    for bs in blocks.values():
        for b in bs:
            if RUN_LANGS.get(b.lang) == "shell" and not b.skip:
                for words in shell_commands(b):
                    assert words[0] == "neuroenc", f"{b.where()}: {' '.join(words)!r} is not a neuroenc command; " \
                                                   "mark the block <!-- doctest: skip (reason) -->"


def test_readme_is_a_front_door():
    """At most 150 lines, in the order a newcomer needs: what it is and the two commands, a
    Python quickstart of at most 15 lines, their own story, sentence-level data, how to read
    the summary, and where to go next."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 150
    headings = re.findall(r"^## (.+)$", text, flags=re.M)
    assert headings == ["Quickstart in Python", "Your own story", "Sentence-level data sets", "Reading the summary",
                        "Going further"]
    blocks = code_blocks(REPO / "README.md")
    assert "make demo" in blocks[0].code and "make test" in blocks[0].code
    quickstart = next(b for b in blocks if b.lang == "python")
    assert len(quickstart.code.strip().splitlines()) <= 15
    for page in ("statistics", "datasets", "layer-science", "cli", "scaling", "security"):
        assert f"(docs/{page}.md" in text, page


def test_the_harness_reads_blocks_as_a_shell_would(tmp_path):
    md = tmp_path / "x.md"
    md.write_text("text\n\n<!-- doctest: skip (needs the real model) -->\n```bash\nmake demo\n```\n\n"
                  "```console\n$ neuroenc fit --features f.h5 \\\n    --out r.h5  # a comment\nResults written\n```\n"
                  "```yaml\na: 1\n```\n", encoding="utf-8")
    skip, console, yaml = code_blocks(md)
    assert skip.skip == "needs the real model" and skip.line == 4
    assert shell_commands(console) == [["neuroenc", "fit", "--features", "f.h5", "--out", "r.h5"]]
    assert yaml.lang == "yaml" and console.skip is None
    md.write_text("<!-- doctest: skip -->\n```bash\nmake demo\n```\n", encoding="utf-8")
    with pytest.raises(AssertionError, match="a doctest skip needs a reason"):
        code_blocks(md)


@pytest.mark.parametrize("path", DOCS, ids=[p.name for p in DOCS])
def test_code_blocks_run(path, workdir, monkeypatch, caplog):
    """Every block runs, and the docs' own commands raise none of the warnings that say the
    input or the settings are wrong (a word at the attention sink, coded TextGrid labels)."""
    from neuroenc.cli import main

    blocks = [b for b in code_blocks(path) if b.lang in RUN_LANGS and not b.skip]
    if not blocks:
        pytest.skip(f"{path.name} has no blocks to run")
    if any(b.lang == "python" and DATA_CALLS.search(b.code) for b in blocks):
        data = _data_dir()
        if data is None:
            pytest.skip("real data not found: set NEUROENC_DATA or provide ../shared/data")
        monkeypatch.setenv("NEUROENC_DATA", str(data))
    namespace: dict = {"__name__": "__docs__"}
    with caplog.at_level(logging.WARNING, logger="neuroenc"):
        for block in blocks:
            if RUN_LANGS[block.lang] == "python":
                exec(compile(block.code, block.where(), "exec"), namespace)  # noqa: S102
                continue
            for words in shell_commands(block):
                code = main(words[1:])
                assert code == 0, f"{block.where()}: {' '.join(words)!r} exited with {code}"
    for bad in ("attention sink", "coded annotations"):
        assert bad not in caplog.text, caplog.text

