"""crm_kit: what every CRM service stands on.

Settings, database, CloudEvents and contracts, transactional outbox, consumer runner,
embedded broker, problem+json errors, metrics, health and logs. The kit never imports a service.
"""
