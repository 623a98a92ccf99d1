"""The One-Euro filter against values computed by hand from the paper's equations."""
import math

import numpy as np
import pytest

from turtle_plugin.apis import OneEuroFilter

# alpha(f, dt) = 1 / (1 + 1 / (2 pi f dt)); d_cutoff = 1 Hz, dt = 0.1 s:
A_D = 1 / (1 + 1 / (2 * math.pi * 0.1))  # 0.385870
# min_cutoff 1, beta 0.5, inputs 0, 1, 1 at t = 0, 0.1, 0.2, then 2 at t = 0.5 (a 0.3 s gap):
# t=0.1: dx = 10, dx_hat = A_D * 10 = 3.858695, cutoff = 1 + 0.5 * 3.858695 = 2.929348,
#        alpha = 1 / (1 + 1 / (2 pi 2.929348 0.1)) = 0.647957, x_hat = 0.647957 * 1
# t=0.2: dx = (1 - 0.647957) / 0.1 = 3.520428, dx_hat = A_D * 3.520428 + (1 - A_D) * 3.858695
#        = 3.728168, cutoff = 2.864084, alpha = 0.642801,
#        x_hat = 0.642801 + 0.357199 * 0.647957 = 0.874251
# t=0.5: dt = 0.3, alpha_d = 1 / (1 + 1 / (2 pi 0.3)) = 0.653374,
#        dx = (2 - 0.874251) / 0.3 = 3.752498, dx_hat = 0.653374 * 3.752498 + 0.346626 * 3.728168
#        = 3.744065, cutoff = 2.872032, alpha = 0.844083,
#        x_hat = 0.844083 * 2 + 0.155917 * 0.874251 = 1.824476
EXPECTED = [0.0, 0.647957, 0.874251, 1.824476]


def test_matches_hand_computed_values():
    filt = OneEuroFilter(min_cutoff=1.0, beta=0.5, d_cutoff=1.0)
    out = [filt(np.array([x]), t)[0] for x, t in [(0, 0.0), (1, 0.1), (1, 0.2), (2, 0.5)]]
    assert out == pytest.approx(EXPECTED, abs=1e-6)


def test_beta_zero_is_a_fixed_low_pass():
    """beta = 0: cutoff = min_cutoff, so a step is followed with alpha = A_D each frame:
    1 - (1 - A_D)^n after n frames."""
    filt = OneEuroFilter(min_cutoff=1.0, beta=0.0)
    filt(np.zeros(2), 0.0)
    out = [filt(np.ones(2), 0.1 * n)[0] for n in range(1, 4)]
    assert out == pytest.approx([1 - (1 - A_D)**n for n in range(1, 4)], abs=1e-9)


def test_values_are_independent_and_nan_skips_a_value():
    """Each value has its own state; a NaN input gives NaN and leaves that value's state (and
    time) alone, so it resumes with the real time step."""
    both = OneEuroFilter(1.0, 0.5)
    alone = OneEuroFilter(1.0, 0.5)
    both(np.array([0., 5.]), 0.0)
    alone(np.array([0.]), 0.0)
    out = both(np.array([np.nan, 7.]), 0.1)
    assert np.isnan(out[0]) and not np.isnan(out[1])
    # the first value's step is 0.2 s, from its last observation
    assert both(np.array([1., 7.]), 0.2)[0] == alone(np.array([1.]), 0.2)[0]


def test_first_sample_passes_and_bad_input_is_refused():
    filt = OneEuroFilter()
    assert filt(np.array([3., -2.]), 1.0).tolist() == [3., -2.]
    with pytest.raises(ValueError, match='time must increase'):
        filt(np.array([3., -2.]), 1.0)
    with pytest.raises(ValueError, match='shape'):
        filt(np.zeros(3), 2.0)
    with pytest.raises(ValueError, match='min_cutoff > 0'):
        OneEuroFilter(min_cutoff=0.)
