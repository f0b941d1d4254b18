"""A small circuit breaker for the OPA REST path: a dead server costs one timeout per window.

States: ``closed`` (calls go through), ``open`` (calls fail at once with ``EngineError`` for
``reset_after`` seconds), ``half_open`` (exactly one trial call goes through; its outcome closes or
re-opens the circuit; other calls during the trial fail at once). Thread-safe.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Literal, TypeVar

from enforcer.ports import EngineError

State = Literal["closed", "open", "half_open"]
T = TypeVar("T")


class CircuitOpenError(EngineError):
    """Raised instead of calling the engine while the circuit is open."""


class CircuitBreaker:
    """Count consecutive failures and short-circuit calls after ``failure_threshold`` of them.

    Parameters
    ----------
    failure_threshold
        Consecutive failures that open the circuit (at least 1).
    reset_after
        Seconds the circuit stays open before one half-open trial call is let through.
    clock
        Monotonic clock in seconds (injectable for tests).
    """

    def __init__(
        self,
        failure_threshold: int = 3,
        reset_after: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if reset_after < 0:
            raise ValueError("reset_after must not be negative")
        self.failure_threshold = failure_threshold
        self.reset_after = reset_after
        self._clock = clock
        self._lock = threading.Lock()
        self._state: State = "closed"
        self._failures = 0
        self._opened_at = 0.0
        self._trial_in_flight = False
        #: How many calls were refused without reaching the engine.
        self.short_circuited = 0
        #: How many times the circuit opened.
        self.times_opened = 0

    @property
    def state(self) -> State:
        """The current state (``open`` turns into ``half_open`` only when a call asks)."""
        with self._lock:
            return self._state

    @property
    def consecutive_failures(self) -> int:
        """Failures since the last success."""
        with self._lock:
            return self._failures

    def before_call(self) -> None:
        """Ask to make one call.

        Raises
        ------
        CircuitOpenError
            While open, or while a half-open trial is already in flight.
        """
        with self._lock:
            if self._state == "closed":
                return
            now = self._clock()
            if self._state == "open":
                remaining = self._opened_at + self.reset_after - now
                if remaining > 0:
                    self.short_circuited += 1
                    raise CircuitOpenError(
                        f"circuit open after {self._failures} consecutive failures; "
                        f"next trial in {remaining:.1f}s"
                    )
                self._state = "half_open"
                self._trial_in_flight = False
            if self._trial_in_flight:
                self.short_circuited += 1
                raise CircuitOpenError("circuit half-open: a trial call is already in flight")
            self._trial_in_flight = True

    def record_success(self) -> None:
        """The call reached the engine and got an answer: close the circuit."""
        with self._lock:
            self._state = "closed"
            self._failures = 0
            self._trial_in_flight = False

    def record_failure(self) -> None:
        """The call failed: count it, and open the circuit at the threshold or after a failed trial."""
        with self._lock:
            self._failures += 1
            if self._state == "half_open" or self._failures >= self.failure_threshold:
                if self._state != "open":
                    self.times_opened += 1
                self._state = "open"
                self._opened_at = self._clock()
            self._trial_in_flight = False

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` under the breaker; any ``EngineError`` it raises counts as a failure.

        Raises
        ------
        CircuitOpenError
            Without calling ``fn`` while the circuit is open.
        EngineError
            Whatever ``fn`` raised.
        """
        self.before_call()
        try:
            result = fn()
        except EngineError:
            self.record_failure()
            raise
        except BaseException:
            # Not an engine failure (e.g. KeyboardInterrupt): release a half-open trial slot.
            with self._lock:
                self._trial_in_flight = False
            raise
        self.record_success()
        return result
