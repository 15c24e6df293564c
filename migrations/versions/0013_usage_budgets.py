"""Usage and budgets: one ledger row per model call (tokens, whether they were estimated, cost),
an admin-set price per model, the instance's daily token cap, a room's monthly token budget, a
user's monthly token allowance by plan, and each agent reply's own usage on its message row.

A ledger row is written `reserved` (prompt estimate + the reply's max_tokens, under the budgets'
row locks) before a budgeted model request and `settled` to the provider's figures after it
(discux.usage); unbudgeted calls are written settled once they end. Rows keep plain ids (no
foreign keys): usage stays counted when a room, agent, message or user is deleted.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

TABLE_OPTIONS = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci"}
TimestampMs = sa.TIMESTAMP().with_variant(mysql.TIMESTAMP(fsp=3), "mysql", "mariadb")
Money = sa.Numeric(14, 6)
# discux.plans: what each plan may spend a month (pro and team: "unlimited").
FREE_TOKENS = 200_000
UNLIMITED_TOKENS = 1_000_000_000_000


def upgrade():
    op.create_table(
        "usage_ledger",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("created_at", TimestampMs, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False, server_default="settled"),
        sa.Column("user_id", sa.String(255), nullable=True),
        sa.Column("room_id", sa.String(36), nullable=True),
        sa.Column("agent_id", sa.String(36), nullable=True),
        sa.Column("message_id", sa.String(36), nullable=True),
        sa.Column("model", sa.String(255), nullable=True),
        sa.Column("prompt_tokens", sa.Integer, nullable=False, server_default="0"),
        sa.Column("completion_tokens", sa.Integer, nullable=False, server_default="0"),
        sa.Column("tokens", sa.Integer, nullable=False, server_default="0"),
        sa.Column("estimated", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("cost_usd", Money, nullable=True),
        **TABLE_OPTIONS,
    )
    op.create_index("idx_usage_room_created", "usage_ledger", ["room_id", "created_at"])
    op.create_index("idx_usage_user_created", "usage_ledger", ["user_id", "created_at"])
    op.create_index("idx_usage_agent_created", "usage_ledger", ["agent_id", "created_at"])
    op.create_index("idx_usage_created", "usage_ledger", ["created_at"])
    op.create_index("idx_usage_message", "usage_ledger", ["message_id"])
    op.create_table(
        "model_prices",
        sa.Column("model", sa.String(255), primary_key=True),
        sa.Column("input_usd_per_million", sa.Numeric(12, 4), nullable=False),
        sa.Column("output_usd_per_million", sa.Numeric(12, 4), nullable=False),
        sa.Column("updated_at", TimestampMs, nullable=True),
        **TABLE_OPTIONS,
    )
    instance = op.create_table(
        "instance_settings",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("daily_token_cap", sa.BigInteger, nullable=True),
        **TABLE_OPTIONS,
    )
    op.bulk_insert(instance, [{"id": 1, "daily_token_cap": None}])
    op.add_column("room_settings",
                  sa.Column("monthly_token_budget", sa.BigInteger, nullable=True))
    op.add_column("User", sa.Column("max_tokens_per_month", sa.BigInteger, nullable=False,
                                    server_default=str(FREE_TOKENS)))
    users = sa.table("User", sa.column("subscription"), sa.column("max_tokens_per_month"))
    op.execute(sa.update(users).where(users.c.subscription.in_(("pro", "team")))
               .values(max_tokens_per_month=UNLIMITED_TOKENS))
    # Nullable, so SQLite adds them in place (no table rebuild, the FTS triggers stay).
    op.add_column("messages", sa.Column("prompt_tokens", sa.Integer, nullable=True))
    op.add_column("messages", sa.Column("completion_tokens", sa.Integer, nullable=True))
    op.add_column("messages", sa.Column("usage_estimated", sa.Boolean, nullable=True))
    op.add_column("messages", sa.Column("cost_usd", Money, nullable=True))


def downgrade():
    # Not in batch mode: a rebuild of `messages` would drop its FTS triggers.
    for name in ("cost_usd", "usage_estimated", "completion_tokens", "prompt_tokens"):
        op.drop_column("messages", name)
    op.drop_column("User", "max_tokens_per_month")
    op.drop_column("room_settings", "monthly_token_budget")
    op.drop_table("instance_settings")
    op.drop_table("model_prices")
    for name in ("idx_usage_message", "idx_usage_created", "idx_usage_agent_created",
                 "idx_usage_user_created", "idx_usage_room_created"):
        op.drop_index(name, table_name="usage_ledger")
    op.drop_table("usage_ledger")
