"""`imported_rows`: which Discux row each row copied from a Discux3 database became, so that
running `flask discux3 import` again adds nothing and keeps the ids it gave.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "imported_rows",
        sa.Column("origin", sa.String(20), nullable=False),
        sa.Column("source_table", sa.String(40), nullable=False),
        sa.Column("source_id", sa.String(191), nullable=False),
        sa.Column("target_id", sa.String(255), nullable=False),
        sa.Column("imported_at",
                  sa.TIMESTAMP().with_variant(mysql.TIMESTAMP(fsp=0), "mysql", "mariadb"),
                  server_default=sa.func.current_timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("origin", "source_table", "source_id", name="pk_imported_rows"),
        mysql_charset="utf8mb4", mysql_collate="utf8mb4_unicode_ci",
    )


def downgrade():
    op.drop_table("imported_rows")
