"""Hardware access only: I2C/UART sensor chips and cameras.

A driver takes a bus (``smbus2.SMBus`` or the simulated bus in :mod:`hil`) or a serial port and an
address; it never opens a device file itself, never returns a made-up value, and reports every
failure as a :class:`drivers.errors.SensorError`.
"""
