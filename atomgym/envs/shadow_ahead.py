"""The reward shadow's next episode, run ahead on another core.

With ``reward_baseline="default"`` or ``"score"`` a machine's reward needs the default-settings
episode of the same scenario and simulator seed (envs/core.py: the shadow). It depends on nothing
the agent does, so once the seed of a machine's *next* episode is known (AtomVectorEnv draws each
env's seeds from its own generator, which can be read ahead without being advanced) that episode
can run while the agent's current one is still being played: in a background thread, whose
compiled ticks release the GIL (kernel/jit.py: ``nogil``) and so use a core that a one-thread
training leaves idle. When the machine first writes a knob in that episode, Core takes the
per-interval rewards from here instead of running the shadow itself (waiting if the run is under
way). The rewards are those of the shadow run at reset, bit for bit: the simulator is
deterministic and the same function (:func:`shadow_intervals`) computes both.

Only machines that wrote a knob in their last episode are run ahead (a machine that stays at the
defaults is its own shadow and never needs one), so a gated policy's idle machines cost nothing.
"""
from __future__ import annotations

import atexit
import os
import threading
import weakref

import numpy as np

from ..sim import Simulator
from ..sim.scenario import Scenario
from ._compiled import shadow_episode
from .cost import episode_terms

DEFAULT_COST_CACHE: dict[tuple, np.ndarray] = {}   # (scenario key, seed, ticks, steps) -> raw term totals + [deadlocked]

# One thread per process serves every ShadowAhead (a training's envs may be several batches): one
# spare core, and two threads running ahead would only take turns on it
_CV = threading.Condition()
_LIVE: "weakref.WeakSet[ShadowAhead]" = weakref.WeakSet()
_THREAD: threading.Thread | None = None
SHADOW_NICE = 10                  # the background thread's niceness: it uses what the agent's threads leave
_STOP = np.zeros(1, np.int64)      # set at exit: a run under way ends before its next interval
_NO_STOP = np.zeros(1, np.int64)


def shadow_intervals(sh: Simulator, m: np.ndarray, k0: int, steps: int, ticks: int, was: np.ndarray, cost_table: tuple,
                     weights: np.ndarray, penalty: float, out: np.ndarray, stop: np.ndarray | None = None) -> None:
    """The default-settings intervals k0..steps-1 of the machines in ``m`` on ``sh``, interval by
    interval as in lockstep (each the start of an interval, its ticks and terms_batch() of its
    reward: _compiled.shadow_episode(), one compiled call), each interval's reward written to
    ``out[m, k]``; ``was``: each machine's terminated flag before interval k0 (updated in place);
    ``stop``: a flag another thread may set to end the run early (its rewards then incomplete)."""
    knobs, bp, bw, mask = sh._knob_args({}, None, None, m, "step")
    prev = np.zeros((sh.B, sh.counters.shape[1]))
    shadow_episode(sh.state, knobs, bp, bw, mask, int(ticks), prev, int(k0), int(steps), cost_table, weights,
                   float(penalty), was, out, _NO_STOP if stop is None else stop)


def record_default_totals(src: Simulator, idx, keys) -> None:
    """Cache the raw term totals (+ deadlocked flag) of the default-settings episodes that machines
    ``idx`` of ``src`` have just finished, under ``keys`` (one per machine; kept if present)."""
    for b, key in zip(idx, keys):
        if key not in DEFAULT_COST_CACHE:
            DEFAULT_COST_CACHE[key] = np.array(episode_terms(src.counter_dict(int(b)), actions=0.0)
                                               + [float(src.terminated[b])])


class ShadowAhead:
    """Default-settings episodes of given (machine, seed) pairs, run by the process's background
    thread on this object's own Simulator (``n`` machines of ``scenario``, serial: never numba's
    parallel pool, which one process may enter from one thread only). request() queues one, take()
    hands its rewards over."""

    def __init__(self, scenario: Scenario, n: int, steps: int, ticks: int, cost_table: tuple, weights: np.ndarray,
                 penalty: float, skey: str) -> None:
        self.sim = Simulator(scenario, n_machines=n, parallel=False)
        self.n, self.steps, self.ticks = n, steps, ticks
        self._args = (cost_table, weights, penalty)
        self.skey = skey
        self._queued: dict[int, int] = {}                        # machine -> seed, reset and waiting
        self._running: dict[int, int] = {}                       # machine -> seed of the run under way
        self._done: dict[tuple[int, int], np.ndarray] = {}       # (machine, seed) -> per-interval rewards
        self._error: BaseException | None = None

    def request(self, i: int, seed: int) -> None:
        """Run machine i's default episode with ``seed`` ahead. Its reset (Python, holding the GIL)
        runs here, in the caller's thread, so that the background thread runs compiled code only; a
        machine whose previous run is still under way is not asked (its shadow runs when needed)."""
        global _THREAD
        with _CV:
            if (i, seed) in self._done or i in self._running or self._queued.get(i) == seed:
                return
            self._queued.pop(i, None)
        seeds = np.zeros(self.n, np.int64)
        seeds[i] = seed
        m = np.zeros(self.n, np.bool_)
        m[i] = True
        self.sim.reset(seeds, mask=m)          # row i: no run of the background thread uses it now
        with _CV:
            self._queued[i] = seed
            _LIVE.add(self)
            if _THREAD is None or not _THREAD.is_alive():
                _THREAD = threading.Thread(target=_serve, name="atomgym-shadow-ahead", daemon=True)
                _THREAD.start()
            _CV.notify_all()

    def take(self, i: int, seed: int) -> np.ndarray | None:
        """Machine i's per-interval default rewards for ``seed``: at once if run, after the run if
        under way; None if it was not asked or has not started (it is dropped: the caller runs it)."""
        with _CV:
            if self._queued.get(i) == seed:
                del self._queued[i]
                return None
            while self._running.get(i) == seed and self._error is None:
                _CV.wait()
            if self._error is not None:
                raise RuntimeError("the reward shadow's background run failed") from self._error
            return self._done.pop((i, seed), None)

    def forget(self, i: int, keep: tuple[int, ...]) -> None:
        """Drop machine i's finished or queued runs of seeds not in ``keep`` (after its reset)."""
        with _CV:
            for key in [k for k in self._done if k[0] == i and k[1] not in keep]:
                del self._done[key]
            if i in self._queued and self._queued[i] not in keep:
                del self._queued[i]

    def close(self) -> None:
        """Drop the queued runs and wait for the one under way, if any."""
        with _CV:
            self._queued.clear()
            while self._running and self._error is None:
                _CV.wait()
            _LIVE.discard(self)

    def _group(self) -> dict[int, int]:
        """(under _CV) Every queued machine's run, now under way."""
        group = dict(self._queued)
        self._queued.clear()
        self._running.update(group)
        return group

    def _episodes(self, group: dict[int, int]) -> np.ndarray:
        """The default episodes of the machines in ``group`` (machine -> seed), reset by request()."""
        sh = self.sim
        m = np.zeros(self.n, np.bool_)
        idx = np.array(sorted(group), np.int64)
        m[idx] = True
        out = np.zeros((self.n, self.steps))
        shadow_intervals(sh, m, 0, self.steps, self.ticks, sh.terminated.copy(), *self._args, out, _STOP)
        if _STOP[0]:
            raise SystemExit("atomgym: the interpreter is exiting")
        record_default_totals(sh, idx, [(self.skey, int(group[i]), self.ticks, self.steps) for i in idx])
        return out


@atexit.register
def _shutdown() -> None:
    """At exit: end the background run under way (it stops before its next interval) and wait for
    it, so that no thread runs compiled code while the interpreter tears down."""
    _STOP[0] = 1
    with _CV:
        _CV.notify_all()
    t = _THREAD
    if t is not None and t.is_alive():
        t.join(timeout=10.0)


def _serve() -> None:
    """The background thread: the queued runs of every live ShadowAhead, a group at a time, taking
    the objects in turn; an error is handed to the object's waiting take(). It runs at a lower
    priority (nice +10, Linux: per thread): its work is ahead of need, the agent's step is not."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), SHADOW_NICE)
    except (AttributeError, OSError):
        pass
    turn = 0
    while not _STOP[0]:
        with _CV:
            while True:
                if _STOP[0]:
                    return
                busy = [a for a in list(_LIVE) if a._queued]
                if busy:
                    break
                _CV.wait()
            a = busy[turn % len(busy)]
            turn += 1
            group = a._group()
        try:
            rewards = a._episodes(group)
        except BaseException as e:
            with _CV:
                a._error = e
                a._running.clear()
                _CV.notify_all()
            continue
        with _CV:
            for i, s in group.items():
                a._done[(i, s)] = rewards[i]
                del a._running[i]
            _CV.notify_all()
        del a, busy
