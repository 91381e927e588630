"""The headers InfluxDB 1.x sends with every answer; clients read the version from them
(the influx CLI prints it on connecting)."""

from __future__ import annotations

from federation import __version__

# The InfluxDB release whose HTTP API the front door follows (Debian's influxd 1.6.7).
INFLUX_VERSION = "1.6.7"

INFLUX_HEADERS = {
    "X-Influxdb-Version": INFLUX_VERSION,
    "X-Influxdb-Build": "OSS",
    "X-Federation-Version": __version__,
}
