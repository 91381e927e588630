"""The alerts database's tables (SQLAlchemy Core), shared by SQLite and PostgreSQL.

Times are epoch milliseconds (BIGINT), ids are text: the same schema on both.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

subscriptions = sa.Table(
    "alert_subscriptions",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("webhook", sa.Text),
    sa.Column("email", sa.Text),
    sa.Column("pair", sa.Text),
    sa.Column("exchange", sa.Text),
    sa.Column("metric", sa.String(16)),
    sa.Column("factor", sa.Float, nullable=False),
    sa.Column("window_s", sa.Integer, nullable=False),
    sa.Column("secret", sa.Text, nullable=False),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    # The API key name that made it (docs/security.md); "" for subscriptions made before
    # owners existed, which only admins see.
    sa.Column("owner", sa.String(64), nullable=False, server_default=""),
    sa.Index("ix_alert_subscriptions_owner", "owner"),
)

events = sa.Table(
    "alert_events",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("subscription_id", sa.String(32), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # pending | delivered | failed
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("next_attempt_ms", sa.BigInteger, nullable=False),
    sa.Column("delivered_ms", sa.BigInteger),
    sa.Column("last_error", sa.Text),
    sa.Index("ix_alert_events_due", "state", "next_attempt_ms"),
    sa.Index("ix_alert_events_subscription", "subscription_id", "created_ms"),
)

crossings = sa.Table(
    "alert_crossings",
    metadata,
    sa.Column("subscription_id", sa.String(32), primary_key=True),
    sa.Column("exchange", sa.Text, primary_key=True),
    sa.Column("pair", sa.Text, primary_key=True),
    sa.Column("metric", sa.String(16), primary_key=True),
    sa.Column("since_ms", sa.BigInteger, nullable=False),
)

# One row: a counter bumped with every subscription change, so the ingester can tell
# cheaply (one indexed read) whether it must re-read the subscriptions.
meta = sa.Table(
    "alert_meta",
    metadata,
    sa.Column("key", sa.String(32), primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
)
VERSION_KEY = "subscriptions_version"
