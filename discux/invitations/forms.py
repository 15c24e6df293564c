from flask_wtf import FlaskForm
from wtforms import EmailField, SelectField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Length, Optional

from discux.auth.forms import EMAIL_SHAPE
from discux.invitations.service import DEFAULT_EXPIRY

EXPIRY_LABELS = [
    SelectChoice("1d", "1 day"), SelectChoice("7d", "7 days"), SelectChoice("30d", "30 days"),
    SelectChoice("never", "Never"),
]


class InviteForm(FlaskForm):
    email = EmailField(
        "Only this email may accept (optional)",
        validators=[Optional(), EMAIL_SHAPE, Length(max=255)],
    )
    expiry = SelectField("Link expires after", choices=EXPIRY_LABELS, default=DEFAULT_EXPIRY)
