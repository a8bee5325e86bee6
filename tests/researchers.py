"""A registered researcher for a test coordinator, so that fixtures which submit jobs stay one line long.

Every job is signed (``docs/trust.md``): :func:`add_researcher` does what ``medfed researcher init`` and
``medfed coordinator researcher add`` do — a key file (0600), the researcher's membership certificate
signed with the coordinator's network-admin key, and a researcher token bound to them — and returns what a
client needs: :meth:`Researcher.federation` (an SDK client that signs) and :meth:`Researcher.env` (the
``medfed job`` variables).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Engine

from common.crypto import SigningKey, save_private_key
from coordinator.identity import load_network_admin_key
from coordinator.researchers import add_researcher as register
from medfed.sdk import Federation

__all__ = ["STUDY", "Researcher", "add_researcher"]

STUDY = "test-study"


@dataclass(frozen=True)
class Researcher:
    """A registered researcher: name, key file, API token and studies (the first is their default)."""

    name: str
    key_file: Path
    token: str
    studies: tuple[str, ...]

    def federation(self, url: str, ca_file: Path, *, study: str | None = None) -> Federation:
        """An SDK client that signs every job with this researcher's key, for ``study`` (default: their first)."""
        return Federation(
            url, token=self.token, ca_file=ca_file, researcher_key=self.key_file, study=study or self.studies[0]
        )

    def env(self) -> dict[str, str]:
        """The ``medfed job`` variables of this researcher (add the coordinator's URL and CA)."""
        return {
            "MEDFED_TOKEN": self.token,
            "MEDFED_RESEARCHER_KEY": str(self.key_file),
            "MEDFED_STUDY": self.studies[0],
        }


def add_researcher(
    engine: Engine,
    coordinator_dir: Path,
    key_dir: Path,
    *,
    name: str | None = None,
    studies: Sequence[str] = (STUDY,),
) -> Researcher:
    """Register a new researcher at the coordinator whose data directory is ``coordinator_dir``; their key goes
    to ``key_dir`` (created)."""
    name = name or f"researcher-{uuid.uuid4().hex[:8]}"
    key = SigningKey.generate()
    key_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    key_file = key_dir / f"{name}.key"
    save_private_key(key_file, key.to_pem())
    added = register(
        engine, load_network_admin_key(coordinator_dir), name=name, public_key=key.public_key(), studies=studies
    )
    return Researcher(name=name, key_file=key_file, token=added.token, studies=tuple(studies))


def signed_envelope(
    engine: Engine, researcher: Researcher, *, job_id: str, spec: dict[str, object], study: str | None = None
) -> dict[str, object]:
    """The envelope a coordinator would send with the first message of ``researcher``'s job ``job_id`` (``spec``
    normalised and signed, the researcher's current certificate, the hints), for tests that hand envelopes to a
    node's admissions directly."""
    from common.trust import sign_job
    from coordinator.federation.jobs.specs import parse_spec
    from coordinator.store.researchers import current_membership

    normal = parse_spec(spec).model_dump(mode="json")
    key = SigningKey.from_pem(researcher.key_file.read_bytes())
    return {
        "id": f"message-{uuid.uuid4().hex}",
        "job_id": job_id,
        "round": None,
        "app": normal["app"],
        "message_types": normal["message_types"],
        "rounds": normal.get("rounds"),
        "spec": {key: normal[key] for key in ("kind", "app", "rounds") if key in normal},
        "submitter": researcher.name,
        "signed_job": sign_job(key, normal, study=study or researcher.studies[0]),
        "membership": current_membership(engine, researcher=researcher.name),
    }
