"""The Remotair agent: configuration, scheduling, vision, alarms, outbox, MQTT and the CLI."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("remotair")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"
