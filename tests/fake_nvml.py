"""A simulated NVML for the collector's tests: the calls and types of pynvml that the collector
uses, over GPUs whose readings the test sets. (No GPU exists where the tests run.)"""

import threading
from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace


class NVMLError(Exception):
    pass


class NVMLError_NotSupported(NVMLError):
    pass


NVML_TEMPERATURE_GPU = 0
NVML_CLOCK_SM = 1
NVML_DEVICE_MIG_ENABLE = 1


@dataclass
class Device:
    uuid: str
    name: str = "NVIDIA H100 80GB HBM3"
    memory_total: int = 85520809984
    memory_used: int = 503316480
    util: int | None = 0
    power_mw: int | None = 79_000
    energy_mj: int | None = 2_486_505
    processes: list[tuple[int, int]] = field(default_factory=list)  # (pid, bytes)
    slices: int = 7
    mig: list["Device"] | None = None  # MIG instances when MIG mode is on


class FakeNvml:
    NVMLError = NVMLError
    NVML_TEMPERATURE_GPU = NVML_TEMPERATURE_GPU
    NVML_CLOCK_SM = NVML_CLOCK_SM
    NVML_DEVICE_MIG_ENABLE = NVML_DEVICE_MIG_ENABLE

    def __init__(self, devices: list[Device]) -> None:
        self.devices = devices

    def nvmlDeviceGetCount(self) -> int:
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, i: int) -> Device:
        return self.devices[i]

    def nvmlDeviceGetUUID(self, d: Device) -> str:
        return d.uuid

    def nvmlDeviceGetName(self, d: Device) -> str:
        return d.name

    def nvmlDeviceGetMemoryInfo(self, d: Device):
        return SimpleNamespace(total=d.memory_total, used=d.memory_used, free=d.memory_total - d.memory_used)

    def nvmlDeviceGetUtilizationRates(self, d: Device):
        if d.util is None:  # as on a MIG instance
            raise NVMLError_NotSupported("Not Supported")
        return SimpleNamespace(gpu=d.util, memory=d.util // 2)

    def nvmlDeviceGetPowerUsage(self, d: Device) -> int:
        if d.power_mw is None:
            raise NVMLError_NotSupported("Not Supported")
        return d.power_mw

    def nvmlDeviceGetTotalEnergyConsumption(self, d: Device) -> int:
        if d.energy_mj is None:
            raise NVMLError_NotSupported("Not Supported")
        d.energy_mj += (d.power_mw or 0) * 10  # a real counter keeps running between samples
        return d.energy_mj

    def nvmlDeviceGetTemperature(self, d: Device, sensor: int) -> int:
        return 55

    def nvmlDeviceGetClockInfo(self, d: Device, clock: int) -> int:
        return 1980

    def nvmlDeviceGetComputeRunningProcesses(self, d: Device):
        return [SimpleNamespace(pid=pid, usedGpuMemory=used) for pid, used in d.processes]

    def nvmlDeviceGetMigMode(self, d: Device) -> tuple[int, int]:
        return (1, 1) if d.mig else (0, 0)

    def nvmlDeviceGetMaxMigDeviceCount(self, d: Device) -> int:
        return 7 if d.mig else 0

    def nvmlDeviceGetMigDeviceHandleByIndex(self, d: Device, i: int) -> Device:
        if i >= len(d.mig or []):
            raise NVMLError("Not Found")
        return d.mig[i]

    def nvmlDeviceGetAttributes(self, d: Device):
        return SimpleNamespace(gpuInstanceSliceCount=d.slices)


class SteppedClock:
    """Wall time that moves only when the collector waits: hours pass in milliseconds."""

    def __init__(self, start: datetime) -> None:
        self.now = start.timestamp()

    def __call__(self) -> float:
        return self.now


class SteppingStop(threading.Event):
    """The collector's stop event, advancing the clock instead of sleeping."""

    def __init__(self, clock: SteppedClock) -> None:
        super().__init__()
        self.clock = clock

    def wait(self, timeout: float | None = None) -> bool:
        self.clock.now += timeout or 0
        return self.is_set()
