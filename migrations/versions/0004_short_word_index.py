"""MySQL/MariaDB: an index of two-letter words ("AI", "UX", "QA", "42"), which InnoDB's FULLTEXT
index leaves out with its default innodb_ft_min_token_size of 3.

`messages_fts_short` holds one row per (two-letter word, message) with how often the word
occurs; its primary key (token, room_id, message_id) answers "AI" in a user's rooms newest first,
and (token, room_id, occurrences) by occurrences, from the index alone instead of a REGEXP scan
of recent history. Triggers keep it in sync (a stored procedure splits the text into words with
the same letter/digit classes as discux/search/mysql.py's REGEXPs); a deleted message's rows go with it by ON DELETE CASCADE, which
also covers messages deleted by a room's cascade (InnoDB cascades fire no triggers). Messages
still being streamed are indexed once complete, as search skips them anyway.

SQLite needs nothing: FTS5 indexes every word. The name starts with messages_fts so that
migrations/env.py leaves it out of autogenerate, like SQLite's FTS5 tables.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# Everything but words of exactly two letters or digits (query.py drops one-letter words):
# longer runs, single letters and separators. What is left is those words, spaced.
NOT_TWO_LETTERS = (r"(?:[\\p{L}\\p{N}]{3,}|(?<![\\p{L}\\p{N}])[\\p{L}\\p{N}](?![\\p{L}\\p{N}])"
                   r"|[^\\p{L}\\p{N}])+")

_CREATE = [
    # A database emptied table by table (as the test suite does) keeps its routines.
    "DROP PROCEDURE IF EXISTS messages_fts_short_index",
    """CREATE TABLE messages_fts_short (
        token VARCHAR(2) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci NOT NULL,
        room_id VARCHAR(36) NOT NULL,
        message_id VARCHAR(36) NOT NULL,
        occurrences SMALLINT UNSIGNED NOT NULL,
        PRIMARY KEY (token, room_id, message_id),
        KEY idx_messages_fts_short_message (message_id),
        -- Ranked: InnoDB appends message_id, so a room's most occurrences come in key order.
        KEY idx_messages_fts_short_rank (token, room_id, occurrences),
        CONSTRAINT fk_messages_fts_short_message FOREIGN KEY (message_id)
            REFERENCES messages (id) ON DELETE CASCADE
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci""",
    # One REGEXP_REPLACE and one INSERT per message (a loop of REGEXP_INSTR and an INSERT per
    # word cost four times as much). The words are letters and digits only, so they can be
    # quoted into a JSON array as they are. Grouping under the column's collation counts
    # "ai" and "AÏ" as one word, as FULLTEXT would.
    f"""CREATE PROCEDURE messages_fts_short_index(
        IN for_message VARCHAR(36), IN in_room VARCHAR(36), IN body LONGTEXT)
    BEGIN
        DECLARE words LONGTEXT DEFAULT TRIM(REGEXP_REPLACE(body, '{NOT_TWO_LETTERS}', ' '));
        IF words <> '' THEN
            INSERT INTO messages_fts_short (token, room_id, message_id, occurrences)
            SELECT MIN(LOWER(found.word)), in_room, for_message, COUNT(*)
            FROM JSON_TABLE(CONCAT('["', REPLACE(words, ' ', '","'), '"]'), '$[*]'
                            COLUMNS (word VARCHAR(2) PATH '$')) AS found
            GROUP BY CONVERT(LOWER(found.word) USING utf8mb4) COLLATE utf8mb4_unicode_ci
            ON DUPLICATE KEY UPDATE occurrences = occurrences + VALUES(occurrences);
        END IF;
    END""",
    """CREATE TRIGGER messages_fts_short_ai AFTER INSERT ON messages FOR EACH ROW
    BEGIN
        IF NEW.status <> 'streaming' THEN
            CALL messages_fts_short_index(NEW.id, NEW.room_id, NEW.content);
        END IF;
    END""",
    """CREATE TRIGGER messages_fts_short_au AFTER UPDATE ON messages FOR EACH ROW
    BEGIN
        IF NOT (OLD.content <=> NEW.content AND OLD.status <=> NEW.status) THEN
            DELETE FROM messages_fts_short WHERE message_id = OLD.id;
            IF NEW.status <> 'streaming' THEN
                CALL messages_fts_short_index(NEW.id, NEW.room_id, NEW.content);
            END IF;
        END IF;
    END""",
]

# Index the messages already there, with the same procedure.
_BACKFILL = [
    "DROP PROCEDURE IF EXISTS messages_fts_short_backfill",
    """CREATE PROCEDURE messages_fts_short_backfill()
    BEGIN
        DECLARE done INT DEFAULT 0;
        DECLARE for_message, in_room VARCHAR(36);
        DECLARE body LONGTEXT;
        DECLARE pending CURSOR FOR
            SELECT id, room_id, content FROM messages WHERE status <> 'streaming';
        DECLARE CONTINUE HANDLER FOR NOT FOUND SET done = 1;
        OPEN pending;
        read_loop: LOOP
            FETCH pending INTO for_message, in_room, body;
            IF done THEN
                LEAVE read_loop;
            END IF;
            CALL messages_fts_short_index(for_message, in_room, body);
        END LOOP;
        CLOSE pending;
    END""",
    "CALL messages_fts_short_backfill()",
    "DROP PROCEDURE messages_fts_short_backfill",
]


def upgrade():
    if op.get_bind().dialect.name == "sqlite":
        return
    for statement in _CREATE + _BACKFILL:
        op.execute(statement)


def downgrade():
    if op.get_bind().dialect.name == "sqlite":
        return
    op.execute("DROP TRIGGER IF EXISTS messages_fts_short_au")
    op.execute("DROP TRIGGER IF EXISTS messages_fts_short_ai")
    op.execute("DROP PROCEDURE IF EXISTS messages_fts_short_index")
    op.execute("DROP TABLE IF EXISTS messages_fts_short")
