"""Text built a column at a time with Arrow's string kernels: many lines in one buffer, fast.

The demo generator writes its NVML files with these; bench/telemetry.py does the same for its
synthetic collector files.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def lit(text: str) -> pa.Scalar:
    """A constant piece of every line."""
    return pa.scalar(text, pa.large_string())


def text(values: np.ndarray | list) -> pa.Array:
    """Values as text, as Python's str() writes integers."""
    return pc.cast(pa.array(values), pa.large_string())


def join(*pieces: pa.Array | pa.Scalar) -> pa.Array:
    """Each line: its pieces one after another."""
    return pc.binary_join_element_wise(*pieces, lit(""))


def buffer(lines: pa.Array) -> tuple[memoryview, np.ndarray]:
    """The lines' bytes, end to end, and the offset of each line in them (one more than lines)."""
    offsets = np.frombuffer(lines.buffers()[1], np.int64)[lines.offset:lines.offset + len(lines) + 1]
    return memoryview(lines.buffers()[2]), offsets
