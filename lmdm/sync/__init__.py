"""Playing with others: following and leading other instruments' time and control.

    link.py        Ableton Link: the stream's tempo and bar phase follow a Link session ([link] extra)
    midi.py        MIDI in and out: control changes, notes, clock ([midi] extra)
    midi_clock.py  MIDI clock out: the session's clock as 24 ticks a beat, Start on its bar lines
    heard.py       the stream time reaching the listener now (the engine's device, or the wall clock)

Runtime code here may import lmdm.session and lmdm_dsl, never lmdm.eval, lmdm.train or lmdm.cli.
"""
