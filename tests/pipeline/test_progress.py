import io

import pytest

from pipeline.progress import Lines, progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _shown(monkeypatch):
    monkeypatch.delenv("TQDM_DISABLE", raising=False)


def test_a_log_gets_one_line_at_start_and_one_at_end():
    log = io.StringIO()
    assert list(progress(range(5000), desc="features", unit="clip", stream=log)) == list(
        range(5000)
    )
    lines = log.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0] == "features: 5000 clip started"
    assert lines[1].startswith("features: 5000 clip in ")


def test_manual_updates_and_postfix_reach_the_closing_line():
    log = io.StringIO()
    with progress(total=300, desc="finetune-teacher", unit="step", stream=log) as bar:
        for _ in range(300):
            bar.update()
            bar.set_postfix(loss="0.123")
    lines = log.getvalue().splitlines()
    assert len(lines) == 2 and lines[-1].endswith("(loss=0.123)")
    assert lines[-1].startswith("finetune-teacher: 300 step in ")


def test_a_terminal_gets_a_live_bar():
    terminal = Terminal()
    bar = progress(range(3), desc="synth", stream=terminal)
    assert not isinstance(bar, Lines)
    assert list(bar) == [0, 1, 2]
    assert "synth" in terminal.getvalue() and "3/3" in terminal.getvalue()


def test_tqdm_disable_silences_the_lines(monkeypatch):
    monkeypatch.setenv("TQDM_DISABLE", "1")
    log = io.StringIO()
    assert list(progress([1, 2], desc="x", stream=log)) == [1, 2]
    assert log.getvalue() == ""
