from flask_wtf import FlaskForm
from wtforms import SelectField, StringField
from wtforms.fields.choices import SelectChoice

from discux.models import Room
from discux.search.query import MAX_QUERY_CHARS

ORDER_CHOICES = [SelectChoice("relevance", "Best match first"),
                 SelectChoice("newest", "Newest first")]


class SearchForm(FlaskForm):
    """The search box: read from the query string, so results have a URL (no CSRF: GET)."""

    class Meta:
        csrf = False

    q = StringField("Search for", render_kw={
        "type": "search", "maxlength": MAX_QUERY_CHARS, "autocomplete": "off",
        "placeholder": 'words, "a phrase" or prefix*',
    })
    room = SelectField("In", choices=[])
    order = SelectField("Order", choices=ORDER_CHOICES, default="relevance")

    def __init__(self, formdata, rooms: list[Room]):
        super().__init__(formdata=formdata)
        self.room.choices = [SelectChoice("", "All my rooms")] + [
            SelectChoice(room.id, room.name) for room in rooms]
