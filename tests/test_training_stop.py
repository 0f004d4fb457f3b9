"""The shared graceful stop of the trainers (distill.training_stop), on a fake Trainer state: SIGINT and SIGTERM
each finish the step, checkpoint and stop; a second signal stops at once; the previous handlers come back."""

from __future__ import annotations

import os
import signal
from types import SimpleNamespace

import pytest

from distill.training_stop import GracefulStop, OnSave, write_line


@pytest.fixture
def handlers():
    """SIGINT at Python's default (it is SIG_IGN under nohup), SIGTERM at a recording handler (its default would end
    pytest); both as they were afterwards, whatever the test left."""
    received: list[int] = []

    def sentinel(signum, frame):
        received.append(signum)

    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, sentinel)
    try:
        yield SimpleNamespace(sentinel=sentinel, received=received)
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


def _state(step: int = 7) -> SimpleNamespace:
    return SimpleNamespace(global_step=step, is_world_process_zero=True)


def _control() -> SimpleNamespace:
    return SimpleNamespace(should_save=False, should_training_stop=False)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_first_signal_finishes_the_step_checkpoints_and_stops(sig, handlers, capsys):
    stop = GracefulStop()
    stop.on_train_begin(None, _state(0), _control())
    control = _control()
    stop.on_step_end(None, _state(6), control)
    assert (control.should_save, control.should_training_stop, stop.stopped_at) == (False, False, None)

    os.kill(os.getpid(), sig)
    assert stop.requested
    assert f"{sig.name}: finishing this step and saving a checkpoint (send it again to stop at once)" in (
        capsys.readouterr().err)
    stop.on_step_end(None, _state(7), control)
    assert (control.should_save, control.should_training_stop, stop.stopped_at) == (True, True, 7)
    assert handlers.received == []                                   # the previous handler was not called
    stop.on_train_end(None, _state(7), control)


@pytest.mark.parametrize("first, second", [(signal.SIGTERM, signal.SIGTERM), (signal.SIGINT, signal.SIGTERM),
                                           (signal.SIGTERM, signal.SIGINT)])
def test_a_second_signal_stops_at_once_and_restores_the_handlers(first, second, handlers):
    stop = GracefulStop()
    stop.on_train_begin(None, _state(0), _control())
    os.kill(os.getpid(), first)
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), second)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert signal.getsignal(signal.SIGTERM) is handlers.sentinel
    assert handlers.received == []


def test_train_end_puts_back_the_handlers_that_were_there_before(handlers):
    stop = GracefulStop()
    stop.on_train_begin(None, _state(0), _control())
    for sig in (signal.SIGINT, signal.SIGTERM):
        assert signal.getsignal(sig) == stop._handle
    stop.on_train_end(None, _state(3), _control())
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert signal.getsignal(signal.SIGTERM) is handlers.sentinel
    os.kill(os.getpid(), signal.SIGTERM)                             # reaches the previous handler again
    assert handlers.received == [signal.SIGTERM] and not stop.requested


def test_installing_early_then_at_train_begin_still_restores_the_originals(handlers):
    stop = GracefulStop()
    stop.install()
    stop.on_train_begin(None, _state(0), _control())                 # a second install must not save our own handler
    stop.on_train_end(None, _state(0), _control())
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert signal.getsignal(signal.SIGTERM) is handlers.sentinel


def test_handlers_are_installed_only_from_the_main_thread(handlers):
    import threading

    stop = GracefulStop()
    worker = threading.Thread(target=stop.on_train_begin, args=(None, _state(0), _control()))
    worker.start()
    worker.join()
    assert signal.getsignal(signal.SIGTERM) is handlers.sentinel
    stop.on_train_end(None, _state(0), _control())                  # nothing to restore: no error


def test_on_save_calls_back_on_the_main_process_only():
    steps: list[int] = []
    cb = OnSave(steps.append)
    cb.on_save(None, SimpleNamespace(global_step=4, is_world_process_zero=True), _control())
    cb.on_save(None, SimpleNamespace(global_step=5, is_world_process_zero=False), _control())
    assert steps == [4]


def test_write_line_goes_to_stderr(capsys):
    write_line("hello")
    assert capsys.readouterr() == ("", "hello\n")
