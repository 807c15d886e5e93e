"""Parse the messages of a batch: here, or in a worker process while this one handles them.

Parsing is a quarter of the work on a message and needs nothing but its bytes, so a
backlog is parsed by a worker process (``[bot] parse_workers``) while this process
classifies, handles and commits the messages already parsed: two cores at work instead
of one. Results come back in the batch's order. A batch too small to be worth the trip
(one new message while idling) is parsed here, and so is a batch that arrives while the
worker is still starting (a fresh interpreter takes a few hundred milliseconds to import
the parser), and everything if the worker dies: the pool only ever makes parsing faster,
never different.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

from bot.intake.message import InboundMessage, parse_message

log = logging.getLogger(__name__)

#: Results travel back in chunks of this many messages: small enough that handling starts
#: early in a batch, large enough that the trips cost little.
CHUNK = 4
#: Smaller batches are parsed here: starting a worker takes longer than parsing them.
BACKLOG = 32


def _parse(data: bytes, candidates: tuple[str, ...], known_hash: str | None = None
           ) -> InboundMessage | Exception:
    try:
        return parse_message(data, candidates, known_hash)
    except Exception as exc:  # kept: the message goes to quarantine with this reason
        return exc


def _warm_up() -> None:
    """Run once in a new worker: it is ready when this returns."""


def _parse_remote(job: tuple[bytes, tuple[str, ...], str | None]) -> InboundMessage | Exception:
    result = _parse(*job)
    # The bytes are already in the parent: sending them back would double the traffic.
    return dataclasses.replace(result, raw=b"") if isinstance(result, InboundMessage) else result


class BatchParser:
    """Parses batches in order; ``workers`` processes for batches of ``threshold`` or more."""

    def __init__(self, candidates: tuple[str, ...], workers: int, threshold: int = BACKLOG
                 ) -> None:
        self.candidates = candidates
        self.workers = workers
        self.threshold = threshold
        self._pool: ProcessPoolExecutor | None = None
        self._ready: Future[None] | None = None

    def parse(self, datas: list[bytes], hashes: list[str] | None = None
              ) -> Iterator[InboundMessage | Exception]:
        """Each message parsed, or the exception that stopped it, in the order given.

        ``hashes``, if given, are the messages' content hashes, not to be computed again.
        The work is handed to the worker at once, before the first result is asked for.
        """
        known: list[str | None] = list(hashes) if hashes else [None] * len(datas)
        jobs = list(zip(datas, known, strict=True))
        if self.workers > 0 and len(datas) >= self.threshold:
            try:
                if self.start().done():
                    assert self._pool is not None
                    results = self._pool.map(
                        _parse_remote, ((data, self.candidates, known) for data, known in jobs),
                        chunksize=CHUNK)
                    return self._collect(jobs, results)
                # Still starting: waiting for it would cost more than parsing here.
            except Exception as exc:  # cannot start a process here: parse here
                log.warning("no parse worker (%s): parsing here", exc)
                self.workers = 0
        return (_parse(data, self.candidates, known) for data, known in jobs)

    def _collect(self, jobs: list[tuple[bytes, str | None]],
                 results: Iterator[InboundMessage | Exception]
                 ) -> Iterator[InboundMessage | Exception]:
        done = 0
        try:
            for (data, _), result in zip(jobs, results, strict=False):
                done += 1
                yield (dataclasses.replace(result, raw=data)
                       if isinstance(result, InboundMessage) else result)
        except Exception as exc:  # a dead or broken worker: parse the rest here
            log.warning("parse worker failed (%s): parsing here", type(exc).__name__)
            self.close()
        for data, known in jobs[done:]:
            yield _parse(data, self.candidates, known)

    def start(self) -> Future[None]:
        """Start the workers if they are not running; done once they can take work."""
        if self._pool is None or self._ready is None:
            # A fresh interpreter that imports only the parser: a forked copy of this
            # process ends up as large as it (the allocator writes into shared pages),
            # and forking a process that may have threads is unsafe.
            context: Any = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(self.workers, mp_context=context)
            self._ready = self._pool.submit(_warm_up)
        return self._ready

    def close(self) -> None:
        """Stop the workers (they are started again on the next large batch)."""
        pool, self._pool, self._ready = self._pool, None, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
