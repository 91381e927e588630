"""The InfluxDB-compatible front door: ``/ping``, ``/query`` and ``/write`` answered as
InfluxDB 1.x answers them, so its clients (Grafana's InfluxQL source, telegraf, the
influx CLI, client libraries) see one database holding every shard's data.

- :mod:`.routes`: the three routes, mounted by the app before the ``/{pair}`` catch-all.
- :mod:`.ping`: ``/ping``; :mod:`.headers`: the version headers of every answer.
- :mod:`.write`: ``/write``; :mod:`.lines`: its line protocol checks, times and
  placement keys; :mod:`.spooled`: the ingester's writer on the router's own spool.
- :mod:`.query`: ``/query``: its parameters, times as ``epoch`` asks, chunked answers;
  :mod:`.run` runs one statement across the shards (the fan-out, SHOW merged, SELECT
  dispatched); :mod:`.copies` says what a SELECT is sent and reads each series from one
  copy, by the placement key ``/write`` places it by; :mod:`.raw` answers from raw
  points (merged rows, and the functions :mod:`.rawcalc` computes);
  :mod:`.aggregate` asks per-shard partials that :mod:`.combine` combines;
  :mod:`.conditions` reads a WHERE clause (times, range, pinned keys); :mod:`.series`
  shapes an aggregate's series (names, windows and fill, order, paging).
  ``CREATE DATABASE`` of the federation's database is applied to every shard (telegraf
  sends it at start); every other statement that changes data or schema is refused.

Errors are :class:`~federation.core.errors.InfluxAPIError`, in InfluxDB's own shape.
"""
