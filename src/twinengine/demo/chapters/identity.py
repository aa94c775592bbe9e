"""The identity chapter: a group shares uma's reach with a colleague, whose access follows her membership at
once; a token uma makes for a script reads the reach and is refused a write, naming its scope. Signing in
with an institution's OpenID provider needs one to be configured (docs/access.md), so the demo shows what
follows from groups and scopes, which is the same whichever way a person signed in."""

from __future__ import annotations

from contextlib import suppress

from twinengine.client import Client
from twinengine.demo.context import DemoContext
from twinengine.errors import Conflict, NotFound, PermissionDenied

__all__ = ["groups_and_scopes"]

GROUP = "demo-hydrology"


def _reads(client: Client, twin: str) -> bool:
    try:
        client.get_twin(twin)
    except (NotFound, PermissionDenied):
        return False
    return True


def groups_and_scopes(ctx: DemoContext) -> None:
    admin, uma, name = ctx.client("admin"), ctx.client("uma"), ctx.facts["twin_name"]
    with suppress(Conflict):  # kept from an earlier demo in the same data dir
        admin.access.create_group(GROUP, description="hydrologists sharing the demo's reaches")
    ben = Client(ctx.url, admin.create_token("ben", "user").token)
    try:
        before = _reads(ben, name)
        admin.access.add_member(GROUP, "ben")
        with suppress(Conflict):  # granted by an earlier demo
            uma.access.grant_group(name, GROUP, "read")
        member = _reads(ben, name)
        admin.access.remove_member(GROUP, "ben")
        after = _reads(ben, name)
    finally:
        ben.close()
    ctx.say(f"ben reads {name}: before joining {GROUP} {'yes' if before else 'no'}, as a member "
            f"{'yes' if member else 'no'}, once removed {'yes' if after else 'no'} (access follows the group at once)")
    issued = uma.access.scoped_token(["twins:read"], twins=[name], expires_in="1h", note="demo script")
    with Client(ctx.url, issued.token) as script:
        level = script.get_twin(name).name
        try:
            script.report(name, level=0.0, message="a script's write")
            refused = ""
        except PermissionDenied as exc:
            refused = str(exc)
    ctx.say(f"uma's script token (twins:read on {level}, 1 h) reads the twin; its write is refused: "
            f"{refused or 'NOT refused'}")
    ctx.facts["identity"] = {"group": GROUP, "reads": [before, member, after], "scoped_write_refused": bool(refused)}
    ctx.summary.append(("identity", f"group {GROUP}: ben reads {name} only while a member "
                                    f"({before}/{member}/{after}); a twins:read token's write refused: "
                                    f"{bool(refused)} (`twin group`, `twin token create --scope`)"))
