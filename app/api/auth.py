"""Sign-up, sign-in, token rotation, sign-out and the caller's own profile."""

from flask import current_app, request
from flask.views import MethodView
from flask_smorest import Blueprint

from app.api.access import auth_required, current_session_id, current_user
from app.api.openapi import BEARER
from app.extensions import limiter
from app.schemas.auth import LoginIn, RefreshIn, RegisterIn, TokensOut, UserOut
from app.schemas.users import MeUpdateIn
from app.services.people import sessions as auth_service, users as user_service

blp = Blueprint("auth", __name__, description="Accounts and tokens")


def auth_rate_limit() -> str:
    return current_app.config["AUTH_RATE_LIMIT"]


def account_rate_limit() -> str:
    return current_app.config["LOGIN_ACCOUNT_RATE_LIMIT"]


def login_account() -> str:
    """The account a sign-in names, as its counter's key ("" when there is none: the limit is skipped, 422 follows)."""
    body = request.get_json(silent=True)
    username = body.get("username") if isinstance(body, dict) else None
    # Usernames are at most 64 characters; a longer one is refused by validation, its key need not be longer.
    return username.strip().lower()[:80] if isinstance(username, str) else ""


def failed_sign_in(response) -> bool:
    return response.status_code == 401


# Every sign-up, sign-in and refresh counts against the client address's budget, large enough for a street
# office signing its whole shift in behind one NAT address.
throttled = limiter.shared_limit(auth_rate_limit, scope="auth")
# Wrong passwords count against the account, whatever address they come from: guessing one account's password
# stays slow, while its owner's successful sign-ins cost nothing. Once the budget is spent even the right password
# is 429 until the window passes, so the answer tells a guesser nothing.
account_throttled = limiter.limit(
    account_rate_limit, key_func=login_account, scope="login-account", deduct_when=failed_sign_in
)


@blp.route("/auth/register")
class Register(MethodView):
    @throttled
    @blp.arguments(RegisterIn)
    @blp.response(201, UserOut)
    def post(self, data):
        """Register a resident; the phone number becomes the username."""
        return user_service.account(
            user_service.register_resident(data["phone"], data["password"], data.get("display_name"))
        )


@blp.route("/auth/login")
class Login(MethodView):
    @throttled
    @account_throttled
    @blp.arguments(LoginIn)
    @blp.response(200, TokensOut)
    def post(self, data):
        """Exchange username and password for an access token (15 min) and a refresh token (30 days)."""
        return auth_service.login(data["username"], data["password"])


@blp.route("/auth/refresh")
class Refresh(MethodView):
    @throttled
    @blp.arguments(RefreshIn)
    @blp.response(200, TokensOut)
    def post(self, data):
        """Rotate a refresh token; a repeat within seconds gets the same pair, a later replay revokes the login."""
        return auth_service.refresh(data["refresh_token"])


@blp.route("/auth/logout")
class Logout(MethodView):
    @blp.arguments(RefreshIn)
    @blp.response(204)
    def post(self, data):
        """End the login the refresh token belongs to; its access tokens stop working too."""
        auth_service.logout(data["refresh_token"])


@blp.route("/me")
class Me(MethodView):
    @auth_required()
    @blp.doc(security=BEARER)
    @blp.response(200, UserOut)
    def get(self):
        """The signed-in account."""
        return user_service.account(current_user())

    @auth_required()
    @blp.doc(security=BEARER)
    @blp.arguments(MeUpdateIn)
    @blp.response(200, UserOut)
    def patch(self, data):
        """Change your display name, phone, language or password (send the old one; ends your other logins)."""
        return user_service.account(user_service.update_me(current_user(), data, current_session_id()))
