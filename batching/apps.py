from django.apps import AppConfig


class BatchingConfig(AppConfig):
    name = "batching"
    verbose_name = "Batches"
    default_auto_field = "django.db.models.BigAutoField"
