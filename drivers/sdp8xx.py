"""Sensirion SDP8xx (0x25) and SDP3x (0x21) differential pressure sensors on I2C.

Both families speak the same protocol (SDP8xx and SDP3x datasheets, section "Digital
interface"):

- In *continuous mode* the chip measures all the time (a new value every 0.5 ms; with
  "average till read" it returns the mean since the previous read) and answers plain reads, no
  command, with three CRC-checked words: int16 differential pressure, int16 temperature
  (/ 200 -> degC) and the differential pressure *scale factor*: Pa = raw / scale factor. The scale
  factor depends on the part (60 for the 500 Pa parts, 240 for the 125 Pa ones), so the driver
  always divides by the one sent with the sample.
- The first sample is available 8 ms after the start command (accurate after a further 12 ms).
  Until then the chip NACKs the read header: that is "not ready", not "absent".
- In continuous mode the chip only takes the stop command; every other command must wait until
  it is idle again (500 us after stop). An agent restart does not power-cycle the sensor, so
  :meth:`SDP8xx.start` always sends stop first, then identifies the chip, then starts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from drivers.clock import SYSTEM_CLOCK, Clock
from drivers.errors import DeviceAbsentError, NotReadyError, ProtocolError
from drivers.i2c import I2CBus, i2c_read, translate_os_error
from drivers.measurement import Measurement
from drivers.sensirion import Command, SensirionDevice, unpack_words

log = logging.getLogger(__name__)

# Datasheet command table. Start commands: "temperature compensation for mass flow" or "for
# differential pressure", each with or without "average till read".
START_MASS_FLOW_AVERAGED = Command("start_mass_flow_averaged", 0x3603, 0.020)
START_MASS_FLOW = Command("start_mass_flow", 0x3608, 0.020)
START_DIFFERENTIAL_PRESSURE_AVERAGED = Command("start_dp_averaged", 0x3615, 0.020)
START_DIFFERENTIAL_PRESSURE = Command("start_dp", 0x361E, 0.020)
STOP_CONTINUOUS_MEASUREMENT = Command("stop_continuous_measurement", 0x3FF9, 0.0005)
"""The chip takes the next command 500 us after stop."""
PREPARE_PRODUCT_IDENTIFIER = Command("prepare_product_identifier", 0x367C, 0.0)
READ_PRODUCT_IDENTIFIER = Command("read_product_identifier", 0xE102, 0.001, response_words=6)

COMMANDS: tuple[Command, ...] = (
    START_MASS_FLOW_AVERAGED,
    START_MASS_FLOW,
    START_DIFFERENTIAL_PRESSURE_AVERAGED,
    START_DIFFERENTIAL_PRESSURE,
    STOP_CONTINUOUS_MEASUREMENT,
    PREPARE_PRODUCT_IDENTIFIER,
    READ_PRODUCT_IDENTIFIER,
)

SAMPLE_WORDS = 3
TEMPERATURE_SCALE = 200.0
FIRST_SAMPLE_S = 0.008
"""Datasheet: first result 8 ms after the start command."""
FIRST_SAMPLE_MARGIN_S = 0.025
"""How long past the first-sample time a NACKed read is retried before the chip is probed."""
NOT_READY_POLL_S = 0.002


@dataclass(frozen=True, slots=True)
class ProductInfo:
    """What a datasheet says about one part number (upper 24 bits of the product identifier)."""

    model: str
    range_pa: int
    scale_factor: int


# Product numbers from the datasheets; the low byte is a revision and may change.
KNOWN_PRODUCTS: dict[int, ProductInfo] = {
    0x030101: ProductInfo("SDP31", 500, 60),
    0x030102: ProductInfo("SDP32", 125, 240),
    0x030201: ProductInfo("SDP800-500Pa", 500, 60),
    0x03020A: ProductInfo("SDP810-500Pa", 500, 60),
    0x030202: ProductInfo("SDP800-125Pa", 125, 240),
    0x03020B: ProductInfo("SDP810-125Pa", 125, 240),
}


def to_int16(word: int) -> int:
    """A 16-bit word read as two's complement."""
    return word - 0x10000 if word & 0x8000 else word


class SDP8xx:
    """An SDP8xx in continuous differential-pressure mode with "average till read"."""

    chip = "sdp8xx"
    family = 0x0302
    """Upper 16 bits of the product number shared by the family (SDP3x: 0x0301)."""

    def __init__(self, bus: I2CBus, address: int = 0x25, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.address = address
        self.bus = bus
        self.clock = clock
        self._device = SensirionDevice(bus, self.address, sensor=self.chip, clock=clock)
        self.product_number: int | None = None
        self.serial_number: int | None = None
        self.last_scale_factor: int | None = None
        self._first_sample_at: float | None = None

    # -- Sensor protocol --------------------------------------------------------------------
    def start(self) -> None:
        """Stop whatever the chip does, check it is an SDP of this family, start measuring."""
        self._device.send(STOP_CONTINUOUS_MEASUREMENT)
        product, serial = self.product_identifier()
        if product >> 16 != self.family:
            raise DeviceAbsentError(
                f"product number 0x{product:08x} is not an {self.chip}"
                f" (expected 0x{self.family:04x}xxxx)",
                sensor=self.chip,
                address=self.address,
            )
        self.product_number, self.serial_number = product, serial
        info = KNOWN_PRODUCTS.get(product >> 8)
        self._start_measuring()
        log.info(
            "%s started address=0x%02x product=0x%08x model=%s serial=0x%016x",
            self.chip,
            self.address,
            product,
            info.model if info else "unknown",
            serial,
        )

    def read(self) -> Measurement:
        """Read the latest (averaged) sample.

        A NACKed read is retried until shortly after the first sample is due. If the chip still
        NACKs, it is probed with stop (the one command it takes in continuous mode): an answer
        means it is there but has no sample (:class:`NotReadyError`, and measurement is
        restarted); no answer means it is gone (:class:`DeviceAbsentError`).
        """
        now = self.clock.monotonic()
        due = self._first_sample_at if self._first_sample_at is not None else now
        deadline = max(now, due) + FIRST_SAMPLE_MARGIN_S
        while True:
            try:
                data = i2c_read(self.bus, self.address, 3 * SAMPLE_WORDS)
                break
            except OSError as exc:
                error = translate_os_error(exc, sensor=self.chip, address=self.address)
                if not isinstance(error, DeviceAbsentError):
                    raise error from exc
                if self.clock.monotonic() >= deadline:
                    self._probe_after_silence()
                self.clock.sleep(NOT_READY_POLL_S)
        raw_dp, raw_t, scale = (
            to_int16(w) for w in unpack_words(data, sensor=self.chip, address=self.address)
        )
        if scale <= 0:
            raise ProtocolError(
                f"scale factor {scale} in sample {data.hex()}",
                sensor=self.chip,
                address=self.address,
            )
        self.last_scale_factor = scale
        return Measurement(
            differential_pressure_pa=raw_dp / scale, temperature_c=raw_t / TEMPERATURE_SCALE
        )

    def stop(self) -> None:
        """Back to idle (the heater switches off)."""
        self._device.send(STOP_CONTINUOUS_MEASUREMENT)
        self._first_sample_at = None

    # -- the rest ----------------------------------------------------------------------------
    def product_identifier(self) -> tuple[int, int]:
        """(32-bit product number, 64-bit serial number). Only while the chip is idle."""
        self._device.send(PREPARE_PRODUCT_IDENTIFIER)
        words = self._device.query(READ_PRODUCT_IDENTIFIER)
        product = words[0] << 16 | words[1]
        serial = words[2] << 48 | words[3] << 32 | words[4] << 16 | words[5]
        return product, serial

    def _start_measuring(self) -> None:
        started = self.clock.monotonic()
        self._device.send(START_DIFFERENTIAL_PRESSURE_AVERAGED)
        self._first_sample_at = started + FIRST_SAMPLE_S

    def _probe_after_silence(self) -> None:
        """Tell "no sample yet" from "gone" once reads stayed NACKed past the deadline."""
        self._device.send(STOP_CONTINUOUS_MEASUREMENT)  # raises DeviceAbsentError if gone
        self._start_measuring()
        raise NotReadyError(
            "chip answers but delivered no sample; measurement restarted",
            sensor=self.chip,
            address=self.address,
        )


class SDP3x(SDP8xx):
    """SDP31/SDP32: the same protocol at address 0x21, product numbers 0x0301xxxx."""

    chip = "sdp3x"
    family = 0x0301

    def __init__(self, bus: I2CBus, address: int = 0x21, *, clock: Clock = SYSTEM_CLOCK) -> None:
        super().__init__(bus, address, clock=clock)
