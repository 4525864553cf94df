"""Locust user for the ``dermassist`` ensemble over raw gRPC (gevent-cooperative).

Run through ``python -m loadtest.run`` (headless, embedded server), or by hand against any Triton:
``locust -f loadtest/locustfile.py --host TRITON_HOST:8001`` (settings from ``LOADTEST_*`` variables,
see ``loadtest/config.py``; with ``--csv PREFIX`` the final stats go to ``PREFIX_final_stats.csv``; how a run
ends, distributed runs included: ``loadtest/run_end.py``).
Every call is reported through ``events.request`` as ``grpc`` with its latency, response size and exception.
An answer must have one row per image and PROBABILITIES rows that sum to 1 (else the call fails); its
ASSESSABLE and REFER flags are counted per scenario (``loadtest.answers``: ``PREFIX_answers.json`` beside the
final stats), and a run with more NOT ASSESSABLE answers than LOADTEST_MAX_NOT_ASSESSABLE_SHARE fails.
Deliberately bad inputs are reported under their own name: a rejection with INVALID_ARGUMENT is the
expected outcome (success), anything else is a failure. A call that fails UNAVAILABLE (the server is
healing a step) is sent again with backoff within its deadline, as the SDK does; it is reported once,
with its total time, and each retry is counted per scenario and status code (in the answers' counts, and a
WARNING line at the end of the run).
"""
import itertools
import logging
import os
import random
import time

import grpc
import grpc.experimental.gevent as grpc_gevent
from gevent import GreenletExit  # type: ignore[import-untyped]
from locust import User, constant, events, task
from locust.env import Environment
from tritonclient.grpc import service_pb2, service_pb2_grpc

from dermassist.base.corpus import CorpusSpec, bad_inputs, describe_corpus, load_corpus
from dermassist.base.settings import setting_names
from loadtest import run_end
from loadtest.answers import AnswerTally
from loadtest.config import ScenarioConfig, check_grpc_host, check_variables
from loadtest.errors import CutAtStop, LoadtestError, StopTimeoutTooShort, UnexpectedAcceptance
from loadtest.protocol import (
    BadAnswer,
    backoff_s,
    infer_request,
    open_channel,
    read_answer,
    rejection_outcome,
    response_rows,
    retryable,
)
from loadtest.runner import stop_timeout_s

# gRPC must be patched for gevent (locust has monkey-patched the standard library on import) before any
# channel exists: before the first user starts.
grpc_gevent.init_gevent()

logger = logging.getLogger(__name__)

check_variables(os.environ)  # a mistyped LOADTEST_* variable would be ignored: refuse it on every process
CONFIG = ScenarioConfig.resolve()
IMAGES = load_corpus(CorpusSpec(CONFIG.image_source, CONFIG.image_cache, CONFIG.per_size, CONFIG.corpus_sizes()))
BAD_INPUTS = bad_inputs(IMAGES[0])
SINGLE = "single"
BATCH = f"batch{CONFIG.batch_size}"
BAD = "bad_input:rejected"
REQUEST_TYPE = "grpc"


class RowCountMismatch(LoadtestError):
    """The response's batch size differs from the request's."""


# What the answers said and the calls retried, per scenario (on a master: the workers' counts added up).
ANSWERS = AnswerTally(CONFIG.max_not_assessable_share, setting_names(ScenarioConfig, "max_not_assessable_share"))
# With --csv PREFIX: the whole run's stats (the last in-flight calls included, on a master the workers' last reports
# too) to PREFIX_final_stats.csv and the answers' counts to PREFIX_answers.json at exit; a headless run that stopped
# before its -t (the last worker quit) exits 2.
run_end.install(events, ANSWERS)


# Calls in flight when Locust stopped their users without a stop timeout, per request name (not counted: told at quit).
UNCOUNTED_CUTS: dict[str, int] = {}


@events.quitting.add_listener
def _tell_uncounted_cuts(environment: Environment, **_kwargs: object) -> None:
    if UNCOUNTED_CUTS:
        logger.warning("%d call(s) in flight were cut when Locust stopped their users without a --stop-timeout (%s): "
                       "they are in no figure; pass --stop-timeout %d (the per-call deadline and a margin) to let them "
                       "end and count them", sum(UNCOUNTED_CUTS.values()),
                       ", ".join(f"{name} {n}" for name, n in sorted(UNCOUNTED_CUTS.items())), stop_timeout_s(CONFIG))


@events.test_start.add_listener
def _announce(environment: Environment, **_kwargs: object) -> None:
    logger.info("dermassist load test: %s, mix %s, deadline %.0f s",
                describe_corpus([len(b) for b in IMAGES], CONFIG.corpus_sizes()), CONFIG.mix_text(), CONFIG.deadline_s)


class DermAssistGrpcUser(User):
    """One clinic client: its own gRPC channel, single images, batches and a few bad uploads."""

    wait_time = constant(CONFIG.think_time_s)

    def on_start(self) -> None:
        """Open this user's channel (one per user, so load spreads like real clients)."""
        host = self.host or ""
        check_grpc_host(host)
        self.channel = open_channel(host, CONFIG.root_certificates, CONFIG.private_key, CONFIG.certificate_chain)
        self.stub = service_pb2_grpc.GRPCInferenceServiceStub(self.channel)
        self.rng = random.Random()
        self.counter = itertools.count()
        self.bad_kinds = itertools.cycle(sorted(BAD_INPUTS))
        names, weights = zip(*CONFIG.probabilities().items())
        self.names, self.weights = names, weights

    def on_stop(self) -> None:
        """Close the channel."""
        channel = getattr(self, "channel", None)
        if channel is not None:
            channel.close()
            self.channel = None

    @task
    def infer(self) -> None:
        """Send one request drawn from the scenario mix."""
        scenario = self.rng.choices(self.names, self.weights)[0]
        if scenario == "single":
            self._call(SINGLE, [self.rng.choice(IMAGES)])
        elif scenario == "batch":
            self._call(BATCH, self.rng.choices(IMAGES, k=CONFIG.batch_size))
        else:
            self._call_bad(BAD_INPUTS[next(self.bad_kinds)])

    def _fire(self, name: str, elapsed_s: float, length: int, exception: BaseException | None) -> None:
        self.environment.events.request.fire(
            request_type=REQUEST_TYPE, name=name, response_time=elapsed_s * 1000.0,
            response_length=length, exception=exception, context={},
        )

    def _cut_at_stop(self, name: str, started: float) -> None:
        """Count a call Locust stopped its user in (the run ended, or the user count went down, and ``--stop-timeout``
        ran out) as a failure: it was one of the slowest of the run, and leaving it out read a saturated server as one
        with no failures. Without a stop timeout (Locust's default, 0) Locust stops users at once by design: such a
        call is not counted, and the number of them is told when Locust quits."""
        waited_s = time.perf_counter() - started
        timeout_s = self.environment.stop_timeout or 0.0
        if not timeout_s:
            UNCOUNTED_CUTS[name] = UNCOUNTED_CUTS.get(name, 0) + 1
            return
        short = timeout_s < CONFIG.deadline_s
        cause = (f"it is shorter than the per-call deadline ({CONFIG.deadline_s:g} s): give --stop-timeout at least "
                 "the deadline and a margin" if short else
                 f"the per-call deadline is {CONFIG.deadline_s:g} s: the server did not answer in time (saturated, or "
                 "stalled: the run's summary says which)")
        error = StopTimeoutTooShort if short else CutAtStop
        # no waited seconds in the words: Locust tells failures apart by them (the time is the call's response time)
        self._fire(name, waited_s, 0, error(
            f"no answer when Locust stopped its user (the run ended or users were removed) and --stop-timeout "
            f"({timeout_s:g} s) ran out; {cause}"))

    def _infer(self, name: str, request: service_pb2.ModelInferRequest) -> service_pb2.ModelInferResponse:
        """ModelInfer, sent again after UNAVAILABLE while retries and the deadline allow (each retry counted under
        ``name``)."""
        deadline = time.monotonic() + CONFIG.deadline_s
        attempt = 0
        while True:
            try:
                return self.stub.ModelInfer(request, timeout=max(deadline - time.monotonic(), 0.001))
            except grpc.RpcError as e:
                wait = backoff_s(attempt)
                if (attempt >= CONFIG.retries or not retryable(e.code(), e.details() or "")
                        or time.monotonic() + wait >= deadline):
                    raise
                logger.debug("retrying %s in %.2f s after %s", request.id, wait, e.code())
                ANSWERS.add_retry(name, e.code().name)
                time.sleep(wait)  # gevent-patched: other users run meanwhile
                attempt += 1

    def _call(self, name: str, images: list[bytes]) -> None:
        request = infer_request(images, request_id=f"{id(self):x}-{next(self.counter)}")
        started = time.perf_counter()
        try:
            response = self._infer(name, request)
        except grpc.RpcError as e:
            self._fire(name, time.perf_counter() - started, 0, e)
            return
        except GreenletExit:
            self._cut_at_stop(name, started)
            raise
        elapsed_s = time.perf_counter() - started  # the answer's time, not the time to read it
        rows = response_rows(response)
        error: LoadtestError | None = None
        if rows != len(images):
            error = RowCountMismatch(f"sent {len(images)} rows, got {rows}")
        else:
            try:
                ANSWERS.add_answer(name, read_answer(response, rows))
            except BadAnswer as e:
                error = e
        self._fire(name, elapsed_s, response.ByteSize(), error)

    def _call_bad(self, blob: bytes) -> None:
        request = infer_request([blob], request_id=f"{id(self):x}-bad-{next(self.counter)}")
        started = time.perf_counter()
        code, detail, length = None, "", 0
        try:
            length = self._infer(BAD, request).ByteSize()
        except grpc.RpcError as e:
            code, detail = e.code(), e.details() or ""
            length = len(detail)
        except GreenletExit:
            self._cut_at_stop(BAD, started)
            raise
        problem = rejection_outcome(code, grpc.StatusCode.INVALID_ARGUMENT, detail)
        self._fire(BAD, time.perf_counter() - started, length, UnexpectedAcceptance(problem) if problem else None)
