"""Every fenced Python and shell block of the docs and the README runs, or says what it needs and why."""

from __future__ import annotations

import pytest

from tests.docs.blocks import ROOT, Block, PageRun, all_blocks, fenced_blocks

BLOCKS = all_blocks()
_RUNS: dict[str, PageRun] = {}


@pytest.fixture(scope="module")
def page_runs(tmp_path_factory):
    def get(page: str) -> PageRun:
        if page not in _RUNS:
            folder = tmp_path_factory.mktemp(page.replace("/", "_").removesuffix(".md"))
            _RUNS[page] = PageRun(folder, [b for b in BLOCKS if b.page == page])
        return _RUNS[page]
    yield get
    _RUNS.clear()


@pytest.mark.timeout(0)  # each block has its own limit (blocks.TIMEOUT); a page's earlier blocks may run first
@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_block_runs(block: Block, page_runs) -> None:
    if block.needs is not None:
        assert block.needs, f"{block.id}: '# needs:' without a reason"
        pytest.skip(f"needs {block.needs}")
    run = page_runs(block.page)
    outcome, failed_before = run.outcome(run.blocks.index(block))
    assert failed_before is None, f"an earlier block of {block.page} failed: {failed_before}"
    assert outcome is not None
    tail = outcome.output[-4000:]
    assert outcome.returncode is not None, f"{block.id}: still running after the time limit ({outcome.seconds:.0f} s)\n{tail}"
    assert outcome.returncode == 0, f"{block.id}: exit code {outcome.returncode} after {outcome.seconds:.0f} s\n{tail}"


def test_the_docs_have_blocks_to_run() -> None:
    pages = {b.page for b in BLOCKS}
    assert "README.md" in pages and any(p.startswith("docs/tutorials/") for p in pages)
    assert sum(b.needs is None for b in BLOCKS) >= 10


FENCES = '''
Text.

```python
print("a")
```

```text
not code
```

!!! note
    ```bash
    echo indented
    ```

````markdown
```python
inside an outer fence: not a block of this page
```
````

```py
# needs: an API key, to call a hosted model
call()
```
'''


def test_the_reader_sees_what_the_site_renders_as_code() -> None:
    blocks = fenced_blocks(FENCES, "x.md")
    assert [(b.language, b.code) for b in blocks] == [
        ("python", 'print("a")\n'), ("shell", "echo indented\n"),
        ("python", "# needs: an API key, to call a hosted model\ncall()\n")]
    assert [b.needs for b in blocks] == [None, None, "an API key, to call a hosted model"]
    assert blocks[1].line == 13


def test_a_failing_block_fails_and_a_later_block_names_it(tmp_path) -> None:
    blocks = fenced_blocks("```bash\necho hi > f.txt\n```\n\n```bash\ncat f.txt; exit 3\n```\n\n```python\nprint(1)\n```\n", "p.md")
    run = PageRun(tmp_path, blocks)
    first, _ = run.outcome(0)
    assert first.returncode == 0 and (tmp_path / "f.txt").read_text() == "hi\n"
    second, _ = run.outcome(1)
    assert second.returncode == 3 and "hi" in second.output
    assert run.outcome(2) == (None, "p.md:5")


def test_a_block_past_its_time_limit_is_stopped_with_what_it_started(tmp_path) -> None:
    from tests.docs.blocks import run_block

    block = fenced_blocks("```bash\nsleep 300 &\necho $! > pid\nsleep 300\n```\n", "p.md")[0]
    outcome = run_block(block, tmp_path, timeout=1.5)
    assert outcome.returncode is None and outcome.seconds < 30
    assert not _alive(int((tmp_path / "pid").read_text())), "the background sleep outlived its block"


def test_the_root_is_the_repository() -> None:
    assert (ROOT / "pyproject.toml").is_file() and (ROOT / "docs").is_dir()


def test_a_server_left_in_the_background_is_stopped_when_its_block_ends(tmp_path) -> None:
    from tests.docs.blocks import run_block

    block = fenced_blocks("```bash\nsleep 300 &\necho $! > pid\necho started\n```\n", "p.md")[0]
    outcome = run_block(block, tmp_path, timeout=120)
    assert outcome.returncode == 0 and "started" in outcome.output and outcome.seconds < 30
    assert not _alive(int((tmp_path / "pid").read_text())), "the background sleep outlived its block"


def _alive(pid: int) -> bool:
    try:
        return open(f"/proc/{pid}/stat").read().split()[2] not in ("Z", "X")
    except FileNotFoundError:
        return False
