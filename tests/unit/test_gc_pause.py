"""gc_paused disables the cyclic collector for its block and restores what was there before."""

from __future__ import annotations

import gc

from node.fhir.gc_pause import gc_paused


def test_nested_pauses_restore_the_collector_once() -> None:
    """Inside (nested) pauses the collector is off; after the outermost it is on again."""
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off() -> None:
    """If the collector was disabled before, the pause does not turn it on."""
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
