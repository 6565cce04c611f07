"""The driver of `make tune`: an Optuna study run in batches of `parallel` trials on a pool of worker processes,
its trials recorded in MLflow, its best trials made DVC experiments.

Reproducible on one machine. Batch after batch, the driver plans the next trials from the finished ones alone,
with a TPE sampler seeded by the study's seed and the batch's first trial number, in a study of its own in
memory; stores the plan in the study; creates the trials; runs them; and tells their results. The sequence of
trials (number -> params) is then a function of the seed, the space, the data and the trials' results, whatever
order they finish in. A study resumed after Ctrl-C, SIGTERM or SIGKILL goes on where it stopped: the trials in
flight run again with their numbers and params, and a trial whose MLflow run FINISHED is not run twice.

On a shared storage (PostgreSQL), each machine's driver creates its batch under the database's advisory lock,
records a heartbeat for the trials it runs, and fails the trials of drivers whose heartbeat stopped: the trials
are shared out and none runs twice, but which machine runs which depends on timing.
"""

from __future__ import annotations

import threading
import warnings
import zlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState

from softmax_regression.config import TrainParams, TuneParams, lower_is_better, run_params, section
from softmax_regression.errors import PipelineError, TrainingDiverged
from softmax_regression.search import space

if TYPE_CHECKING:
    from softmax_regression.search import trial

SAMPLER = {"n_startup_trials": 10, "n_ei_candidates": 24, "multivariate": True, "group": False, "constant_liar": True}
HEARTBEAT, GRACE = 5, 30  # seconds: how often a shared study hears from a driver, and how long before it gives up
RECORD, PLAN, RUN, MATERIALIZED = "record", "plan", "mlflow_run_id", "materialized"  # the study's user attributes


@dataclass(frozen=True)
class Search:
    """A study to run: its params, its space, where it lives, and the data its trials train on."""

    tune: TuneParams
    distributions: dict[str, BaseDistribution]
    params: dict[str, Any]  # params.yaml
    storage: str  # an SQLAlchemy URL
    data: dict[str, str]  # md5 of the raw CSV, of the training rows and of the validation rows

    @property
    def shared(self) -> bool:
        return not self.storage.startswith("sqlite")

    @property
    def direction(self) -> str:
        return "minimize" if lower_is_better(self.tune.metric) else "maximize"

    def record(self) -> dict[str, Any]:
        """What a resumed study must find the same: else its trials so far would belong to another search."""
        fixed = {key: value for key, value in self.params["train"].items() if f"train.{key}" not in self.distributions}
        record = {"space": space.describe(self.distributions), "seed": self.tune.seed, "metric": self.tune.metric,
                  "data": self.data, "params it does not search": fixed, "optuna": optuna.__version__}
        return record if self.shared else record | {"parallel": self.tune.parallel}  # a batch's size, here

    def train_params(self, values: dict[str, Any]) -> TrainParams:
        train = {**self.params["train"], **{key.removeprefix("train."): value for key, value in values.items()}}
        return section({"train": train}, "train", TrainParams)

    def logged_params(self, values: dict[str, Any]) -> dict[str, Any]:
        """A trial's params under their params.yaml names, as the train stage logs its run's."""
        return run_params(self.params, {key.removeprefix("train."): value for key, value in values.items()})


def best(study: optuna.Study, n: int) -> list[FrozenTrial]:
    """The n best finished trials, best first; ties go to the earliest."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    sign = 1 if study.direction == optuna.study.StudyDirection.MINIMIZE else -1
    return sorted(complete, key=lambda t: (sign * t.value, t.number))[:n]


def unfinished(study: optuna.Study) -> list[FrozenTrial]:
    return [t for t in study.get_trials(deepcopy=False) if not t.state.is_finished()]


Progress = Callable[[FrozenTrial], None]
Recorder = Callable[[FrozenTrial, "trial.Outcome | None", str | None], str]  # a trial's MLflow run, given its outcome


def pool(parallel: int) -> Executor:
    """`parallel` worker processes forked from a fork server that imports torch and the trial's code once."""
    import torch

    from softmax_regression.search import trial

    context = torch.multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["softmax_regression.parallel.forkserver", trial.__name__])
    threads = max(1, torch.get_num_threads() // parallel)
    return ProcessPoolExecutor(parallel, mp_context=context, initializer=trial.start_worker, initargs=(threads,))


def open_study(search: Search) -> optuna.Study:
    """The study, created if new (its tables too, under the database's lock: several machines may start on an
    empty one at once); refused when its record says it was another search."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    heartbeat = {"heartbeat_interval": HEARTBEAT, "grace_period": GRACE} if search.shared else {}
    with advisory_lock(search) if search.shared else nullcontext(), warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # the heartbeat's
        storage = optuna.storages.RDBStorage(search.storage, **heartbeat)
        study = optuna.create_study(study_name=search.tune.study, storage=storage, direction=search.direction,
                                    sampler=optuna.samplers.RandomSampler(seed=0), load_if_exists=True)
        record, found = search.record(), study.user_attrs.get(RECORD)
        if found is None:
            study.set_user_attr(RECORD, record)
    if found is not None and found != record:
        changed = [key for key in record if found.get(key) != record[key]]
        raise PipelineError(f"study {search.tune.study!r} in {search.storage} was run with another "
                            f"{' and another '.join(changed)}: its trials belong to that search; name a new study "
                            f"(tune.study) to search this one")
    return study


def run(search: Search, study: optuna.Study, executor: Executor, record: Recorder, progress: Progress | None = None
        ) -> int:
    """Run the study's trials until `tune.trials` have finished; returns how many finished here."""
    done = 0
    while (batch := next_batch(search, study)) is not None:
        done += run_batch(search, study, batch, executor, record, progress)
    return done


def next_batch(search: Search, study: optuna.Study) -> list[FrozenTrial] | None:
    """The trials to run next, created in the study; None when there are none to run (here)."""
    with advisory_lock(search) if search.shared else nullcontext():
        if search.shared:
            optuna.storages.fail_stale_trials(study)
        trials = study.get_trials(deepcopy=False)
        complete = sum(t.state == TrialState.COMPLETE for t in trials)
        failed = sum(t.state == TrialState.FAIL for t in trials)
        if complete >= search.tune.trials:
            return None
        if failed > search.tune.trials:
            raise PipelineError(f"{failed} trials of study {search.tune.study!r} failed (their MLflow runs say why); "
                                f"no more are tried")
        if search.shared:
            running = sum(t.state in (TrialState.RUNNING, TrialState.WAITING) for t in trials)
            n = min(search.tune.parallel, search.tune.trials - complete - running)
            if n <= 0:
                return None  # the rest are in flight elsewhere
            study.sampler = optuna.samplers.TPESampler(seed=seed_for(search.tune.seed, len(trials)), **SAMPLER)
            return [frozen(study, study.ask(search.distributions)) for _ in range(n)]
        return local_batch(search, study, trials, complete)


def local_batch(search: Search, study: optuna.Study, trials: list[FrozenTrial], complete: int) -> list[FrozenTrial]:
    """The next batch on this machine: the rest of a plan an interruption cut short, else a new plan.

    A plan's trials are made in two steps, each safe to cut short: every planned trial is enqueued (WAITING,
    its params fixed), then each WAITING one is asked (RUNNING, then given its params), oldest first, so that
    trial numbers follow the plan. A batch resumed is its RUNNING trials, run again, and its WAITING ones,
    asked."""
    plan = study.user_attrs.get(PLAN)
    made = plan is None or len(trials) >= plan["first"] + len(plan["params"])
    if made and all(t.state.is_finished() for t in trials):
        history = [t for t in trials if t.state.is_finished()]
        n = min(search.tune.parallel, search.tune.trials - complete)
        plan = {"first": len(trials), "params": propose(search, history, len(trials), n)}
        study.set_user_attr(PLAN, plan)
    for values in plan["params"][len(trials) - plan["first"]:]:
        study.enqueue_trial(values)
    study.sampler = optuna.samplers.RandomSampler(seed=0)  # the plan fixes every value: no TPE at ask
    trials = study.get_trials(deepcopy=False)
    running = [given_params(study, t, search.distributions) for t in trials if t.state == TrialState.RUNNING]
    return running + [frozen(study, study.ask(search.distributions)) for t in trials if t.state == TrialState.WAITING]


def given_params(study: optuna.Study, running: FrozenTrial, distributions: dict[str, BaseDistribution]) -> FrozenTrial:
    """A RUNNING trial with every param: one cut short between being asked and being given its params gets
    them now, the plan's (fixed when it was enqueued), through the public suggest calls as ask makes them."""
    if set(running.params) == set(distributions):
        return running
    asked = optuna.trial.Trial(study, running._trial_id)
    for name, distribution in distributions.items():
        if isinstance(distribution, CategoricalDistribution):
            asked.suggest_categorical(name, distribution.choices)
        elif isinstance(distribution, IntDistribution):
            asked.suggest_int(name, distribution.low, distribution.high, step=distribution.step, log=distribution.log)
        else:
            asked.suggest_float(name, distribution.low, distribution.high, step=distribution.step,
                                log=distribution.log)
    return frozen(study, asked)


def propose(search: Search, history: Sequence[FrozenTrial], first: int, n: int) -> list[dict[str, Any]]:
    """n trials' params, from the finished trials alone, as a seeded TPE sampler asks them one after another in
    a study of its own in memory (each asked trial a pending one for the next: constant liar)."""
    sampler = optuna.samplers.TPESampler(seed=seed_for(search.tune.seed, first), **SAMPLER)
    shadow = optuna.create_study(direction=search.direction, sampler=sampler)
    shadow.add_trials(sorted(history, key=lambda t: t.number))
    return [shadow.ask(search.distributions).params for _ in range(n)]


def run_batch(search: Search, study: optuna.Study, batch: list[FrozenTrial], executor: Executor, record: Recorder,
              progress: Progress | None) -> int:
    """Run the batch's trials on the executor, record and tell each as it finishes; returns how many finished."""
    # torch comes with the trial's code: a search refused before its first batch never imports it
    from softmax_regression.search import trial

    futures = {executor.submit(trial.run, search.train_params(t.params)): t for t in batch}
    with heartbeats(study, batch) if search.shared else nullcontext():
        for future in as_completed(futures):
            planned = futures[future]
            try:
                outcome, error = future.result(), None
            except (TrainingDiverged, PipelineError) as e:  # a bad trial fails, the search goes on
                outcome, error = None, str(e)
            record(planned, outcome, error)
            if error is None:
                study.tell(planned.number, outcome.metrics[search.tune.metric])
            else:
                study.tell(planned.number, state=TrialState.FAIL)
            if progress is not None:
                progress(study._storage.get_trial(planned._trial_id))
    return len(futures)


def frozen(study: optuna.Study, asked: optuna.Trial) -> FrozenTrial:
    return study._storage.get_trial(asked._trial_id)


def seed_for(seed: int, first: int) -> int:
    """The sampler's seed for the batch that starts at trial `first`."""
    return zlib.crc32(f"{seed}:{first}".encode())


@contextmanager
def advisory_lock(search: Search) -> Iterator[None]:
    """The study's lock in the database (PostgreSQL), across every machine's driver."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    key = zlib.crc32(f"make tune {search.tune.study}".encode())
    engine = create_engine(search.storage, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
    finally:
        engine.dispose()


@contextmanager
def heartbeats(study: optuna.Study, batch: list[FrozenTrial]) -> Iterator[None]:
    """A heartbeat for the batch's trials every HEARTBEAT seconds: the study knows they are in flight."""
    stop = threading.Event()

    def beat() -> None:
        while True:
            for t in batch:
                study._storage.record_heartbeat(t._trial_id)
            if stop.wait(HEARTBEAT):
                return

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
