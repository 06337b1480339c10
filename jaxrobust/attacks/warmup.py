"""The attack's model programs, compiled in the background while the host prepares the attack.

An attack's first command spends seconds per model program before its first useful pass: tracing,
XLA compilation (or reading the persistent cache) and a first execution that is several times
slower than the next. Most of that runs outside Python's lock, so it can overlap the host work that
comes first anyway -- loading the sentence encoder, the tagger and WordNet, laying out candidates.
:func:`start_victim` and :func:`start_encoder` run each program once on dummy tokens of the shapes
the attack will ask for (the length buckets of its clean texts, :mod:`.shapes`), in a thread; :meth:`Warmup.join` waits for it
before the search begins, so that no program is compiled twice. Results never depend on it: the
programs are pure functions of their inputs.
"""

from __future__ import annotations

import threading
from typing import Sequence

import numpy as np

from jaxrobust.attacks import shapes
from jaxrobust.attacks.sentence_encoder import embed_tokens
from jaxrobust.attacks.victim import Victim, predict, predict_grad


class Warmup:
    """Programs being run once, in order, on a background thread (see module docstring)."""

    def __init__(self, jobs: Sequence):
        self._jobs = list(jobs)
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="jaxrobust-warmup")
        self._thread.start()

    def _run(self) -> None:
        for job in self._jobs:
            # The main thread has ended (an error, Ctrl-C): stop at the next program, and do not
            # hold the interpreter's exit longer than the program running now.
            if not threading.main_thread().is_alive():
                return
            try:
                job()
            except BaseException as e:  # noqa: BLE001 - a failed warm-up only loses its head start
                self.error = e
                return

    def join(self) -> None:
        self._thread.join()


def _tokens(rows: int, length: int) -> dict:
    ones = np.ones((rows, length), np.int32)
    return dict(input_ids=ones, attention_mask=ones, token_type_ids=np.zeros_like(ones))


def start_victim(victim: Victim, params, lengths: Sequence[int], rows: int, *, gradient: bool) -> Warmup:
    """Run the victim's programs (its gradient too, for ``gradient``) at the length buckets of
    ``lengths`` (token lengths of the clean texts), in device batches of ``rows``, in the background."""
    jobs = []
    if gradient:  # first: the search starts with it
        for length in sorted(set(shapes.bucket(lengths, victim.max_length, coarse=True).tolist())):
            jobs.append(lambda t=_tokens(rows, length): np.asarray(predict_grad(victim, params, t, np.zeros(rows, np.int32))[0]))
    for length in sorted(set(shapes.bucket(lengths, victim.max_length).tolist())):
        jobs.append(lambda t=_tokens(rows, length): np.asarray(predict(victim, params, t)))
    return Warmup(jobs)


def start_encoder(encoder, texts: Sequence[str], window: int | None = None) -> Warmup:
    """Run the sentence ``encoder``'s program at the length buckets of ``texts`` (with a ``window``:
    and of the windows around their words, which the similarity constraint compares), in the background."""
    if window is not None:
        from jaxrobust.attacks.constraints import window_bounds, window_text
        from jaxrobust.data.encoding import word_spans

        windows = set(texts)  # the whole texts too: the report's similarity
        for text in texts:
            spans = word_spans(text)
            windows.update(window_text(text, spans, lo, hi) for lo, hi in window_bounds([text[s:e] for s, e in spans], window).tolist())
        texts = sorted(windows)
    ids = encoder.tokenizer(list(texts), truncation=True, max_length=encoder.max_length)["input_ids"] if texts else []
    # Longest first: the victim's warm-up takes its lengths shortest first, so that while both run
    # they compile different programs of a shared architecture (a thread asking for a program the
    # other is compiling waits for it).
    buckets = sorted(set(shapes.bucket([len(i) for i in ids], encoder.max_length).tolist()), reverse=True)
    return Warmup([lambda t=_tokens(encoder.batch_size, b): np.asarray(embed_tokens(encoder.static, encoder.params, t)) for b in buckets])
