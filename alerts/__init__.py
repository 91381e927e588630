"""Alerts: a metric above ``factor`` x its trailing mean, detected as points arrive and
delivered to webhook and email subscribers through a durable outbox."""

from __future__ import annotations
