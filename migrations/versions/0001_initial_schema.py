"""Initial schema: the twelve tables of the seed plus SPEC §3's decided extensions.

Revision ID: 0001
Revises:
Create Date: 2026-11-25

Runs unchanged on SQLite and MySQL/MariaDB. Full-text search is per engine:
a FULLTEXT index on MySQL, an external-content FTS5 table kept by triggers on SQLite.
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

# revision identifiers, used by Alembic.
revision = '0001'
down_revision = None
branch_labels = None
depends_on = None

# Ignored by SQLite; on MySQL every table stores full 4-byte UTF-8 (emoji, CJK).
TABLE_OPTIONS = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci"}

SQLITE_FTS = [
    """CREATE VIRTUAL TABLE messages_fts USING fts5(
        content, content='messages', content_rowid='rowid',
        tokenize='unicode61 remove_diacritics 2')""",
    """CREATE TRIGGER messages_fts_ai AFTER INSERT ON messages BEGIN
        INSERT INTO messages_fts(rowid, content) VALUES (new.rowid, new.content);
    END""",
    """CREATE TRIGGER messages_fts_ad AFTER DELETE ON messages BEGIN
        INSERT INTO messages_fts(messages_fts, rowid, content)
        VALUES ('delete', old.rowid, old.content);
    END""",
    """CREATE TRIGGER messages_fts_au AFTER UPDATE OF content ON messages BEGIN
        INSERT INTO messages_fts(messages_fts, rowid, content)
        VALUES ('delete', old.rowid, old.content);
        INSERT INTO messages_fts(rowid, content) VALUES (new.rowid, new.content);
    END""",
]


def upgrade():
    op.create_table('User',
    sa.Column('id', sa.String(length=255), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=True),
    sa.Column('email', sa.String(length=255), nullable=False),
    sa.Column('emailVerified', sa.TIMESTAMP().with_variant(mysql.TIMESTAMP(fsp=0), 'mariadb').with_variant(mysql.TIMESTAMP(fsp=0), 'mysql'), nullable=True),
    sa.Column('image', sa.Text(), nullable=True),
    sa.Column('avatar_url', sa.String(length=500), nullable=True),
    sa.Column('subscription', sa.Enum('free', 'pro', 'team', name='subscription'), server_default='free', nullable=False),
    sa.Column('max_agents', sa.Integer(), server_default='3', nullable=False),
    sa.Column('max_rooms', sa.Integer(), server_default='1', nullable=False),
    sa.Column('max_messages_per_month', sa.Integer(), server_default='100', nullable=False),
    sa.Column('last_active', sa.TIMESTAMP().with_variant(mysql.TIMESTAMP(fsp=0), 'mariadb').with_variant(mysql.TIMESTAMP(fsp=0), 'mysql'), server_default=sa.func.current_timestamp(), nullable=False),
    sa.Column('created_at', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('updated_at', sa.BigInteger(), server_default='0', nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_User')),
    sa.UniqueConstraint('email', name=op.f('uq_User_email')),
    **TABLE_OPTIONS,
    )
    with op.batch_alter_table('User', schema=None) as batch_op:
        batch_op.create_index('idx_email', ['email'], unique=False)
        batch_op.create_index('idx_subscription', ['subscription'], unique=False)

    op.create_table('VerificationToken',
    sa.Column('identifier', sa.String(length=255), nullable=False),
    sa.Column('token', sa.String(length=255), nullable=False),
    sa.Column('expires', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('updated_at', sa.BigInteger(), server_default='0', nullable=False),
    sa.PrimaryKeyConstraint('identifier', 'token', name=op.f('pk_VerificationToken')),
    sa.UniqueConstraint('token', name=op.f('uq_VerificationToken_token')),
    **TABLE_OPTIONS,
    )
    op.create_table('Account',
    sa.Column('id', sa.String(length=255), nullable=False),
    sa.Column('userId', sa.String(length=255), nullable=False),
    sa.Column('type', sa.String(length=255), nullable=False),
    sa.Column('provider', sa.String(length=255), nullable=False),
    sa.Column('providerAccountId', sa.String(length=255), nullable=False),
    sa.Column('refresh_token', sa.Text(), nullable=True),
    sa.Column('access_token', sa.Text(), nullable=True),
    sa.Column('expires_at', sa.Integer(), nullable=True),
    sa.Column('token_type', sa.String(length=255), nullable=True),
    sa.Column('scope', sa.String(length=255), nullable=True),
    sa.Column('id_token', sa.Text(), nullable=True),
    sa.Column('session_state', sa.String(length=255), nullable=True),
    sa.Column('authorization_code', sa.Text(), nullable=True),
    sa.Column('expires_at_ms', sa.BigInteger(), nullable=True),
    sa.Column('created_at', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('updated_at', sa.BigInteger(), server_default='0', nullable=False),
    sa.ForeignKeyConstraint(['userId'], ['User.id'], name=op.f('fk_Account_userId_User'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_Account')),
    sa.UniqueConstraint('provider', 'providerAccountId', name='idx_provider_account'),
    **TABLE_OPTIONS,
    )
    with op.batch_alter_table('Account', schema=None) as batch_op:
        batch_op.create_index('idx_userId', ['userId'], unique=False)

    op.create_table('Session',
    sa.Column('id', sa.String(length=255), nullable=False),
    sa.Column('sessionToken', sa.String(length=255), nullable=False),
    sa.Column('userId', sa.String(length=255), nullable=False),
    sa.Column('expires', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('updated_at', sa.BigInteger(), server_default='0', nullable=False),
    sa.ForeignKeyConstraint(['userId'], ['User.id'], name=op.f('fk_Session_userId_User'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_Session')),
    sa.UniqueConstraint('sessionToken', name=op.f('uq_Session_sessionToken')),
    **TABLE_OPTIONS,
    )
    with op.batch_alter_table('Session', schema=None) as batch_op:
        batch_op.create_index('idx_Session_userId', ['userId'], unique=False)
        batch_op.create_index('idx_sessionToken', ['sessionToken'], unique=False)

    op.create_table('agents',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('prompt', sa.Text(), nullable=False),
    sa.Column('emoji', sa.String(length=16), server_default='🤖', nullable=False),
    sa.Column('color', sa.String(length=7), server_default='#3B82F6', nullable=True),
    sa.Column('style', sa.Enum('professional', 'direct', 'friendly', 'creative', 'analytical', name='agent_style'), server_default='professional', nullable=True),
    sa.Column('created_by', sa.String(length=255), nullable=False),
    sa.Column('is_public', sa.Boolean(), server_default=sa.text('0'), nullable=True),
    sa.Column('usage_count', sa.Integer(), server_default='0', nullable=True),
    sa.Column('model', sa.String(length=200), nullable=True),
    sa.Column('created_at', sa.TIMESTAMP().with_variant(mysql.TIMESTAMP(fsp=0), 'mariadb').with_variant(mysql.TIMESTAMP(fsp=0), 'mysql'), server_default=sa.func.current_timestamp(), nullable=True),
    sa.Column('updated_at', sa.TIMESTAMP().with_variant(mysql.TIMESTAMP(fsp=0), 'mariadb').with_variant(mysql.TIMESTAMP(fsp=0), 'mysql'), server_default=sa.func.current_timestamp(), nullable=True),
    sa.ForeignKeyConstraint(['created_by'], ['User.id'], name=op.f('fk_agents_created_by_User'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agents')),
    **TABLE_OPTIONS,
    )
    with op.batch_alter_table('agents', schema=None) as batch_op:
        batch_op.create_index('idx_agents_created_by', ['created_by'], unique=False)
        batch_op.create_index('idx_style', ['style'], unique=False)
        batch_op.create_index('idx_usage_count', ['usage_count'], unique=False)

    op.create_table('api_tokens',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('user_id', sa.String(length=255), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.TIMESTAMP().with_variant(mysql.TIMESTAMP(fsp=0), 'mariadb').with_variant(mysql.TIMESTAMP(fsp=0), 'mysql'), server_default=sa.func.current_timestamp(), nullable=False),
    sa.Column('last_used_at', sa.TIMESTAMP().with_variant(mysql.TIMESTAMP(fsp=0), 'mariadb').with_variant(mysql.TIMESTAMP(fsp=0), 'mysql'), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['User.id'], name=op.f('fk_api_tokens_user_id_User'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_api_tokens_token_hash')),
    **TABLE_OPTIONS,
    )
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.create_index('idx_api_tokens_user_id', ['user_id'], unique=False)

    op.create_table('rooms',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('created_by', sa.String(length=255), nullable=False),
    sa.Column('is_active', sa.Boolean(), server_default=sa.text('1'), nullable=True),
    sa.Column('created_at', sa.TIMESTAMP().with_variant(mysql.TIMESTAMP(fsp=0), 'mariadb').with_variant(mysql.TIMESTAMP(fsp=0), 'mysql'), server_default=sa.func.current_timestamp(), nullable=True),
    sa.Column('updated_at', sa.TIMESTAMP().with_variant(mysql.TIMESTAMP(fsp=0), 'mariadb').with_variant(mysql.TIMESTAMP(fsp=0), 'mysql'), server_default=sa.func.current_timestamp(), nullable=True),
    sa.ForeignKeyConstraint(['created_by'], ['User.id'], name=op.f('fk_rooms_created_by_User'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rooms')),
    **TABLE_OPTIONS,
    )
    with op.batch_alter_table('rooms', schema=None) as batch_op:
        batch_op.create_index('idx_active', ['is_active'], unique=False)
        batch_op.create_index('idx_rooms_created_by', ['created_by'], unique=False)

    op.create_table('messages',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('room_id', sa.String(length=36), nullable=False),
    sa.Column('content', sa.Text(), nullable=False),
    sa.Column('type', sa.Enum('user', 'agent', 'system', name='message_type'), nullable=False),
    sa.Column('sender_id', sa.String(length=255), nullable=False),
    sa.Column('processing_time', sa.Numeric(precision=10, scale=3, asdecimal=False), nullable=True),
    sa.Column('agent_confidence', sa.Numeric(precision=3, scale=2, asdecimal=False), nullable=True),
    sa.Column('context_length', sa.Integer(), nullable=True),
    sa.Column('timestamp', sa.TIMESTAMP().with_variant(mysql.TIMESTAMP(fsp=3), 'mariadb').with_variant(mysql.TIMESTAMP(fsp=3), 'mysql'), server_default=sa.func.current_timestamp(), nullable=True),
    sa.Column('status', sa.String(length=16), server_default='complete', nullable=False),
    sa.Column('reply_to_id', sa.String(length=36), nullable=True),
    sa.Column('content_html', sa.Text(), nullable=True),
    sa.Column('sender_name', sa.String(length=255), nullable=True),
    sa.Column('sender_emoji', sa.String(length=16), nullable=True),
    sa.Column('sender_color', sa.String(length=7), nullable=True),
    sa.Column('humans_only', sa.Boolean(), server_default=sa.text('0'), nullable=False),
    sa.ForeignKeyConstraint(['reply_to_id'], ['messages.id'], name=op.f('fk_messages_reply_to_id_messages'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['room_id'], ['rooms.id'], name=op.f('fk_messages_room_id_rooms'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_messages')),
    **TABLE_OPTIONS,
    )
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.create_index('idx_room_id_id', ['room_id', 'id'], unique=False)
        batch_op.create_index('idx_room_timestamp', ['room_id', 'timestamp'], unique=False)
        batch_op.create_index('idx_sender_id', ['sender_id'], unique=False)
        batch_op.create_index('idx_type', ['type'], unique=False)

    if op.get_bind().dialect.name == "sqlite":
        for statement in SQLITE_FTS:
            op.execute(statement)
    else:
        op.create_index("idx_content", "messages", ["content"], mysql_prefix="FULLTEXT")

    op.create_table('room_agents',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('room_id', sa.String(length=36), nullable=False),
    sa.Column('agent_id', sa.String(length=36), nullable=False),
    sa.Column('added_by', sa.String(length=255), nullable=False),
    sa.Column('added_at', sa.TIMESTAMP().with_variant(mysql.TIMESTAMP(fsp=0), 'mariadb').with_variant(mysql.TIMESTAMP(fsp=0), 'mysql'), server_default=sa.func.current_timestamp(), nullable=True),
    sa.ForeignKeyConstraint(['added_by'], ['User.id'], name=op.f('fk_room_agents_added_by_User'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['agent_id'], ['agents.id'], name=op.f('fk_room_agents_agent_id_agents'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['room_id'], ['rooms.id'], name=op.f('fk_room_agents_room_id_rooms'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_room_agents')),
    sa.UniqueConstraint('room_id', 'agent_id', name='unique_room_agent'),
    **TABLE_OPTIONS,
    )
    with op.batch_alter_table('room_agents', schema=None) as batch_op:
        batch_op.create_index('idx_room_agents_agent_id', ['agent_id'], unique=False)
        batch_op.create_index('idx_room_agents_room_id', ['room_id'], unique=False)

    op.create_table('room_invitations',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('room_id', sa.String(length=36), nullable=False),
    sa.Column('invited_by', sa.String(length=255), nullable=False),
    sa.Column('invite_token', sa.String(length=255), nullable=False),
    sa.Column('email', sa.String(length=255), nullable=True),
    sa.Column('expires_at', sa.TIMESTAMP().with_variant(mysql.TIMESTAMP(fsp=0), 'mariadb').with_variant(mysql.TIMESTAMP(fsp=0), 'mysql'), nullable=True),
    sa.Column('used_at', sa.TIMESTAMP().with_variant(mysql.TIMESTAMP(fsp=0), 'mariadb').with_variant(mysql.TIMESTAMP(fsp=0), 'mysql'), nullable=True),
    sa.Column('created_at', sa.TIMESTAMP().with_variant(mysql.TIMESTAMP(fsp=0), 'mariadb').with_variant(mysql.TIMESTAMP(fsp=0), 'mysql'), server_default=sa.func.current_timestamp(), nullable=True),
    sa.Column('revoked_at', sa.TIMESTAMP().with_variant(mysql.TIMESTAMP(fsp=0), 'mariadb').with_variant(mysql.TIMESTAMP(fsp=0), 'mysql'), nullable=True),
    sa.Column('used_by', sa.String(length=255), nullable=True),
    sa.ForeignKeyConstraint(['invited_by'], ['User.id'], name=op.f('fk_room_invitations_invited_by_User'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['room_id'], ['rooms.id'], name=op.f('fk_room_invitations_room_id_rooms'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['used_by'], ['User.id'], name=op.f('fk_room_invitations_used_by_User'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_room_invitations')),
    sa.UniqueConstraint('invite_token', name=op.f('uq_room_invitations_invite_token')),
    **TABLE_OPTIONS,
    )
    with op.batch_alter_table('room_invitations', schema=None) as batch_op:
        batch_op.create_index('idx_expires_at', ['expires_at'], unique=False)
        batch_op.create_index('idx_invite_token', ['invite_token'], unique=False)
        batch_op.create_index('idx_room_invitations_room_id', ['room_id'], unique=False)

    op.create_table('room_participants',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('room_id', sa.String(length=36), nullable=False),
    sa.Column('user_id', sa.String(length=255), nullable=False),
    sa.Column('role', sa.Enum('owner', 'admin', 'member', name='participant_role'), server_default='member', nullable=True),
    sa.Column('joined_at', sa.TIMESTAMP().with_variant(mysql.TIMESTAMP(fsp=0), 'mariadb').with_variant(mysql.TIMESTAMP(fsp=0), 'mysql'), server_default=sa.func.current_timestamp(), nullable=True),
    sa.ForeignKeyConstraint(['room_id'], ['rooms.id'], name=op.f('fk_room_participants_room_id_rooms'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['User.id'], name=op.f('fk_room_participants_user_id_User'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_room_participants')),
    sa.UniqueConstraint('room_id', 'user_id', name='unique_room_user'),
    **TABLE_OPTIONS,
    )
    with op.batch_alter_table('room_participants', schema=None) as batch_op:
        batch_op.create_index('idx_room_participants_room_id', ['room_id'], unique=False)
        batch_op.create_index('idx_user_id', ['user_id'], unique=False)

    op.create_table('room_settings',
    sa.Column('room_id', sa.String(length=36), nullable=False),
    sa.Column('max_agents', sa.Integer(), server_default='5', nullable=True),
    sa.Column('allow_agent_creation', sa.Boolean(), server_default=sa.text('1'), nullable=True),
    sa.Column('auto_summarize', sa.Boolean(), server_default=sa.text('0'), nullable=True),
    sa.ForeignKeyConstraint(['room_id'], ['rooms.id'], name=op.f('fk_room_settings_room_id_rooms'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('room_id', name=op.f('pk_room_settings')),
    **TABLE_OPTIONS,
    )
    op.create_table('message_mentions',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('message_id', sa.String(length=36), nullable=False),
    sa.Column('mentioned_agent_id', sa.String(length=36), nullable=False),
    sa.ForeignKeyConstraint(['mentioned_agent_id'], ['agents.id'], name=op.f('fk_message_mentions_mentioned_agent_id_agents'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], name=op.f('fk_message_mentions_message_id_messages'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_message_mentions')),
    **TABLE_OPTIONS,
    )
    with op.batch_alter_table('message_mentions', schema=None) as batch_op:
        batch_op.create_index('idx_message_id', ['message_id'], unique=False)
        batch_op.create_index('idx_message_mentions_agent_id', ['mentioned_agent_id'], unique=False)



def downgrade():
    if op.get_bind().dialect.name == "sqlite":
        for trigger in ("messages_fts_ai", "messages_fts_ad", "messages_fts_au"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS messages_fts")
    # Dropping a table drops its indexes; MySQL refuses to drop an index a foreign key needs.
    for table in (
        "message_mentions", "room_settings", "room_participants", "room_invitations",
        "room_agents", "messages", "rooms", "api_tokens", "agents", "Session", "Account",
        "VerificationToken", "User",
    ):
        op.drop_table(table)
