"""Sign-up, sign-in, token rotation, sign-out and the caller's own profile."""

from dataclasses import asdict

from flask import after_this_request, current_app, request
from flask.views import MethodView

from app.api.access import auth_required, current_session_id, current_user
from app.api.openapi import API_PREFIX, BEARER, Blueprint
from app.errors import InvalidToken, UnsupportedMediaType
from app.extensions import limiter
from app.lib.i18n import tr
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


# The browser clients' refresh token (LoginIn.refresh_cookie): HttpOnly, so an injected script cannot read it;
# sent only to the token endpoints and only from this site's own pages (SameSite=Strict). Those endpoints take
# JSON bodies only, which a cross-site form cannot send, and no CORS answer lets another origin's fetch send one.
REFRESH_COOKIE = "grid_refresh"
REFRESH_COOKIE_PATH = f"{API_PREFIX}/auth"


def _set_refresh_cookie(token: str | None) -> None:
    @after_this_request
    def write(response):
        if token is None:
            response.delete_cookie(
                REFRESH_COOKIE, path=REFRESH_COOKIE_PATH, secure=request.is_secure, httponly=True, samesite="Strict"
            )
        else:
            response.set_cookie(
                REFRESH_COOKIE,
                token,
                max_age=current_app.config["REFRESH_TOKEN_TTL_S"],
                path=REFRESH_COOKIE_PATH,
                secure=request.is_secure,
                httponly=True,
                samesite="Strict",
            )
        return response


def _in_cookie(pair) -> dict:
    """The pair's answer with the refresh token moved into the cookie."""
    _set_refresh_cookie(pair.refresh_token)
    return {**asdict(pair), "refresh_token": None}


def _refresh_token(data) -> tuple[str, bool]:
    """The refresh token of the request: from the body, else from the cookie (whether it was the cookie)."""
    if "refresh_token" in data:
        return data["refresh_token"], False
    token = request.cookies.get(REFRESH_COOKIE)
    if not token:
        raise InvalidToken(tr("Send refresh_token, or sign in with refresh_cookie set first."))
    # Besides SameSite: the cookie counts only on a JSON request, which no cross-site form can make.
    if not request.is_json:
        raise UnsupportedMediaType(tr("Send the body as application/json."))
    return token, True


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
        """Exchange username and password for an access token (15 min) and a refresh token (30 days).

        With refresh_cookie the refresh token goes into an HttpOnly cookie instead of the answer."""
        pair = auth_service.login(data["username"], data["password"])
        return _in_cookie(pair) if data["refresh_cookie"] else pair


@blp.route("/auth/refresh")
class Refresh(MethodView):
    @throttled
    @blp.arguments(RefreshIn)
    @blp.response(200, TokensOut)
    def post(self, data):
        """Rotate a refresh token; a repeat within seconds gets the same pair, a later replay revokes the login.

        Without refresh_token in the body the refresh cookie is rotated (see POST /auth/login)."""
        token, from_cookie = _refresh_token(data)
        if not from_cookie:
            return auth_service.refresh(token)
        try:
            return _in_cookie(auth_service.refresh(token))
        except InvalidToken:
            _set_refresh_cookie(None)  # a dead cookie is not worth sending again
            raise


@blp.route("/auth/logout")
class Logout(MethodView):
    @blp.arguments(RefreshIn)
    @blp.response(204)
    def post(self, data):
        """End the login the refresh token belongs to; its access tokens stop working too.

        Without refresh_token in the body the refresh cookie's login ends, and the cookie is cleared."""
        token, from_cookie = _refresh_token(data)
        if from_cookie:
            _set_refresh_cookie(None)
        auth_service.logout(token)


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
