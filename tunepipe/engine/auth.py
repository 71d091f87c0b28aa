"""The token that guards tunepipe's Ray clusters.

Ray 2.60 turns on token authentication for local clusters by default, but `ray.init()` writes its
token to `~/.ray/auth_token` without restricting its mode. tunepipe keeps its own token file,
created 0600 inside a 0700 folder, and hands it to Ray through `RAY_AUTH_TOKEN_PATH` with
`RAY_AUTH_MODE=token` set explicitly, so Ray never falls back to its default file.

The token itself is never printed or logged; only its path is.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from tunepipe.errors import TunepipeError

# Ray's names (ray/_private/authentication/authentication_constants.py). Copied rather than
# imported because that module is private; tests/test_cluster_auth.py checks they still match.
AUTHORIZATION_HEADER_NAME = "authorization"
AUTHORIZATION_BEARER_PREFIX = "Bearer "
AUTH_MODE_ENV_VAR = "RAY_AUTH_MODE"
AUTH_TOKEN_PATH_ENV_VAR = "RAY_AUTH_TOKEN_PATH"

DEFAULT_TOKEN_PATH = Path("~/.tunepipe/ray_auth_token")

# 256 bits, like Ray's own generator (secrets.token_hex(32)).
_TOKEN_BYTES = 32


class TokenFileError(TunepipeError):
    """The token file is missing, empty, unreadable or readable by other users."""


def ensure_token(path: str | os.PathLike[str] | None = None, token: str | None = None) -> Path:
    """Return the token file at `path`, creating it with a fresh random token if absent.

    A new file is created with mode 0600 (its parent folder 0700) atomically, so no other user can
    read it even for a moment. An existing file is checked, never rewritten: a file readable by
    group or others is refused, because anyone who can read it can run code on the cluster.

    Args:
        path: where the token lives; `~/.tunepipe/ray_auth_token` when None.
        token: the token a new file gets (a cluster's own, e.g. from RAY_AUTH_TOKEN); random
            when None.

    Returns:
        The absolute path of the token file.

    Raises:
        TokenFileError: the file is readable by group/others, empty, or not a regular file.
    """
    token_path = Path(path if path is not None else DEFAULT_TOKEN_PATH).expanduser().resolve()
    if not token_path.exists():
        _create_token_file(token_path, token)
    check_token_file(token_path)
    if token and read_token(token_path) != token.strip():
        raise TokenFileError(
            f"Ray auth token file {token_path} holds another token than RAY_AUTH_TOKEN, so this "
            "process could not join the cluster RAY_AUTH_TOKEN belongs to. Remove the file (or "
            "point RAY_AUTH_TOKEN_PATH elsewhere), or unset RAY_AUTH_TOKEN."
        )
    return token_path


def check_token_file(path: Path) -> None:
    """Raise TokenFileError unless `path` is a non-empty regular file only its owner can read."""
    if not path.is_file():
        raise TokenFileError(
            f"Ray auth token file {path} does not exist or is not a regular file. "
            "Create it with tunepipe.engine.auth.ensure_token() or pass the right --token-file."
        )
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise TokenFileError(
            f"Ray auth token file {path} has mode {mode:04o}: other users can read it and so run "
            f"code on the cluster. Restrict it with `chmod 600 {path}` (and consider replacing "
            "the token, since it may have been read)."
        )
    if not read_token(path):
        raise TokenFileError(
            f"Ray auth token file {path} is empty. Delete it and let tunepipe create a new one."
        )


def read_token(path: str | os.PathLike[str]) -> str:
    """Return the token stored at `path`, stripped of surrounding whitespace.

    Callers must keep the value out of logs, exceptions and printed output.
    """
    return Path(path).read_text(encoding="utf-8").strip()


def auth_env(path: str | os.PathLike[str]) -> dict[str, str]:
    """The environment variables that make Ray processes and drivers use the token at `path`.

    Set them in the environment of `ray start`, of a driver before `ray.init(address=...)`, and
    of `ray job submit`. `RAY_AUTH_MODE` is set explicitly so Ray neither guesses the mode nor
    creates its own world-readable `~/.ray/auth_token`.
    """
    token_path = Path(path).expanduser().resolve()
    check_token_file(token_path)
    return {AUTH_MODE_ENV_VAR: "token", AUTH_TOKEN_PATH_ENV_VAR: str(token_path)}


def auth_headers(path: str | os.PathLike[str]) -> dict[str, str]:
    """The HTTP header Ray's dashboard, Jobs API and dashboard agents accept: a bearer token.

    Ray's `JobSubmissionClient` adds the same header itself only when the *calling process* runs
    in token mode (a process-wide, cached loader); passing `headers=auth_headers(path)` works from
    any process and for any number of clusters, and Ray then leaves a user's header alone.
    """
    token_path = Path(path).expanduser().resolve()
    check_token_file(token_path)
    return {AUTHORIZATION_HEADER_NAME: AUTHORIZATION_BEARER_PREFIX + read_token(token_path)}


def _create_token_file(path: Path, token: str | None = None) -> None:
    """Write `token` (a new random one if None) to `path`: O_EXCL so a concurrent creator never
    gets overwritten."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return  # another process created it first; ensure_token checks what it wrote
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(token or secrets.token_hex(_TOKEN_BYTES))


def use_token_in_this_process(path: str | os.PathLike[str]) -> None:
    """Make this process a token-mode Ray client of clusters guarded by the token at `path`.

    Ray reads `RAY_AUTH_MODE` into its cached config when `ray` is first imported and caches the
    token on first use, so setting the environment is not enough once `ray` is imported (pytest,
    notebooks). This sets the variables and refreshes both caches, as Ray's own
    `authentication_token_setup._enable_token_auth` does. Call it before `ray.init(address=...)`.
    """
    os.environ.update(auth_env(path))
    from ray._raylet import AuthenticationTokenLoader, Config

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()
