#!/usr/bin/env bash
# Install the Remotair agent on a Raspberry Pi (Raspberry Pi OS Bookworm). Run as root from a
# checkout: sudo systemd/install.sh. Safe to run again to upgrade.
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
PREFIX=/opt/remotair
CONF=/etc/remotair

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
"$PREFIX/venv/bin/pip" install --quiet "$SRC"

echo "== configuration in $CONF"
install -d -m 0755 "$CONF"
install -d -m 0700 -o root -g root "$CONF/credentials"
if [ ! -f "$CONF/agent.toml" ]; then
  "$PREFIX/venv/bin/remotair" config example > "$CONF/agent.toml"
  echo "   wrote $CONF/agent.toml: edit [device], [board] and [mqtt], then restart the service"
fi
"$PREFIX/venv/bin/remotair" config check "$CONF/agent.toml" || true

echo "== systemd unit"
install -m 0644 "$SRC/systemd/remotair-agent.service" /etc/systemd/system/remotair-agent.service
systemctl daemon-reload
systemctl enable remotair-agent.service
systemctl restart remotair-agent.service || true
echo "done: 'systemctl status remotair-agent', 'journalctl -u remotair-agent -f', 'remotair doctor'"
echo "I2C and the serial port must be enabled: sudo raspi-config nonint do_i2c 0; do_serial_hw 0; do_serial_cons 1"
