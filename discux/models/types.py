"""Column types that mean the same thing on SQLite and MySQL/MariaDB."""

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

# MariaDB keeps 0 fractional digits unless told; messages need milliseconds.
Timestamp = sa.TIMESTAMP().with_variant(mysql.TIMESTAMP(fsp=0), "mysql", "mariadb")
TimestampMs = sa.TIMESTAMP().with_variant(mysql.TIMESTAMP(fsp=3), "mysql", "mariadb")
# The seed's TEXT columns; MEDIUMTEXT is not needed: content is capped at 4000 characters.
Text = sa.Text()
