"""Disk full on the media folder: the generation task fails with a message, nothing half-written is left or served,
and no image row points at a missing or partial file; once there is room, retrying the job makes each image once.

The media folder is a 1 MiB tmpfs filled to the last byte when this process may mount one (root in a container
with CAP_SYS_ADMIN, unless ARENA_FAULTS_NO_MOUNT is set); otherwise the storage's write is patched to write half the file and fail with ENOSPC, as a
full disk does. The figures line says which ("media")."""

from __future__ import annotations

import errno
import json
import os
import subprocess
from pathlib import Path

import pytest
from django.core.files.storage import FileSystemStorage
from PIL import Image as PILImage

from generation import services
from generation.models import GenerationJob, GenerationTask, Image
from tests.generation.helpers import fake_pipelines, make_prompt_set, make_variant  # noqa: F401 - a fixture

pytestmark = pytest.mark.django_db


def _fill(path: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for size in (1 << 16, 1 << 12, 1):
            while True:
                try:
                    os.write(fd, b"\0" * size)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc
                    break
    finally:
        os.close(fd)


@pytest.fixture
def full_media(settings, tmp_path, monkeypatch):
    """(how the disk is full, a function that makes room, the filler file or None)."""
    media = Path(settings.MEDIA_ROOT)
    media.mkdir(parents=True, exist_ok=True)
    mounted = os.geteuid() == 0 and not os.environ.get("ARENA_FAULTS_NO_MOUNT") and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs", str(media)], capture_output=True).returncode == 0
    if mounted:
        filler = media / "filler.bin"
        _fill(filler)
        try:
            yield "tmpfs 1 MiB, filled", filler.unlink, filler
        finally:
            subprocess.run(["umount", "-l", str(media)], check=False)
        return
    real = FileSystemStorage._save
    full = {"on": True}

    def half_then_enospc(self, name, content):
        if not full["on"]:
            return real(self, name, content)
        path = Path(self.path(name))
        path.parent.mkdir(parents=True, exist_ok=True)
        data = content.read()
        with open(path, "xb") as fh:  # what FileSystemStorage does: create, then write until the disk is full
            fh.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(FileSystemStorage, "_save", half_then_enospc)
    yield "patched FileSystemStorage._save: half written, then ENOSPC", lambda: full.update(on=False), None


def _files(media: Path, filler) -> list[Path]:
    return sorted(p for p in media.rglob("*") if p.is_file() and p != filler)


def _intact(image: Image) -> bool:
    try:
        for field_file in (image.file, image.voter_file, image.thumb):
            with field_file.storage.open(field_file.name, "rb") as fh:
                PILImage.open(fh).load()
    except Exception:  # noqa: BLE001 - missing or partial
        return False
    return True


def test_disk_full_fails_the_task_with_a_message_and_leaves_no_half_written_image(
        full_media, fake_pipelines, settings, django_capture_on_commit_callbacks):
    how, make_room, filler = full_media
    media = Path(settings.MEDIA_ROOT)
    variant = make_variant("Disk A")
    prompt_set = make_prompt_set("Disk set", n=3)
    with django_capture_on_commit_callbacks(execute=True):  # enqueued on commit; the task runs eagerly
        job = services.job_create(variants=[variant], prompt_set=prompt_set, seeds=[5])
    assert fake_pipelines.images_made == 3  # the images were made; only writing them failed

    tasks = list(GenerationTask.objects.filter(job=job))
    assert [t.status for t in tasks] == [GenerationTask.Status.FAILED] * 3
    for task in tasks:
        assert task.error == "could not write the image files: No space left on device", task.error
        assert task.image_id is None
    job.refresh_from_db()
    assert job.status == GenerationJob.Status.FAILED
    assert not Image.objects.exists()  # nothing to serve, no row pointing at a partial file
    assert _files(media, filler) == []  # nothing half-written left on disk
    failed_line = {"scenario": "disk-full", "media": how, "sent": 3,
                   "acknowledged": GenerationTask.objects.filter(job=job, status=GenerationTask.Status.DONE).count(),
                   "stored": sum(_intact(i) for i in Image.objects.all()), "failed_with_message": len(tasks),
                   "files_left": len(_files(media, filler))}

    make_room()
    with django_capture_on_commit_callbacks(execute=True):
        assert services.job_retry_failed(job=job) == 3
    job.refresh_from_db()
    assert job.status == GenerationJob.Status.DONE
    images = list(Image.objects.all())
    done = GenerationTask.objects.filter(job=job, status=GenerationTask.Status.DONE)
    cells = {(i.variant_id, i.prompt_id, i.settings_key) for i in images}
    stored = sum(_intact(i) for i in images)
    line = {**failed_line, "after_room_made": {
        "acknowledged": done.count(), "stored": stored,
        "lost": done.exclude(image__isnull=False).count() + (len(images) - stored),
        "doubled": len(images) - len(cells), "files": len(_files(media, filler))}}
    print(json.dumps(line))
    assert done.count() == stored == len(images) == 3
    assert line["after_room_made"]["lost"] == line["after_room_made"]["doubled"] == 0
    assert len(_files(media, filler)) == 3 * 3  # original, voter copy, thumbnail of each: nothing else
