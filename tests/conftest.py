"""Fixtures shared by the test modules."""

import keras
import pytest


class Interrupt(keras.callbacks.Callback):
    """Simulates a crash at the start of ``epoch`` (after the previous one was backed up)."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise RuntimeError("interrupted")


@pytest.fixture
def interrupt_at():
    """``interrupt_at(epoch)``: a Keras callback raising RuntimeError("interrupted") there."""
    return Interrupt
