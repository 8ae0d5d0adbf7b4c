"""The command line's Kafka options, the same on every command that talks to Kafka.

One decorator adds ``--broker`` and the security options, builds the one
:class:`streams.connection.KafkaConnection` from them and the ``XWATCH_*`` variables, and
hands it to the command as ``broker`` (``None`` when no broker is given anywhere). A
mistake in them is one line (a usage error), never a traceback.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

from streams.connection import OPTIONS, SASL_MECHANISMS, SECURITY_PROTOCOLS, KafkaConnection

__all__ = ["kafka_options"]



def kafka_options(broker_help: str = "Kafka bootstrap servers: host:port[,host:port...] or "
                                     "kafka://host:port.",
                  default_broker: str | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        options = [
            click.option("--broker", envvar=["XWATCH_BROKER", "KAFKA_BOOTSTRAP_SERVERS"],
                         show_envvar=True, default=default_broker, show_default=default_broker is not None,
                         help=broker_help),
            click.option("--security-protocol", type=click.Choice(SECURITY_PROTOCOLS, case_sensitive=False),
                         help="Kafka security protocol (env XWATCH_SECURITY_PROTOCOL; default SASL_SSL "
                              "with a SASL mechanism, SSL with a CA or client certificate, else PLAINTEXT)."),
            click.option("--sasl-mechanism", type=click.Choice(SASL_MECHANISMS, case_sensitive=False),
                         help="SASL mechanism (env XWATCH_SASL_MECHANISM). OAUTHBEARER: give librdkafka's "
                              "sasl.oauthbearer.* settings with --kafka-config."),
            click.option("--sasl-username", help="SASL user name (env XWATCH_SASL_USERNAME)."),
            click.option("--sasl-password-file", type=click.Path(dir_okay=False),
                         help="File holding the SASL password, e.g. a mounted Secret (env "
                              "XWATCH_SASL_PASSWORD_FILE; or the password itself in XWATCH_SASL_PASSWORD)."),
            click.option("--ssl-ca", "ssl_ca_location", type=click.Path(dir_okay=False),
                         help="CA certificate(s) to verify the brokers with, PEM (env XWATCH_SSL_CA_LOCATION)."),
            click.option("--ssl-cert", "ssl_certificate_location", type=click.Path(dir_okay=False),
                         help="Client certificate for mutual TLS, PEM (env XWATCH_SSL_CERTIFICATE_LOCATION)."),
            click.option("--ssl-key", "ssl_key_location", type=click.Path(dir_okay=False),
                         help="The client certificate's private key, PEM (env XWATCH_SSL_KEY_LOCATION)."),
            click.option("--ssl-key-password-file", type=click.Path(dir_okay=False),
                         help="File holding the private key's password (env XWATCH_SSL_KEY_PASSWORD_FILE)."),
            click.option("--ssl-check-hostname/--no-ssl-check-hostname", default=None,
                         help="Check that a broker's certificate names its host (default: on; env "
                              "XWATCH_SSL_CHECK_HOSTNAME)."),
            click.option("--kafka-config", multiple=True, metavar="KEY=VALUE",
                         help="Any librdkafka setting, applied last to every client; repeatable (env "
                              "XWATCH_KAFKA_CONFIG: one pair a line)."),
            click.option("--kafka-config-file", type=click.Path(dir_okay=False),
                         help="A properties file of librdkafka settings (key=value lines), e.g. a "
                              "mounted Secret (env XWATCH_KAFKA_CONFIG_FILE)."),
        ]

        @functools.wraps(command)
        def run(*args: Any, **kwargs: Any) -> Any:
            flags = {name: kwargs.pop(name) for name in OPTIONS}
            broker = kwargs.pop("broker")
            kwargs["broker"] = connection_from(broker, flags)
            return command(*args, **kwargs)

        for option in reversed(options):
            run = option(run)
        return run

    return decorate


def connection_from(broker: str | None, flags: dict[str, Any]) -> KafkaConnection | None:
    """The connection, or ``None`` without a broker; a usage error for a bad setting."""
    if not broker:
        return None
    try:
        return KafkaConnection.from_env(broker=broker, **flags)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
