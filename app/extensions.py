"""Extensions created unbound; create_app() binds them."""
import http

from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_migrate import Migrate
from flask_smorest import Api
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class ProblemApi(Api):
    """flask-smorest Api whose errors go through our one handler and are documented as problem+json."""

    def _register_error_handlers(self):
        # The request boundary registers ours instead (app/api/boundary.py).
        pass

    def _register_responses(self):
        from flask_smorest.utils import prepare_response

        from app.schemas.common import PROBLEM_MIMETYPE, ProblemSchema

        for status in http.HTTPStatus:
            response = {"description": status.phrase}
            if status >= 400:
                response["schema"] = ProblemSchema
            prepare_response(response, self.spec, PROBLEM_MIMETYPE)
            self.spec.components.response(status.name, response, lazy=True)
        response = {"description": "RFC 7807 problem", "schema": ProblemSchema}
        prepare_response(response, self.spec, PROBLEM_MIMETYPE)
        self.spec.components.response("DEFAULT_ERROR", response, lazy=True)


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
api = ProblemApi()
limiter = Limiter(key_func=get_remote_address)
