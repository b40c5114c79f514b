from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("generation", "0006_image_showcase_at")]

    operations = [
        migrations.AddField(
            model_name="modelvariant",
            name="card",
            field=models.JSONField(blank=True, default=dict,
                                   help_text="how a fine-tune was made (set by its registration)"),
        ),
    ]
