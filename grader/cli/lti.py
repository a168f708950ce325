"""`grade lti`: registering the learning platforms (Canvas, Moodle, ...) that launch the grader over LTI 1.3,
and rotating the tool's signing key. The work is in grader/service/lti/admin.py; these only parse and print."""

from __future__ import annotations

from typing import Any

import click

from grader.cli.group import main
from grader.cli.service import _service_modules


@main.group(help="LTI 1.3: register the learning platforms (Canvas, Moodle, ...) that launch the grader.")
def lti() -> None:
    pass


def _lti_admin() -> Any:
    service_config = _service_modules()
    from grader.service.lti import admin

    return service_config, admin


def _public_url_option(function: Any) -> Any:
    return click.option("--public-url", default=None, metavar="URL",
                        help="The address `grade serve --public-url` uses; the URLs to enter in the LMS are "
                             "printed under it [default: http://127.0.0.1:8000].")(function)


def _tool_urls(service_config: Any, admin: Any, public_url: str | None) -> None:
    try:
        base = service_config.public_url(public_url)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo("Enter these in the LMS's tool registration:")
    for name, url in admin.tool_urls(base):
        click.echo(f"  {name}: {url}")


@lti.command("add-platform", help="Register a platform's deployment (repeat it for another deployment) and print "
                                  "the tool's URLs to enter in the LMS. A running `grade serve` uses it at once.")
@click.option("--issuer", required=True, help="The platform's issuer (iss), e.g. https://canvas.instructure.com.")
@click.option("--client-id", required=True, help="The client id the LMS gave the tool.")
@click.option("--deployment-id", required=True, help="The deployment id the LMS gave the tool.")
@click.option("--auth-url", required=True, help="The platform's OIDC authorisation URL.")
@click.option("--token-url", required=True, help="The platform's OAuth2 access token URL.")
@click.option("--jwks-url", required=True, help="The platform's public keyset (JWKS) URL.")
@click.option("--frame-origin", "frame_origins", multiple=True, metavar="URL",
              help="Another origin the LMS shows the tool from, in an iframe (Canvas cloud: your school's "
                   "https://SCHOOL.instructure.com); the issuer's and the auth URL's are always allowed.")
@click.option("--db", "db_url", default=None, help="SQLAlchemy URL, as for `grade serve`.")
@_public_url_option
def lti_add_platform(issuer: str, client_id: str, deployment_id: str, auth_url: str, token_url: str, jwks_url: str,
                     frame_origins: tuple[str, ...], db_url: str | None, public_url: str | None) -> None:
    service_config, admin = _lti_admin()
    try:
        platform = admin.add_platform(db_url, frame_origins, issuer=issuer, client_id=client_id,
                                      deployment_id=deployment_id, auth_url=auth_url, token_url=token_url,
                                      jwks_url=jwks_url)
    except (ValueError, service_config.ConfigurationError) as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(f"platform {platform.id} registered: {platform.issuer} (client {platform.client_id}, deployment "
               f"{platform.deployment_id})")
    _tool_urls(service_config, admin, public_url)


@lti.command("list", help="The registered platforms, one a line: id, issuer, client id, deployment id, URLs.")
@click.option("--db", "db_url", default=None, help="SQLAlchemy URL, as for `grade serve`.")
@_public_url_option
def lti_list(db_url: str | None, public_url: str | None) -> None:
    service_config, admin = _lti_admin()
    try:
        rows = admin.platforms(db_url)
    except service_config.ConfigurationError as exc:
        raise click.UsageError(str(exc)) from None
    for row in rows:
        click.echo("\t".join([str(row.id), row.issuer, row.client_id, row.deployment_id, row.auth_url,
                              row.token_url, row.jwks_url, " ".join(row.frame_origins) or "-"]))
    if not rows:
        click.echo("no platform registered yet (grade lti add-platform)")
    _tool_urls(service_config, admin, public_url)


@lti.command("remove", help="Unregister a platform by its id from `grade lti list`; its launches stop working.")
@click.argument("platform_id", type=click.IntRange(1))
@click.option("--db", "db_url", default=None, help="SQLAlchemy URL, as for `grade serve`.")
def lti_remove(platform_id: int, db_url: str | None) -> None:
    service_config, admin = _lti_admin()
    try:
        row = admin.remove_platform(db_url, platform_id)
    except service_config.ConfigurationError as exc:
        raise click.UsageError(str(exc)) from None
    if row is None:
        raise click.UsageError(f"no platform {platform_id} in this database (see `grade lti list`).")
    click.echo(f"platform {row.id} removed: {row.issuer} (client {row.client_id}, deployment {row.deployment_id})")


@lti.command("rotate-key", help="Make a new signing key for the tool; /lti/jwks publishes it with the previous one, "
                                "which the next rotation retires. Never prints a private key.")
@click.option("--db", "db_url", default=None, help="SQLAlchemy URL, as for `grade serve`.")
def lti_rotate_key(db_url: str | None) -> None:
    service_config, admin = _lti_admin()
    try:
        new, retired, listing = admin.rotate_key(db_url)
    except service_config.ConfigurationError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(f"new signing key {new}" + (f"; retired {', '.join(retired)}" if retired else ""))
    for kid, _created, retired_at in listing:
        click.echo(f"  {kid}\t{'retired' if retired_at else 'published'}")

