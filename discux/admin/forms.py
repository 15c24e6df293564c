from flask_wtf import FlaskForm
from wtforms import SelectField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import AnyOf

from discux.models import PLANS


class PlanForm(FlaskForm):
    plan = SelectField("Plan", choices=[SelectChoice(plan, plan) for plan in PLANS], validate_choice=False,
                       validators=[AnyOf(PLANS, message=f"Choose one of {', '.join(PLANS)}.")])
