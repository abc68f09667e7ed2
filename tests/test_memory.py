"""release_memory gives freed memory back to the system (Linux/glibc), so the next step of a lesson starts small."""
import sys

import numpy as np
import pytest

from transfer_course.memory import release_memory, resident_memory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc and uses glibc's malloc_trim")
def test_freed_memory_held_by_the_allocator_is_returned():
    release_memory()
    blocks = [np.ones(500) for _ in range(60_000)]  # 60k blocks of 4 kB from the heap: ~240 MB
    pin = np.ones(500)  # allocated last: the heap's top stays in use, so glibc cannot shrink it by itself
    del blocks
    held = resident_memory()
    release_memory()
    returned = held - resident_memory()
    assert returned > 150e6, f"only {returned / 1e6:.0f} MB returned"
    del pin
