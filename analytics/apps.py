from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "analytics"

    def ready(self) -> None:
        from analytics.live import publisher
        from inference.ledger import ledger

        ledger.add_listener(publisher.on_flushed)
