#!/usr/bin/env bash
# Install the Remotair agent on a Raspberry Pi (Raspberry Pi OS Bookworm). Run as root from a
# checkout: sudo systemd/install.sh [--with-cloud]. Safe to run again to upgrade.
#
# It installs the agent in /opt/remotair, puts `remotair` on the PATH (/usr/local/bin), installs
# and enables the service, and starts it only on a configuration someone has edited and that
# passes `remotair config check`: a fresh board gets a configuration for a real board with no
# sensors listed yet, and the installer says what to fill in. It never writes a simulated board.
#
# REMOTAIR_INSTALL_ROOT (default: empty) prefixes every path it writes or checks; the tests
# install into a throwaway root with apt-get, systemctl and friends stubbed on the PATH.
set -euo pipefail

usage() {
  echo "usage: sudo $0 [--with-cloud]"
  echo "  --with-cloud  also install boto3 (vision backend \"rekognition\" or \"cascade\")"
}

WITH_CLOUD=0
for arg in "$@"; do
  case "$arg" in
    --with-cloud) WITH_CLOUD=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: unknown option '$arg'" >&2; usage >&2; exit 2 ;;
  esac
done

SRC=$(cd "$(dirname "$0")/.." && pwd)
ROOT=${REMOTAIR_INSTALL_ROOT:-}
PREFIX=$ROOT/opt/remotair
CONF=$ROOT/etc/remotair
UNIT_DIR=$ROOT/etc/systemd/system
BIN_DIR=$ROOT/usr/local/bin
UNIT=remotair-agent.service

[ "$(id -u)" = 0 ] || { echo "install.sh: run as root (sudo $0)" >&2; exit 1; }

echo "== OS packages (picamera2 comes from Raspberry Pi OS, not PyPI)"
apt-get update -qq
apt-get install -y -qq python3-venv python3-picamera2 i2c-tools >/dev/null || \
  apt-get install -y -qq python3-venv i2c-tools >/dev/null

echo "== service user 'remotair' in groups i2c, video, dialout"
for g in i2c video dialout; do getent group "$g" >/dev/null || groupadd --system "$g"; done
id remotair >/dev/null 2>&1 || useradd --system --home-dir /var/lib/remotair --shell /usr/sbin/nologin remotair
usermod -a -G i2c,video,dialout remotair

echo "== virtual environment in $PREFIX/venv (--system-site-packages: sees python3-picamera2)"
python3 -m venv --system-site-packages "$PREFIX/venv"
"$PREFIX/venv/bin/pip" install --quiet --upgrade pip
if [ "$WITH_CLOUD" = 1 ]; then
  echo "   with boto3 (--with-cloud)"
  "$PREFIX/venv/bin/pip" install --quiet "$SRC[cloud]"
else
  "$PREFIX/venv/bin/pip" install --quiet "$SRC"
fi
install -d -m 0755 "$BIN_DIR"
ln -sfn "$PREFIX/venv/bin/remotair" "$BIN_DIR/remotair"
echo "   remotair is on the PATH: $BIN_DIR/remotair"

echo "== I2C and serial port"
# raspi-config writes these lines; the device nodes exist once the kernel has the interface.
BOOT_CONFIG=$ROOT/boot/firmware/config.txt
[ -f "$BOOT_CONFIG" ] || BOOT_CONFIG=$ROOT/boot/config.txt
interface_on() {  # $1: config.txt line pattern, $2...: device nodes that prove it
  local pattern=$1; shift
  local node
  for node in "$@"; do [ -e "$node" ] && return 0; done
  [ -f "$BOOT_CONFIG" ] && grep -Eq "^[[:space:]]*$pattern" "$BOOT_CONFIG"
}
if interface_on 'dtparam=i2c(_arm)?=on' "$ROOT"/dev/i2c-*; then
  echo "   I2C is enabled"
else
  echo "   I2C is NOT enabled: sudo raspi-config nonint do_i2c 0, then reboot (the sensors are on I2C)"
fi
if interface_on 'enable_uart=1' "$ROOT/dev/serial0"; then
  echo "   serial port is enabled"
else
  echo "   serial port is NOT enabled (needed only for a UART CO2 sensor): sudo raspi-config nonint do_serial_hw 0; sudo raspi-config nonint do_serial_cons 1; then reboot"
fi

echo "== configuration in $CONF"
install -d -m 0755 "$CONF"
install -d -m 0700 "$CONF/credentials"
# The example describes a real board ([board] kind = "pi") with no sensors yet: it does not
# pass `config check` until the board's chips are listed, so the service cannot start on it.
"$PREFIX/venv/bin/remotair" config example \
  | sed -e 's/^kind = "sim"$/kind = "pi"/' > "$CONF/agent.toml.example"
grep -q '^kind = "pi"$' "$CONF/agent.toml.example" || {
  echo "install.sh: the example configuration has no '[board] kind' line to set to \"pi\"" >&2
  exit 1
}
if [ ! -f "$CONF/agent.toml" ]; then
  cp "$CONF/agent.toml.example" "$CONF/agent.toml"
  echo "   wrote $CONF/agent.toml (a real board, nothing listed yet)"
fi

echo "== systemd unit"
install -d -m 0755 "$UNIT_DIR"
install -m 0644 "$SRC/systemd/$UNIT" "$UNIT_DIR/$UNIT"
systemctl daemon-reload
systemctl enable "$UNIT"

what_to_edit() {
  echo "   edit $CONF/agent.toml:"
  echo "     [device]  id = \"...\"                 this board's name in MQTT topics"
  echo "     [board]   one [[board.sensors]] table per chip (remotair i2c scan lists what answers),"
  echo "               one [[board.cameras]] table per camera"
  echo "     [mqtt]    host, port, and TLS or a username (secrets go in $CONF/credentials/)"
  echo "   then: remotair config check $CONF/agent.toml && sudo systemctl restart $UNIT"
}

board_kind() {  # the [board] kind the configuration asks for ("" when it names none)
  "$PREFIX/venv/bin/python" - "$1" <<'PY' 2>/dev/null || true
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    print(tomllib.load(f).get("board", {}).get("kind", ""))
PY
}

if cmp -s "$CONF/agent.toml" "$CONF/agent.toml.example"; then
  echo "not started: $CONF/agent.toml is the unedited example"
  what_to_edit
elif ! "$PREFIX/venv/bin/remotair" config check "$CONF/agent.toml"; then
  echo "not started: $CONF/agent.toml does not pass 'remotair config check' (see above)"
  what_to_edit
elif [ "$(board_kind "$CONF/agent.toml")" != pi ]; then
  echo "not started: $CONF/agent.toml does not describe a real board ([board] kind = \"pi\")"
  echo "   a simulated board publishes made-up readings (marked \"sim\": true); if that is what"
  echo "   this board is for, start it yourself: sudo systemctl restart $UNIT"
  what_to_edit
else
  systemctl restart "$UNIT"
  echo "started: 'systemctl status $UNIT', 'journalctl -u $UNIT -f', 'remotair doctor'"
fi
