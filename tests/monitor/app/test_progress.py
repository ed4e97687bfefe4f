"""Progress on a non-terminal: one line every few seconds, with the total and the time left."""

from __future__ import annotations

import io

from monitor.app.progress import LogProgress, NoProgress, progress_for


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_log_progress_prints_a_line_every_interval_with_rate_and_eta() -> None:
    clock, out = Clock(), io.StringIO()
    p = LogProgress("replay", every=5, stream=out, clock=clock)
    p.phase("detecting", 1000, "events")
    for step in range(1, 11):
        clock.t = step * 1.0
        p.update(step * 100)
    p.close()
    lines = out.getvalue().splitlines()
    assert lines[0] == (
        "amplimon: replay: detecting 500 of 1,000 events (50%) · 100 events/s · "
        "0:00:05 elapsed · about 0:00:05 left"
    )
    assert lines[1].startswith("amplimon: replay: detecting 1,000 of 1,000 events (100%)")
    assert "left" not in lines[-1]  # the phase's closing line
    assert len(lines) == 3


def test_bytes_phase_and_short_phases_stay_quiet() -> None:
    clock, out = Clock(), io.StringIO()
    p = LogProgress("audit", every=5, stream=out, clock=clock)
    p.phase("decoding", 3 * 2**30, "bytes")
    clock.t = 6
    p.update(2**30)
    p.phase("detecting", 10, "events")  # ends 'decoding' (a line), starts a short one
    clock.t = 7
    p.update(10)
    p.close()
    lines = out.getvalue().splitlines()
    assert (
        lines[0] == "amplimon: audit: decoding 33% of 3.0 GB · 0:00:06 elapsed · about 0:00:12 left"
    )
    assert all("detecting" not in x for x in lines)


def test_no_progress_when_switched_off() -> None:
    assert isinstance(progress_for("replay", False), NoProgress)
    assert isinstance(progress_for("replay", None), LogProgress)  # pytest's stderr: no terminal
