from flask_wtf import FlaskForm
from wtforms import BooleanField, StringField
from wtforms.validators import DataRequired, Regexp

from discux.messages.history import ID_PATTERN


class ReadForm(FlaskForm):
    """The open tab saying how far its reader got."""

    message_id = StringField("Message", validators=[
        DataRequired("Say which message was read."),
        Regexp(ID_PATTERN, message="That is not a message id.")])


class NotificationSettingsForm(FlaskForm):
    email_mentions = BooleanField("Email me when someone @mentions me in a room I don't have open")
