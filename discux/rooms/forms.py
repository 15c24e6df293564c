from dataclasses import dataclass
from functools import cache
from itertools import groupby
from operator import attrgetter

from flask_wtf import FlaskForm
from wtforms import BooleanField, IntegerField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from discux.plans import UNLIMITED_TOKENS as TOKEN_BUDGET_MAX
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
    monthly_token_budget = IntegerField(
        "Monthly token budget",
        validators=[
            Optional(),
            NumberRange(0, TOKEN_BUDGET_MAX,
                        message="Enter a whole number of tokens from %(min)s to %(max)s, or "
                                "leave it empty for no budget."),
        ],
    )


class AddAgentForm(FlaskForm):
    agent_id = SelectField("Agent", validate_choice=False,
                           validators=[DataRequired("Choose an agent to add.")])


class RoleForm(FlaskForm):
    role = SelectField("Role", choices=[SelectChoice(r, r.capitalize()) for r in ASSIGNABLE_ROLES])


class TransferForm(FlaskForm):
    new_owner_id = SelectField("New owner", validate_choice=False,
                               validators=[DataRequired("Choose who becomes the owner.")])


# What the panel's macros print. A plain view of a room builds no wtforms form at all (building
# four forms was about 7% of the page); a refused POST shows its own form's input and errors.


@dataclass(frozen=True)
class OptionView:
    value: str
    label: str
    selected: bool = False


@dataclass(frozen=True)
class FieldView:
    """One field as templates/rooms/_macros.html prints it."""

    id: str
    name: str
    label: str
    value: str = ""
    checked: bool = False
    required: bool = False
    maxlength: int | None = None
    errors: tuple[str, ...] = ()
    groups: tuple[tuple[str | None, tuple[OptionView, ...]], ...] = ()  # (optgroup, options)

    @property
    def choices(self) -> tuple[OptionView, ...]:
        """A select's options, all groups together."""
        return tuple(option for _, options in self.groups for option in options)


@dataclass(frozen=True)
class FormView:
    """A form's fields by name and its errors that belong to no one field."""

    fields: dict[str, FieldView]
    form_errors: tuple[str, ...] = ()

    def __getattr__(self, name: str) -> FieldView:  # form.max_agents, as with wtforms
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self.fields[name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def errors(self) -> bool:
        return bool(self.form_errors) or any(f.errors for f in self.fields.values())


def _groups(choices, selected) -> tuple:
    return tuple(
        (optgroup, tuple(OptionView(str(c.value), c.label, str(c.value) == selected)
                         for c in group))
        for optgroup, group in groupby(choices, key=attrgetter("optgroup"))
    )


def _field_view(field, value, errors=(), choices=None) -> FieldView:
    if field.type == "BooleanField":
        shown, checked = field._value(), bool(value)
    else:
        shown, checked = "" if value is None else str(value), False
    groups = ()
    if field.type == "SelectField":
        groups = _groups(field.choices if choices is None else choices, shown)
    return FieldView(
        id=field.id, name=field.name, label=field.label.text, value=shown, checked=checked,
        required=bool(field.flags.required), maxlength=getattr(field.flags, "maxlength", None),
        errors=tuple(errors), groups=groups,
    )


@cache
def _blank(form_class: type[FlaskForm]) -> FlaskForm:
    # Labels, ids, defaults and rules only: never holds anyone's input.
    return form_class(formdata=None, meta={"csrf": False})


def form_view(form_class: type[FlaskForm], submitted: FlaskForm | None = None,
              values: dict | None = None, choices: dict | None = None) -> FormView:
    """The form as the panel shows it: the refused `submitted` form with what was typed and
    its errors, else blank with `values` (by field name) over its defaults; `choices` gives
    selects their options (a list of SelectChoice by field name)."""
    values, choices = values or {}, choices or {}
    fields = {}
    for field in submitted if submitted is not None else _blank(form_class):
        if field.type == "CSRFTokenField":
            continue
        if submitted is not None:
            value = field.data if field.type in ("BooleanField", "SelectField") else field._value()
            fields[field.name] = _field_view(field, value, field.errors,
                                             choices.get(field.name))
        else:
            fields[field.name] = _field_view(field, values.get(field.name, field.data),
                                             choices=choices.get(field.name))
    return FormView(fields, tuple(submitted.form_errors) if submitted is not None else ())
