"""Access control: principals and roles, token issuers and verification, the policy table, the audit log."""

from twinengine.auth.policy import Permission, allowed, require
from twinengine.auth.principal import SYSTEM, Principal, Role

__all__ = ["SYSTEM", "Permission", "Principal", "Role", "allowed", "require"]
