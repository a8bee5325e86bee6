"""``medfed researcher``: a researcher's own signing key."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from common.errors import ConfigError, MedfedError
from medfed.cli._common import console, fail

researcher_app = typer.Typer(no_args_is_help=True, help="A researcher's own signing key.")


@researcher_app.command("init")
def researcher_init(
    out: Annotated[Path, typer.Option("--out", help="Where to write researcher.key and researcher.pub.")] = Path("."),
) -> None:
    """Create a researcher key pair: researcher.key (mode 0600, signs your jobs) and researcher.pub (give it to
    the coordinator's admin); print the public key and its fingerprint."""
    from common.crypto import SigningKey, save_private_key

    key = SigningKey.generate()
    public = key.public_key()
    try:
        out.mkdir(mode=0o700, parents=True, exist_ok=True)
        if (out / "researcher.pub").exists():
            raise ConfigError(detail=f"{out / 'researcher.pub'} exists; refusing to replace a researcher key")
        save_private_key(out / "researcher.key", key.to_pem())
        (out / "researcher.pub").write_text(public.to_text() + "\n", encoding="ascii")
    except OSError as exc:
        raise fail(ConfigError(detail=f"cannot write to {out} ({type(exc).__name__})")) from None
    except MedfedError as exc:
        raise fail(exc) from None
    console.print(f"key written to {out / 'researcher.key'} (keep it private)", markup=False, highlight=False)
    console.print(f"fingerprint: {public.fingerprint()}", markup=False, highlight=False, soft_wrap=True)
    sys.stdout.write(public.to_text() + "\n")
