from flask_wtf import FlaskForm
from wtforms import StringField

from discux.api.tokens import NAME_MAX

# The rules live in discux.api.tokens; this form carries the name and shows their message.


class ApiTokenForm(FlaskForm):
    name = StringField("Token name (what will use it)", render_kw={"maxlength": NAME_MAX})
