from flask_wtf import FlaskForm
from wtforms import DecimalField, IntegerField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import AnyOf, DataRequired, Length, NumberRange, Optional

from discux.models import PLANS
from discux.plans import UNLIMITED_TOKENS
from discux.usage import PRICE_MAX


class PlanForm(FlaskForm):
    plan = SelectField("Plan", choices=[SelectChoice(plan, plan) for plan in PLANS], validate_choice=False,
                       validators=[AnyOf(PLANS, message=f"Choose one of {', '.join(PLANS)}.")])


class DailyCapForm(FlaskForm):
    daily_token_cap = IntegerField(
        "Daily token cap", validators=[
            Optional(),
            NumberRange(0, UNLIMITED_TOKENS, message="Enter a whole number of tokens from "
                        "%(min)s to %(max)s, or leave it empty for no cap.")])


class PriceForm(FlaskForm):
    model = StringField("Model", validators=[
        DataRequired("Name the model, as the provider spells it."),
        Length(max=255, message="Keep the model name to 255 characters or fewer.")])
    input_usd_per_million = DecimalField(
        "Input (USD per million tokens)", places=None, validators=[
            Optional(), NumberRange(0, PRICE_MAX, message="Enter a price from %(min)s to "
                                    "%(max)s USD.")])
    output_usd_per_million = DecimalField(
        "Output (USD per million tokens)", places=None, validators=[
            Optional(), NumberRange(0, PRICE_MAX, message="Enter a price from %(min)s to "
                                    "%(max)s USD.")])
