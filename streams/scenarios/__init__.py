"""Randomised scenario building blocks for the traffic simulator.

:mod:`streams.scenarios.servegen` draws honest tenants whose request rates, burstiness,
day/night cycle and token lengths come from Alibaba's public ServeGen statistics
(``data/servegen_tenants.json``, see ``data/README.md``).
"""
