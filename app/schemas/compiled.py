"""Schemas that dump through a plan compiled once per instance: the same output as marshmallow's own loop."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from marshmallow import Schema, fields, missing
from marshmallow.schema import POST_DUMP, PRE_DUMP
from marshmallow.utils import ensure_text_type, get_value

from app.schemas.common import begin_dump, end_dump, isoformat, local_zone

# Why: a page of 50 cases is some 3,000 field values; marshmallow asks each field for its value through get_value
# (a __getitem__ probe, then getattr) and its _serialize, which cost more than reading the rows from the database
# (`make bench-read`, `make bench-geo`). The plan keeps marshmallow's rules: the field's attribute or name, the
# dump_default of a missing value, each field's own formatting (plain casts for the built-in number, string,
# boolean and dict fields, the field's _serialize for any other), nested schemas inlined when they have no hooks.
# Hooks of the schema itself run as before: dump() calls _serialize between them.


# A converter is (kind, payload): the kinds the generated dump writes inline, or "call" with a function of
# (value, obj), which it calls.
_CASTS = {fields.Integer: int, fields.Float: float, fields.String: ensure_text_type}


def _converter(name: str, field: fields.Field) -> tuple[str, Any]:
    kind = type(field)
    if kind in _CASTS and not getattr(field, "as_string", False):
        return "cast", _CASTS[kind]
    if kind is fields.Boolean:
        return "same", None
    if kind is fields.Dict and field.key_field is None and field.value_field is None:
        return "cast", dict
    if getattr(field, "compiled_converter", None) is not None:
        return field.compiled_converter()
    # A schema class, instance or name (not a function that returns one, which is resolved per call).
    if kind is fields.Nested and (isinstance(field.nested, type | Schema | str)):
        schema = field.schema
        many = schema.many or field.many
        plan = _plan(schema) if isinstance(schema, CompiledSchema) else None
        # One item's dump: the plan's function, wrapped in the schema's item hooks when it has any.
        item = None if plan is None else _with_item_hooks(schema, plan, many) if _has_hooks(schema) else plan.run
        if item is None:
            return "call", lambda value, _obj: None if value is None else schema.dump(value, many=many)
        return ("nested_many" if many else "nested"), item
    if kind is fields.List and type(field.inner) is fields.Nested:
        # A list of one nested schema (every page's items): each item as the nested field writes it, None as None.
        inner_kind, item = _converter(name, field.inner)
        if inner_kind == "nested":
            return "listed", item
    return "call", lambda value, obj: field._serialize(value, name, obj)


def _has_hooks(schema: Schema) -> bool:
    return bool(schema._hooks[PRE_DUMP] or schema._hooks[POST_DUMP])


def _with_item_hooks(schema: Schema, plan: Plan, many: bool) -> Callable[[Any], Any] | None:
    """One item's dump as schema.dump(items, many=many) writes it: the schema's pre_dump hooks, its plan, its
    post_dump hooks, each given the item as it came (pass_original). None when a hook takes the whole collection.

    Why: marshmallow's dump around each case of a page (finding and calling its hooks) cost a quarter of the page's
    dump. Hooks that take one item at a time give the same answer applied item by item."""
    hooks = {tag: [] for tag in (PRE_DUMP, POST_DUMP)}
    for tag, found in hooks.items():
        for attr_name, pass_collection, hook_kwargs in schema._hooks[tag]:
            if pass_collection:
                return None
            found.append((getattr(schema, attr_name), hook_kwargs.get("pass_original", False)))
    pre, post, run, many = hooks[PRE_DUMP], hooks[POST_DUMP], plan.run, bool(many)

    def dump_item(original: Any) -> Any:
        item = original
        for hook, pass_original in pre:
            item = hook(item, original, many=many) if pass_original else hook(item, many=many)
        data = run(item)
        for hook, pass_original in post:
            data = hook(data, original, many=many) if pass_original else hook(data, many=many)
        return data

    return dump_item


def _plan(schema: Schema) -> Plan | None:
    """(key, source, checks the attribute, default, converter) per dumped field, in dump order; None when the
    schema or a field reads values its own way (get_attribute, get_value, serialize), which the plain loop serves."""
    plan = schema.__dict__.get("_compiled_plan", missing)
    if plan is not missing:
        return plan
    plan = Plan() if type(schema).get_attribute is Schema.get_attribute else None
    for name, field in schema.dump_fields.items() if plan is not None else ():
        if type(field).get_value is not fields.Field.get_value or type(field).serialize is not fields.Field.serialize:
            plan = None
            break
        key = field.data_key if field.data_key is not None else name
        source = field.attribute if field.attribute is not None else name
        plan.append((key, source, field._CHECK_ATTRIBUTE, field.dump_default, _converter(name, field)))
    if plan is not None:
        plan.run = _generate(plan)
    schema.__dict__["_compiled_plan"] = plan
    return plan


class Plan(list):
    """A schema's (key, source, checks the attribute, default, converter) per dumped field, and `run(obj)`: the dump
    of one object, a function generated from them once."""

    run: Callable[[Any], dict[str, Any]]


def _generate(plan: Plan) -> Callable[[Any], dict[str, Any]]:
    """The plan as the source of one function, each field's read and conversion written out in it.

    Why: a loop over the plan paid, for each of a page's 3,000 values, the tuple unpacking, the branches and a
    converter call; the generated function pays none of them. It keeps marshmallow's rules: get_value for an object
    with __getitem__ or a dotted source, else the attribute; the field's default for a missing value, and no key
    when that default is missing too."""
    names: dict[str, Any] = {
        "missing": missing,
        "get_value": get_value,
        "local_zone": local_zone,
        "isoformat": isoformat,
    }
    head = ["def run(obj):", "    out = {}", "    indexable = hasattr(obj, '__getitem__')"]
    body: list[str] = []
    for i, (key, source, check, default, (kind, payload)) in enumerate(plan):
        names[f"d{i}"], names[f"p{i}"] = default, payload
        if not check:
            body.append("    v = None")
        else:
            if "." in source:
                body.append(f"    v = get_value(obj, {source!r}, missing)")
            else:
                body.append(
                    f"    v = get_value(obj, {source!r}, missing) if indexable else getattr(obj, {source!r}, missing)"
                )
            body.append("    if v is missing:")
            body.append(f"        v = d{i}() if callable(d{i}) else d{i}")
            body.append("    if v is not missing:")
        pad = "        " if check else "    "
        target = f"out[{key!r}]"
        if kind == "same":
            body.append(f"{pad}{target} = v")
        elif kind == "cast" and payload is ensure_text_type:
            # Most values are already str; ensure_text_type would return them unchanged.
            body.append(f"{pad}{target} = v if v is None or v.__class__ is str else p{i}(v)")
        elif kind == "cast":
            body.append(f"{pad}{target} = None if v is None else p{i}(v)")
        elif kind == "local_datetime":
            if "    zone = local_zone()" not in head:
                head.append("    zone = local_zone()")
            body.append(f"{pad}{target} = None if v is None else isoformat(v.astimezone(zone))")
        elif kind == "nested":
            body.append(f"{pad}{target} = None if v is None else p{i}(v)")
        elif kind == "nested_many":
            body.append(f"{pad}{target} = None if v is None else [p{i}(item) for item in v]")
        elif kind == "listed":
            body.append(f"{pad}{target} = None if v is None else [None if x is None else p{i}(x) for x in v]")
        else:
            body.append(f"{pad}{target} = p{i}(v, obj)")
    source_text = "\n".join([*head, *body, "    return out"])
    exec(compile(source_text, f"<compiled dump {id(plan):x}>", "exec"), names)  # noqa: S102 - our own source
    return names["run"]


class CompiledSchema(Schema):
    def _serialize(self, obj: Any, *, many: bool = False):
        plan = _plan(self)
        if plan is None:
            return super()._serialize(obj, many=many)
        token = begin_dump()
        try:
            run = plan.run
            if many and obj is not None:
                return [run(item) for item in obj]
            return run(obj)
        finally:
            end_dump(token)
