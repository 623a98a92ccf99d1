"""The One-Euro filter (Casiez, Roussel and Vogel, "1 Euro Filter: A Simple Speed-based Low-pass
Filter for Noisy Input in Interactive Systems", CHI 2012), vectorised over any number of values.

A first-order low-pass filter whose cutoff frequency rises with the signal's speed: slow
movements are smoothed hard (jitter goes), fast ones barely (little lag). Per value, at time
``t`` with ``dt = t - t_prev`` (eq. 1-4 and algorithm 1 of the paper)::

    alpha(f) = 1 / (1 + 1 / (2 * pi * f * dt))
    dx_hat = alpha(d_cutoff) * (x - x_hat_prev) / dt + (1 - alpha(d_cutoff)) * dx_hat_prev
    cutoff = min_cutoff + beta * |dx_hat|
    x_hat  = alpha(cutoff) * x + (1 - alpha(cutoff)) * x_hat_prev

The first sample passes unchanged (``dx_hat = 0``). Times are explicit, so a track missed for a
few frames resumes with the right ``dt``. A NaN input (a value not observed) leaves that value's
state alone and gives NaN.
"""
import math

import numpy as np

__all__ = ['OneEuroFilter']


def _alpha(cutoff: np.ndarray, dt: np.ndarray) -> np.ndarray:
    """Smoothing factor of an exponential filter with ``cutoff`` Hz sampled every ``dt`` s."""
    return 1.0 / (1.0 + 1.0 / (2 * math.pi * cutoff * dt))


class OneEuroFilter:
    """One-Euro filter of a fixed-shape array of values (e.g. a track's box and keypoints).

    Args:
        min_cutoff (float): cutoff frequency in Hz at zero speed; lower smooths more (and lags
            more on slow movements).
        beta (float): how fast the cutoff rises with speed, in Hz per (unit / s) (for pixel
            values: per px/s); higher lags less on fast movements.
        d_cutoff (float): cutoff frequency in Hz of the speed estimate (the paper keeps 1 Hz).
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.0, d_cutoff: float = 1.0):
        if min_cutoff <= 0 or d_cutoff <= 0 or beta < 0:
            raise ValueError(f'need min_cutoff > 0, d_cutoff > 0 and beta >= 0; got '
                             f'{min_cutoff}, {d_cutoff} and {beta}')
        self.min_cutoff = min_cutoff
        self.beta = beta
        self.d_cutoff = d_cutoff
        self.x_hat = self.dx_hat = self.t_prev = None

    def __call__(self, x: np.ndarray, t: float) -> np.ndarray:
        """Filter the values ``x`` observed at time ``t`` (seconds, increasing).

        Args:
            x (np.ndarray): values, the same shape at every call; NaN where not observed.
            t (float): time of the observation in seconds.

        Returns:
            np.ndarray: the filtered values (float64), NaN where ``x`` is NaN.
        """
        x = np.asarray(x, dtype=np.float64)
        if self.x_hat is None:
            self.x_hat = np.full(x.shape, np.nan)
            self.dx_hat = np.zeros(x.shape)
            self.t_prev = np.full(x.shape, np.nan)
        elif x.shape != self.x_hat.shape:
            raise ValueError(f'the filter holds values of shape {self.x_hat.shape}, got {x.shape}')
        seen = ~np.isnan(x)
        first = seen & np.isnan(self.x_hat)
        update = seen & ~first
        dt = t - self.t_prev[update]
        if (dt <= 0).any():
            raise ValueError(f'time must increase: got t={t} after t={self.t_prev[update].max()}')
        self._step(x, update, dt)
        self.x_hat[first] = x[first]
        self.dx_hat[first] = 0.0
        self.t_prev[seen] = t
        return np.where(seen, self.x_hat, np.nan)

    def _step(self, x: np.ndarray, update: np.ndarray, dt: np.ndarray) -> None:
        """Algorithm 1 of the paper for the values in ``update``."""
        prev = self.x_hat[update]
        dx = (x[update] - prev) / dt
        dx_hat = _alpha(self.d_cutoff, dt) * dx + (1 - _alpha(self.d_cutoff, dt)) * \
            self.dx_hat[update]
        cutoff = self.min_cutoff + self.beta * np.abs(dx_hat)
        a = _alpha(cutoff, dt)
        self.x_hat[update] = a * x[update] + (1 - a) * prev
        self.dx_hat[update] = dx_hat
