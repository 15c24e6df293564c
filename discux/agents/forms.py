from flask_wtf import FlaskForm
from wtforms import BooleanField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice

from discux.agents.service import AgentFields
from discux.agents.styles import STYLE_TABLE

# The rules live in discux.agents.service (the API uses them too); this form only carries
# the fields and shows the service's messages beside them.


class AgentForm(FlaskForm):
    name = StringField("Name")
    prompt = TextAreaField("Persona prompt")
    emoji = StringField("Emoji", default="🤖")
    color = StringField("Colour", default="#3B82F6")
    style = SelectField(
        "Style",
        choices=[SelectChoice(s.name, f"{s.label}: {s.summary}") for s in STYLE_TABLE.values()],
        default="professional",
        validate_choice=False,
    )
    is_public = BooleanField("Share in the public gallery")
    model = StringField("Model (optional)")
    try_message = TextAreaField("Test message")

    def fields(self) -> AgentFields:
        return AgentFields(
            name=self.name.data or "",
            prompt=self.prompt.data or "",
            emoji=self.emoji.data or "",
            color=self.color.data or "",
            style=self.style.data or "",
            is_public=bool(self.is_public.data),
            model=self.model.data or None,
        )

    def show_problems(self, problems: dict[str, str]) -> None:
        """Put each message beside its field."""
        for name, message in problems.items():
            field = getattr(self, name, None)
            if field is not None:
                field.errors = [*field.errors, message]


class CopyAgentForm(FlaskForm):
    """Only the CSRF token: "Copy to my agents" has nothing to fill in."""


class AddToRoomForm(FlaskForm):
    room_id = SelectField("Room", choices=[], validate_choice=False)


class SuggestForm(FlaskForm):
    """"Suggest agents": what the team needs, in a sentence or two."""

    goal = TextAreaField("What do you need help with?")
