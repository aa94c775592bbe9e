"""``twin app validate``'s second half: import the app as publishing does, in a sandboxed worker of its own.

The static checks find a module file that is missing; only an import finds ``functions:injest`` where the
module defines ``ingest``, or a function on arrival that takes one argument. The folder is packed as
``twin app publish`` packs it, so the worker sees exactly the files the engine would keep.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from twinengine.catalog.manifest import Manifest
from twinengine.errors import Problem, ValidationFailed

if TYPE_CHECKING:
    from twinengine.config import Settings

__all__ = ["check_imports"]


def check_imports(folder: Path, manifest: Manifest, settings: Settings) -> list[Problem]:
    """Every problem importing the app in a sandboxed worker finds: an entrypoint the engine could not call
    (named by its manifest path), a package that fails to import, requirements that do not install, an
    assimilation step whose answer to a sample state would not serve as the new state."""
    from twinengine.catalog.archive import pack
    from twinengine.twin_assimilation.trial import step_problems
    from twinengine.workers.apps import import_app, unpacked
    from twinengine.workers.envs import EnvironmentFailed, Environments
    from twinengine.workers.service import Workers

    archive = pack(folder)
    sha256 = hashlib.sha256(archive).hexdigest()
    try:
        env = Environments.from_settings(settings).for_app(manifest, sha256) if manifest.requires else None
    except EnvironmentFailed as exc:
        return [Problem("requires", str(exc))]
    with tempfile.TemporaryDirectory(prefix="twin-validate-") as tmp:
        code = unpacked(archive, sha256, Path(tmp))
        workers = Workers.from_settings(settings)
        app = workers.for_app((sha256, str(env)), label=f"{manifest.ref} (validate)", code=code, env=env,
                              image=manifest.image)
        try:
            import_app(app, manifest)
            return step_problems(app, manifest)  # the assimilation step called once on a sample state
        except ValidationFailed as exc:
            return exc.problems
        finally:
            workers.close()  # its worker stops before its code folder goes
    return []
