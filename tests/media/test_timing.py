"""Frame times read from ffmpeg's framecrc listing and the filter that gives them back (clipswap.media.timing), as
pure functions; tests/media/test_video_fidelity.py checks them through ffmpeg on real clips."""

from __future__ import annotations

import io
from fractions import Fraction

from clipswap.media.timing import FrameTimes, frame_times, timing_filter

_LISTING = """#format: frame checksums
#version: 2
#hash: CRC-32
#tb 0: 1/12800
#media_type 0: video
#codec_id 0: rawvideo
#dimensions 0: 64x48
#sar 0: 1/1
#stream#, dts,        pts, duration,     size, hash
0,          0,       1024,      512,     9216, 0x1
0,        512,       1536,      512,     9216, 0x2
0,       1024,       1536,      512,     9216, 0x3
0,       2304,       2816,        0,     9216, 0x4
"""


def test_frame_times_read_line_by_line_from_the_start_of_the_file():
    """Times count from the file's start (0.08 s here), a repeated time is moved one tick on (a muxer refuses it),
    and a last frame without a duration keeps the spacing before it. A text and an open stream read alike."""
    for listing in (_LISTING, io.StringIO(_LISTING)):
        times = frame_times(listing, start_seconds=0.08)
        assert times == FrameTimes(Fraction(1, 12800), (0, 512, 513, 1792), 1279)
    assert frame_times("#tb 0: 1/25\n") is None and frame_times("0, 0, 0, 1, 1, 0x1\n") is None


def test_the_filter_is_one_run_for_a_constant_rate_and_a_tree_for_a_variable_one():
    constant = FrameTimes(Fraction(1, 25), tuple(range(100)), 1)
    assert timing_filter(constant) == "settb=1/25,setpts='0+(N-0)*1'"
    variable = FrameTimes(Fraction(1, 100), (0, 4, 8, 18, 28, 38), 300)
    assert timing_filter(variable) == "settb=1/100,setpts='if(lt(N,3),0+(N-0)*4,18+(N-3)*10)'"
    assert variable.variable and not constant.variable
    assert variable.duration == 3.38 and variable.intervals[-1] == 3.0
