from flask_wtf import FlaskForm
from wtforms import EmailField, HiddenField, StringField
from wtforms.validators import DataRequired, Length, Regexp

# Shape only: deliverability is proven by the link arriving, not by a lookup here.
EMAIL_SHAPE = Regexp(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$", message="Enter a valid email address.")


class DemoSignInForm(FlaskForm):
    # Distinct ids: both sign-in forms share the page and each label must find its own input.
    email = EmailField(
        "Email",
        id="demo-email",
        validators=[DataRequired("Enter an email address."), EMAIL_SHAPE,
                    Length(max=255)],
    )
    name = StringField("Name", id="demo-name", validators=[Length(max=255)])
    next = HiddenField()


class EmailLinkForm(FlaskForm):
    email = EmailField(
        "Email",
        id="link-email",
        validators=[DataRequired("Enter an email address."), EMAIL_SHAPE,
                    Length(max=255)],
    )
    next = HiddenField()
