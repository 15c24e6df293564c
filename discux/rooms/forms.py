from flask_wtf import FlaskForm
from wtforms import BooleanField, IntegerField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange

from discux.rooms.service import ASSIGNABLE_ROLES, DESCRIPTION_MAX, MAX_AGENTS_RANGE, NAME_MAX


class RoomForm(FlaskForm):
    name = StringField(
        "Name",
        validators=[DataRequired("Give the room a name."),
                    Length(max=NAME_MAX, message=f"Keep the name to {NAME_MAX} characters or fewer.")],
    )
    description = TextAreaField(
        "Description",
        validators=[Length(max=DESCRIPTION_MAX,
                           message=f"Keep the description to {DESCRIPTION_MAX} characters or fewer.")],
    )


class SettingsForm(FlaskForm):
    max_agents = IntegerField(
        "Max agents",
        validators=[
            InputRequired("Enter how many agents the room may hold."),
            NumberRange(*MAX_AGENTS_RANGE, message="Choose a number from %(min)s to %(max)s."),
        ],
    )
    allow_agent_creation = BooleanField("Members may add agents")
    auto_summarize = BooleanField("Summarize long discussions automatically")


class AddAgentForm(FlaskForm):
    agent_id = SelectField("Agent", validate_choice=False,
                           validators=[DataRequired("Choose an agent to add.")])


class RoleForm(FlaskForm):
    role = SelectField("Role", choices=[SelectChoice(r, r.capitalize()) for r in ASSIGNABLE_ROLES])


class TransferForm(FlaskForm):
    new_owner_id = SelectField("New owner", validate_choice=False,
                               validators=[DataRequired("Choose who becomes the owner.")])
