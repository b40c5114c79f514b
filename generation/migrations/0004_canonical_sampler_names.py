"""Old combined sampler names ("DPM++ 2M Karras", from the first sampler table and from imported PNGs) become
A1111 >= 1.6's (sampler, schedule type) pair, as ``SamplerSettings`` spells every new setting, so old images meet
new ones of the same settings. Rows whose names are canonical already (nearly all) keep their settings key; a
renamed image or task takes the key of its canonical settings unless another row of the same model and prompt
has that key already (then it stays as it was: one image per cell). Names no table knows stay as written."""

from django.db import migrations


def _canonical(sampler: str, schedule_type: str):
    from generation.pipelines.samplers import resolve_sampler
    from generation.pipelines.types import GenerationError

    try:
        return resolve_sampler(sampler, schedule_type or "Automatic")
    except GenerationError:
        return None


def canonicalise(apps, schema_editor):
    from generation.sampling import SamplerSettings

    ModelVariant = apps.get_model("generation", "ModelVariant")
    for variant in ModelVariant.objects.exclude(sampler__in=_canonical_names()):
        pair = _canonical(variant.sampler, variant.schedule_type)
        if pair and pair != (variant.sampler, variant.schedule_type):
            ModelVariant.objects.filter(pk=variant.pk).update(sampler=pair[0], schedule_type=pair[1])
    for model_name, cell in (("Image", ("variant_id", "prompt_id")), ("GenerationTask", ("job_id", "variant_id", "prompt_id"))):
        Model = apps.get_model("generation", model_name)
        for row in Model.objects.exclude(sampler__in=_canonical_names()).iterator():
            pair = _canonical(row.sampler, row.schedule_type)
            if not pair or pair == (row.sampler, row.schedule_type):
                continue
            row.sampler, row.schedule_type = pair
            key = SamplerSettings.of(row).key
            taken = Model.objects.filter(settings_key=key, **{name: getattr(row, name) for name in cell}).exclude(pk=row.pk)
            if model_name == "GenerationTask" and row.job_id is None:
                taken = Model.objects.none()  # live tasks have no uniqueness to keep
            if taken.exists():
                continue
            Model.objects.filter(pk=row.pk).update(sampler=pair[0], schedule_type=pair[1], settings_key=key)


def _canonical_names():
    from generation.pipelines.samplers import SAMPLERS

    return list(SAMPLERS)


class Migration(migrations.Migration):

    dependencies = [
        ("generation", "0003_schedule_type_and_hires"),
    ]

    operations = [
        migrations.RunPython(canonicalise, migrations.RunPython.noop),
    ]
