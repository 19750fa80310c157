from django.db import migrations

FUNCTION = """
CREATE OR REPLACE FUNCTION asahi_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'table % is append-only', TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""


class Migration(migrations.Migration):
    dependencies = [("governance", "0001_initial")]

    operations = [
        migrations.RunSQL(FUNCTION, "DROP FUNCTION IF EXISTS asahi_append_only() CASCADE;"),
        migrations.RunSQL(
            "CREATE TRIGGER governance_auditevent_append_only BEFORE UPDATE OR DELETE "
            "ON governance_auditevent FOR EACH ROW EXECUTE FUNCTION asahi_append_only();",
            "DROP TRIGGER IF EXISTS governance_auditevent_append_only ON governance_auditevent;",
        ),
    ]
