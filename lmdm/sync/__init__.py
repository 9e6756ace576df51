"""Playing with others: following and leading other instruments' time and control.

    link.py   Ableton Link: the stream's tempo and bar phase follow a Link session ([link] extra)
    midi.py   MIDI in and out: control changes, notes, clock ([midi] extra)

Runtime code here may import lmdm.session and lmdm_dsl, never lmdm.eval, lmdm.train or lmdm.cli.
"""
