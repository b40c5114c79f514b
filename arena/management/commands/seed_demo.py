"""Seed the demo: tiny local models generate a prompt set's images through the real queue path, and an
admin account is made. Safe to run again: what exists is kept."""

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

from generation import services as generation_services
from generation.services.demo import UPGRADE_NOTE

PASSWORD_FILE = "admin-password.txt"


class Command(BaseCommand):
    help = "Seed the demo (tiny models, prompts, characters, images, automatic scores) and an admin account."

    def add_arguments(self, parser):
        parser.add_argument("--no-images", action="store_true", help="only the admin account")

    def handle(self, *args, no_images: bool = False, **options):
        if not no_images:
            # Scorers first: the demo job's images are then scored as soon as the job finishes.
            call_command("make_tiny_scorers", str(settings.SCORERS_DIR), stdout=self.stdout, stderr=self.stderr)
            call_command("seed_generation_demo", stdout=self.stdout, stderr=self.stderr)
            call_command("score_images", "--missing-only", stdout=self.stdout, stderr=self.stderr)
        username, password = self._admin()
        self.stdout.write(self.style.SUCCESS(
            f"Demo ready. Vote at http://127.0.0.1:8000/ ; admin at http://127.0.0.1:8000/admin/ "
            f"as user '{username}' with password '{password}' (kept in {settings.VAR_DIR / PASSWORD_FILE})."
        ))
        if not no_images and generation_services.demo_upgrade_needed():
            self.stdout.write(f"Note: {UPGRADE_NOTE}.")

    def _admin(self) -> tuple[str, str]:
        path = settings.VAR_DIR / PASSWORD_FILE
        User = get_user_model()
        user = User.objects.filter(username="admin").first()
        if user is not None and path.exists():
            return "admin", path.read_text().strip()
        password = secrets.token_urlsafe(12)
        if user is None:
            User.objects.create_superuser("admin", "admin@localhost", password)
        else:
            user.set_password(password)
            user.save(update_fields=["password"])
        path.write_text(password + "\n")
        path.chmod(0o600)
        return "admin", password
