"""Form fields the apps' staff forms share (a public module: generation's and training's forms import it)."""

from __future__ import annotations

import re

from django import forms
from django.core.exceptions import ValidationError

_PK = re.compile(r"[0-9]{1,18}")


class StrictModelChoiceField(forms.ModelChoiceField):
    """A primary key must be ASCII digits before it is looked up (SQLite cannot even bind a 20-digit integer)."""

    def to_python(self, value):
        if value not in self.empty_values and not _PK.fullmatch(str(value)):
            raise ValidationError(self.error_messages["invalid_choice"], code="invalid_choice")
        return super().to_python(value)


class StrictModelMultipleChoiceField(forms.ModelMultipleChoiceField):
    def clean(self, value):
        for pk in value if isinstance(value, (list, tuple)) else ():
            if not _PK.fullmatch(str(pk)):
                raise ValidationError(self.error_messages["invalid_pk_value"], code="invalid_pk_value", params={"pk": pk})
        return super().clean(value)
