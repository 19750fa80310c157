from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("inference", "0001_initial"), ("governance", "0002_audit_append_only")]

    operations = [
        migrations.RunSQL(
            "CREATE TRIGGER inference_inferenceevent_append_only BEFORE UPDATE OR DELETE "
            "ON inference_inferenceevent FOR EACH ROW EXECUTE FUNCTION asahi_append_only();",
            "DROP TRIGGER IF EXISTS inference_inferenceevent_append_only "
            "ON inference_inferenceevent;",
        ),
        # BRIN suits an append-only time column: tiny, and time-range scans skip most blocks.
        migrations.RunSQL(
            "CREATE INDEX ledger_created_brin ON inference_inferenceevent USING brin (created_at);",
            "DROP INDEX IF EXISTS ledger_created_brin;",
        ),
    ]
