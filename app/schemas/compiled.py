"""Schemas that dump through a plan compiled once per instance: the same output as marshmallow's own loop."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from marshmallow import Schema, fields, missing
from marshmallow.schema import POST_DUMP, PRE_DUMP
from marshmallow.utils import ensure_text_type, get_value

from app.schemas.common import begin_dump, end_dump

# Why: a page of 50 cases is some 3,000 field values; marshmallow asks each field for its value through get_value
# (a __getitem__ probe, then getattr) and its _serialize, which cost more than reading the rows from the database
# (`make bench-read`, `make bench-geo`). The plan keeps marshmallow's rules: the field's attribute or name, the
# dump_default of a missing value, each field's own formatting (plain casts for the built-in number, string,
# boolean and dict fields, the field's _serialize for any other), nested schemas inlined when they have no hooks.
# Hooks of the schema itself run as before: dump() calls _serialize between them.


def _cast(cast: Callable[[Any], Any]) -> Callable[[Any, Any], Any]:
    return lambda value, _obj: None if value is None else cast(value)


def _converter(name: str, field: fields.Field) -> Callable[[Any, Any], Any]:
    kind = type(field)
    if kind is fields.Integer and not field.as_string:
        return _cast(int)
    if kind is fields.Float and not field.as_string:
        return _cast(float)
    if kind is fields.String:
        return _cast(ensure_text_type)
    if kind is fields.Boolean:
        return lambda value, _obj: value
    if kind is fields.Dict and field.key_field is None and field.value_field is None:
        return _cast(dict)
    if getattr(field, "compiled_converter", None) is not None:
        return field.compiled_converter()
    # A schema class, instance or name (not a function that returns one, which is resolved per call).
    if kind is fields.Nested and (isinstance(field.nested, type | Schema | str)):
        schema = field.schema
        many = schema.many or field.many
        plan = _plan(schema) if isinstance(schema, CompiledSchema) and not _has_hooks(schema) else None
        if plan is None:
            return lambda value, _obj: None if value is None else schema.dump(value, many=many)
        if many:
            return lambda value, _obj: None if value is None else [_run(plan, item) for item in value]
        return lambda value, _obj: None if value is None else _run(plan, value)
    return lambda value, obj: field._serialize(value, name, obj)


def _has_hooks(schema: Schema) -> bool:
    return bool(schema._hooks[PRE_DUMP] or schema._hooks[POST_DUMP])


def _plan(schema: Schema) -> list[tuple] | None:
    """(key, source, checks the attribute, default, converter) per dumped field, in dump order; None when the
    schema or a field reads values its own way (get_attribute, get_value, serialize), which the plain loop serves."""
    plan = schema.__dict__.get("_compiled_plan", missing)
    if plan is not missing:
        return plan
    plan = [] if type(schema).get_attribute is Schema.get_attribute else None
    for name, field in schema.dump_fields.items() if plan is not None else ():
        if type(field).get_value is not fields.Field.get_value or type(field).serialize is not fields.Field.serialize:
            plan = None
            break
        key = field.data_key if field.data_key is not None else name
        source = field.attribute if field.attribute is not None else name
        plan.append((key, source, field._CHECK_ATTRIBUTE, field.dump_default, _converter(name, field)))
    schema.__dict__["_compiled_plan"] = plan
    return plan


def _run(plan: list[tuple], obj: Any) -> dict[str, Any]:
    out = {}
    # get_value's rule, decided once per object: item access first for what has __getitem__, else attributes.
    indexable = hasattr(obj, "__getitem__")
    for key, source, check, default, convert in plan:
        if not check:
            value = None
        else:
            if "." in source or indexable:
                value = get_value(obj, source, missing)
            else:
                value = getattr(obj, source, missing)
            if value is missing:
                value = default() if callable(default) else default
                if value is missing:
                    continue
        out[key] = convert(value, obj)
    return out


class CompiledSchema(Schema):
    def _serialize(self, obj: Any, *, many: bool = False):
        plan = _plan(self)
        if plan is None:
            return super()._serialize(obj, many=many)
        token = begin_dump()
        try:
            if many and obj is not None:
                return [_run(plan, item) for item in obj]
            return _run(plan, obj)
        finally:
            end_dump(token)
