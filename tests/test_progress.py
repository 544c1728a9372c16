"""Progress reports: bars in a terminal, a line every ~30 s in a log, lanes by the cores."""

from pggan_core import progress
from pggan_core.progress import Progress, clock
from pggan_core.runs.reuse import lanes_and_threads


def test_a_log_gets_a_line_every_interval_and_at_the_end(monkeypatch, capsys):
    now = [0.0]
    monkeypatch.setattr(progress.time, "perf_counter", lambda: now[0])
    bar = Progress(100, "rop/demo/seg", terminal=False, every=30)
    for step in range(100):
        now[0] = step + 1.0  # one step per second
        bar.update(1, status="32 px fade", detail="16 img/s")
    bar.update(0, detail="16 img/s")  # a log entry at the last step: no second last line
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4  # at 30, 60 and 90 s, and at the end
    assert lines[0] == ("rop/demo/seg: 32 px fade, step 30/100 (30 %), 16 img/s, ETA 1:10")
    assert lines[-1].endswith("step 100/100 (100 %), 16 img/s, done in 1:40")


def test_a_disabled_report_is_silent_and_a_terminal_gets_a_bar(capsys):
    quiet = Progress(10, "x", enabled=False, terminal=False, every=0)
    quiet.update(10)
    assert capsys.readouterr().out == ""
    bar = Progress(10, "x", terminal=True)
    assert bar.bar is not None
    bar.close()


def test_clock_and_lanes():
    assert clock(62) == "1:02" and clock(3723) == "1:02:03"
    assert lanes_and_threads(4, cores=2) == (2, 1)
    assert lanes_and_threads(4, cores=8) == (4, 2)  # an 8-core laptop is not held to two lanes
    assert lanes_and_threads(4, cores=1) == (1, 1)
