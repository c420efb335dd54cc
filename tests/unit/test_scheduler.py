"""The periodic jobs' wrapper: one run at a time, without APScheduler's warning for an overlapping tick."""
import asyncio
import logging

from node.scheduler import periodic


async def test_a_tick_during_a_long_run_is_skipped_quietly(caplog):
    started, release, runs = asyncio.Event(), asyncio.Event(), []

    async def slow_pull():
        runs.append(1)
        started.set()
        await release.wait()

    job = periodic(slow_pull, "pull")
    caplog.set_level(logging.DEBUG, logger="node.scheduler")
    first = asyncio.create_task(job())
    await started.wait()
    await job()                      # the next tick: returns at once, the first run still going
    assert runs == [1]
    assert "job pull: its last run is still going" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    release.set()
    await first
    release.clear()
    started.clear()
    second = asyncio.create_task(job())   # once it is over, the next tick runs again
    await started.wait()
    assert runs == [1, 1]
    release.set()
    await second


async def test_a_run_cancelled_by_shutdown_ends_quietly_and_frees_the_job(caplog):
    started = asyncio.Event()

    async def hang():
        started.set()
        await asyncio.Event().wait()

    job = periodic(hang, "anti_entropy")
    caplog.set_level(logging.DEBUG, logger="node.scheduler")
    task = asyncio.create_task(job())
    await started.wait()
    task.cancel()
    await task                        # no CancelledError escapes into APScheduler's log
    assert "job anti_entropy cancelled by shutdown" in caplog.text
    started.clear()
    again = asyncio.create_task(job())
    await started.wait()              # not stuck as "still running"
    again.cancel()
    await again


async def test_a_run_that_fails_on_the_node_is_one_warning_and_the_next_tick_runs(caplog):
    """A full disk, say: before, the error escaped into APScheduler, which logged it with a traceback."""
    from node.errors import StorageError
    runs = []

    async def pull():
        runs.append(1)
        raise StorageError("database error: database or disk is full")

    job = periodic(pull, "pull")
    await job()
    await job()
    assert runs == [1, 1]
    [record, _] = [r for r in caplog.records if r.name == "node.scheduler"]
    assert (record.levelname, record.getMessage()) == ("WARNING", "job pull failed: database error: database or "
                                                                  "disk is full")
    assert record.exc_info is None
