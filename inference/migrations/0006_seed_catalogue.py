from django.db import migrations


def seed(apps, schema_editor):
    # The code behind `manage.py seed_models`, on this migration's historical models: a database
    # built by `migrate` alone serves the shipped models. It only creates what is missing, so a
    # catalogue seeded before (or edited in the admin) is left as it is.
    from inference.catalogue import seed_catalogue

    seed_catalogue(apps=apps)


class Migration(migrations.Migration):
    dependencies = [("inference", "0005_ledger_dead_letter")]

    # Reversing keeps the catalogue: operators may have edited prices and models since.
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
