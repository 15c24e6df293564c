"""Where each row copied in from another installation went: `flask discux3 import` reads this
to add nothing twice and to keep the ids it gave."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from discux.extensions import db
from discux.ids import utcnow
from discux.models.types import Timestamp


class ImportedRow(db.Model):
    __tablename__ = "imported_rows"

    # "discux3" today; another origin would get its own name.
    origin: Mapped[str] = mapped_column(sa.String(20), primary_key=True)
    source_table: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    source_id: Mapped[str] = mapped_column(sa.String(191), primary_key=True)
    target_id: Mapped[str] = mapped_column(sa.String(255))
    imported_at: Mapped[datetime] = mapped_column(
        Timestamp, default=utcnow, server_default=sa.func.current_timestamp()
    )
