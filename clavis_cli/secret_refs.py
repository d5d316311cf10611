"""Secret references on the command line: reading ``--secret-ref`` / ``--field-ref``, saying where
each secret of a service lives (``show``, ``list``), and ``doctor``'s check that each resolves.

A reference is not a secret and is printed as given; one carrying a credential in its URL is
refused when it is read (``vault.refs.base.parse``), so nothing printed here can hold a token.
The resolved value is never printed: ``doctor`` says only whether it resolved.
"""

from __future__ import annotations

import click

from clavis_mcp.vault import ClavisError, Service, UnknownService, Vault
from clavis_mcp.vault.auth import CREDENTIAL
from clavis_mcp.vault.auth.fields import validate_field_name
from clavis_mcp.vault.health import Check
from clavis_mcp.vault.refs import SecretRef, parse, resolve_now, stored_ref

IN_VAULT = "vault"  # where a field lives when it is stored here


def field_refs(items: tuple[str, ...]) -> dict[str, SecretRef]:
    """``--field-ref FIELD=REF`` pairs."""
    refs = {}
    for item in items:
        field, sep, text = item.partition("=")
        if not sep or not text:
            raise click.BadParameter(f"--field-ref {item!r} must look like access_key_id=op://AWS/prod/key-id")
        refs[validate_field_name(field.strip())] = parse(text.strip())
    return refs


def where(vault: Vault, service: Service) -> dict[str, str]:
    """Each secret field of ``service``: its reference, ``vault`` when stored here, or ``(not stored)``."""
    if service.auth.kind == "oauth2":
        return {}
    result = {}
    for field in dict.fromkeys((CREDENTIAL, *service.auth.secret_fields())):
        try:
            result[field] = stored_ref(vault.secret(service.name, field)) or IN_VAULT
        except UnknownService:
            result[field] = "(not stored)"
    return result


def refs_of(vault: Vault, service: Service) -> dict[str, SecretRef]:
    return {field: parse(text) for field, text in where(vault, service).items() if "://" in text}


def check_refs(vault: Vault) -> list[Check]:
    """`doctor`: every reference of every service resolves now (the value is not printed)."""
    checks = []
    for service in vault.list_services():
        try:
            refs = refs_of(vault, service)
        except ClavisError as exc:
            fix = f"clavis-mcp show {service.name}"
            checks.append(Check(f"service {service.name} reference", False, str(exc), fix))
            continue
        for field, ref in refs.items():
            name = f"service {service.name} {field}"
            try:
                resolve_now(ref)
            except ClavisError as exc:
                checks.append(Check(name, False, f"{ref} does not resolve: {exc}", f"fix the source, or: clavis-mcp "
                                    f"rotate {service.name} --field {field} --secret-ref REF"))  # fmt: skip
            else:
                checks.append(Check(name, True, f"{ref} resolves"))
    return checks
