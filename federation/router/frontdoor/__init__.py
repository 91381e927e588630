"""The InfluxDB-compatible front door: ``/ping``, ``/query`` and ``/write`` answered as
InfluxDB 1.x answers them, so its clients (Grafana's InfluxQL source, telegraf, the
influx CLI, client libraries) see one database holding every shard's data.

- :mod:`.routes`: the three routes, mounted by the app before the ``/{pair}`` catch-all.
- :mod:`.ping`: ``/ping``; :mod:`.headers`: the version headers of every answer.
- :mod:`.query`: ``/query`` (to be built).
- :mod:`.write`: ``/write``; :mod:`.lines`: its line protocol checks, times and
  placement keys; :mod:`.spooled`: the ingester's writer on the router's own spool.

Errors are :class:`~federation.core.errors.InfluxAPIError`, in InfluxDB's own shape.
"""
