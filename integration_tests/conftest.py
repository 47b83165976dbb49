import pytest

from integration_tests.harness import EmulatorProcess


@pytest.fixture(scope="module")
def emulator_process():
    with EmulatorProcess() as emulator:
        yield emulator


@pytest.fixture
def emulator(emulator_process):
    emulator_process.reset()
    return emulator_process
